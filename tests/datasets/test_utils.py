"""make_grid and save_image against torchvision's documented layout and pixel mapping, written out by hand."""

import io
import math

import numpy as np
import pytest
from PIL import Image

import dltool.engine as dl
from dltool.datasets import utils as vutils


def _reference_grid(images, nrow, padding, pad_value):
    """torchvision's layout, cell by cell: image k at row k // nrow, column k % nrow, ``padding`` pixels
    before each image and after the last row and column; one channel becomes three."""
    images = np.asarray(images)
    if images.shape[1] == 1:
        images = np.concatenate([images] * 3, axis=1)
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    grid = np.full(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding), pad_value
    )
    for k in range(count):
        top = padding + (k // columns) * (height + padding)
        left = padding + (k % columns) * (width + padding)
        grid[:, top : top + height, left : left + width] = images[k]
    return grid


def test_two_pixels_by_hand():
    images = dl.tensor([[[[0.2]]], [[[0.8]]]])  # two 1x1 gray images
    expected_channel = [[0, 0, 0, 0, 0], [0, 0.2, 0, 0.8, 0], [0, 0, 0, 0, 0]]
    grid = vutils.make_grid(images, padding=1)
    assert grid.shape == (3, 3, 5) and grid.dtype == dl.float32
    np.testing.assert_array_equal(grid.numpy(), np.array([expected_channel] * 3, dtype=np.float32))


@pytest.mark.parametrize(
    ("count", "channels", "nrow", "padding", "pad_value"),
    [(3, 1, 2, 1, 0.5), (5, 3, 2, 2, 0.0), (7, 3, 8, 0, 1.0), (4, 2, 1, 3, 0.25), (6, 3, 3, 2, 0.0)],
)
def test_layout_matches_torchvision(count, channels, nrow, padding, pad_value):
    rng = np.random.default_rng(count)
    images = rng.random((count, channels, 3, 4), dtype=np.float32)
    grid = vutils.make_grid(dl.tensor(images), nrow=nrow, padding=padding, pad_value=pad_value)
    expected = _reference_grid(images, nrow, padding, pad_value)
    assert grid.shape == expected.shape
    np.testing.assert_array_equal(grid.numpy(), expected.astype(np.float32))
    listed = vutils.make_grid(list(dl.tensor(images)), nrow=nrow, padding=padding, pad_value=pad_value)
    np.testing.assert_array_equal(listed.numpy(), grid.numpy())


def test_default_arguments_are_torchvisions():
    images = np.random.default_rng(0).random((10, 3, 2, 2), dtype=np.float32)
    expected = _reference_grid(images, nrow=8, padding=2, pad_value=0.0)
    np.testing.assert_array_equal(vutils.make_grid(dl.tensor(images)).numpy(), expected)


@pytest.mark.parametrize(
    ("image", "shape"),
    [(np.arange(6.0).reshape(2, 3), (3, 2, 3)), (np.arange(6.0).reshape(1, 2, 3), (3, 2, 3)),
     (np.arange(12.0).reshape(2, 2, 3), (2, 2, 3)), (np.arange(6.0).reshape(1, 1, 2, 3), (3, 2, 3))],
)  # fmt: skip
def test_a_single_image_comes_back_without_padding(image, shape):
    grid = vutils.make_grid(dl.tensor(image, dtype=dl.float32), padding=5)
    assert grid.shape == shape
    np.testing.assert_array_equal(grid.numpy(), np.broadcast_to(image.reshape((-1,) + shape[1:]), shape))


def test_normalize_with_value_range_clamps_then_scales():
    values = dl.tensor([[[-2.0, -1.0, 0.0, 0.5, 3.0]]])
    grid = vutils.make_grid(values, normalize=True, value_range=(-1, 1))
    np.testing.assert_allclose(grid.numpy()[0, 0], [0.0, 0.0, 0.5, 0.75, 1.0])
    assert values.tolist() == [[[-2.0, -1.0, 0.0, 0.5, 3.0]]]  # the input is left as it was


def test_normalize_by_the_batch_or_by_each_image():
    images = dl.tensor([[[[0.0, 2.0]]], [[[10.0, 20.0]]]])
    together = vutils.make_grid(images, normalize=True, padding=0)
    np.testing.assert_allclose(together.numpy()[0, 0], [0.0, 0.1, 0.5, 1.0], rtol=1e-6)
    each = vutils.make_grid(images, normalize=True, scale_each=True, padding=0)
    np.testing.assert_allclose(each.numpy()[0, 0], [0.0, 1.0, 0.0, 1.0])
    ranged = vutils.make_grid(images, normalize=True, scale_each=True, value_range=(0, 10), padding=0)
    np.testing.assert_allclose(ranged.numpy()[0, 0], [0.0, 0.2, 1.0, 1.0])
    constant = vutils.make_grid(dl.full((2, 1, 2, 2), 3.0), normalize=True)
    assert np.isfinite(constant.numpy()).all() and constant.numpy().max() == 0.0


def test_no_autograd_history():
    x = dl.rand(4, 3, 2, 2, requires_grad=True)
    grid = vutils.make_grid(x, normalize=True)
    assert not grid.requires_grad and grid.grad_fn is None


def test_bad_input_errors():
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        vutils.make_grid(dl.rand(2, 1, 2, 2), normalize=True, value_range=[0, 1])
    with pytest.raises(TypeError, match="tensor or list of tensors expected"):
        vutils.make_grid(np.zeros((2, 3, 2, 2)))
    with pytest.raises(TypeError, match="a list containing"):
        vutils.make_grid([dl.rand(3, 2, 2), np.zeros((3, 2, 2))])
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3, 2, 2\)"):
        vutils.make_grid(dl.rand(1, 2, 3, 2, 2))
    with pytest.raises(ValueError, match="nrow"):
        vutils.make_grid(dl.rand(2, 3, 2, 2), nrow=0)


# ---------------------------------------------------------------- save_image


def _expected_pixels(grid):
    """torchvision's mapping: grid * 255 + 0.5, clamped to [0, 255], truncated to uint8, HWC."""
    return np.clip(grid * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def test_save_image_writes_the_grid_as_pixels(tmp_path):
    # values on both sides of each rounding step, and out of range to be clamped
    values = np.array([-0.1, 0.0, 0.5 / 255, 0.49 / 255, 0.5, 127.5 / 255, 1.0, 1.2], dtype=np.float32)
    images = dl.tensor(np.tile(values, (3, 3, 1, 1)))  # three 3-channel 1x8 images
    path = tmp_path / "grid.png"
    vutils.save_image(images, path, nrow=2, padding=1)
    with Image.open(path) as image:
        assert image.mode == "RGB"
        written = np.asarray(image)
    expected = _expected_pixels(vutils.make_grid(images, nrow=2, padding=1).numpy())
    assert written.shape == expected.shape == (5, 19, 3)
    np.testing.assert_array_equal(written, expected)
    assert written[1, 1:9, 0].tolist() == [0, 0, 1, 0, 128, 128, 255, 255]


def test_save_image_to_a_file_object_with_a_format_and_normalize():
    gray = dl.tensor(np.linspace(-3, 3, 16, dtype=np.float32).reshape(1, 4, 4))
    buffer = io.BytesIO()
    vutils.save_image(gray, buffer, format="PNG", normalize=True)
    written = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    expected = _expected_pixels(vutils.make_grid(gray, normalize=True).numpy())
    np.testing.assert_array_equal(written, expected)
    assert written[..., 0].min() == 0 and written[..., 0].max() == 255


def test_save_image_refuses_integer_images(tmp_path):
    with pytest.raises(TypeError, match="floating point"):
        vutils.save_image(dl.zeros(3, 2, 2, dtype=dl.uint8), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
