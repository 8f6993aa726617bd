import numpy as np
import pytest
from PIL import Image

import dltool.engine as dl
from dltool.datasets import transforms as T


def _grid(h=4, w=5):
    """A uint8 image whose pixel (i, j) is 10 * i + j."""
    return (10 * np.arange(h)[:, None] + np.arange(w)).astype(np.uint8)


# ---------------------------------------------------------------- ToTensor, Normalize


def test_to_tensor_hwc_uint8():
    hwc = np.array([[[0, 51, 255], [102, 153, 204]]], dtype=np.uint8)  # 1 x 2 x 3
    x = T.ToTensor()(hwc)
    assert x.shape == (3, 1, 2) and x.dtype == dl.float32
    assert T.ToTensor()(np.zeros((2, 3, 3), np.uint8)).is_contiguous()  # CHW in memory, as PyTorch's
    np.testing.assert_allclose(x.numpy(), [[[0.0, 0.4]], [[0.2, 0.6]], [[1.0, 0.8]]], rtol=1e-6)


def test_to_tensor_pil_and_2d():
    gray = Image.fromarray(_grid())
    x = T.ToTensor()(gray)
    assert x.shape == (1, 4, 5)
    assert x.numpy()[0, 2, 3] == np.float32(23) / np.float32(255)
    np.testing.assert_array_equal(T.ToTensor()(_grid()).numpy(), x.numpy())
    rgb = Image.fromarray(np.stack([_grid(), _grid() * 2, _grid() * 0], -1))
    assert T.ToTensor()(rgb).numpy()[1, 3, 4] == np.float32(68) / np.float32(255)


def test_to_tensor_keeps_non_uint8_values():
    x = T.ToTensor()(np.full((2, 2, 1), 3.5, np.float32))
    assert x.dtype == dl.float32 and x.numpy().max() == 3.5 and x.shape == (1, 2, 2)


def test_to_tensor_errors():
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()([1, 2])
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 4 dimensions."):
        T.ToTensor()(np.zeros((1, 1, 1, 1), np.uint8))


def test_normalize_values():
    x = dl.tensor([[[1.0, 2.0]], [[3.0, 5.0]]])  # 2 x 1 x 2
    y = T.Normalize(mean=[1.0, 1.0], std=[2.0, 4.0])(x)
    np.testing.assert_allclose(y.numpy(), [[[0.0, 0.5]], [[0.5, 1.0]]])
    assert x.numpy()[0, 0, 1] == 2.0  # not in place
    z = T.Normalize([1.0, 1.0], [2.0, 4.0], inplace=True)(x)
    assert z is x and x.numpy()[0, 0, 1] == 0.5
    normalize = T.Normalize([1.0, 1.0], [2.0, 4.0])
    normalize(x)
    normalize.std = [1.0, 1.0]  # the kept statistics follow a change
    np.testing.assert_allclose(normalize(dl.ones(2, 1, 1)).numpy(), [[[0.0]], [[0.0]]])
    normalize.std = [1.0, 0.0]
    with pytest.raises(ValueError, match="std evaluated to zero"):
        normalize(x)
    numbers = T.Normalize(1.0, 2.0)(dl.tensor([[[1.0, 2.0]], [[3.0, 5.0]]]))  # plain numbers too
    np.testing.assert_allclose(numbers.numpy(), [[[0.0, 0.5]], [[1.0, 2.0]]])


def test_normalize_errors():
    with pytest.raises(TypeError, match="Input tensor should be a float tensor"):
        T.Normalize([0.0], [1.0])(dl.zeros(1, 2, 2, dtype=dl.int64))
    with pytest.raises(ValueError, match="Expected tensor to be a tensor image of size"):
        T.Normalize([0.0], [1.0])(dl.zeros(2, 2))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize([0.0], [0.0])(dl.zeros(1, 2, 2))
    with pytest.raises(TypeError, match="img should be Tensor Image"):
        T.Normalize([0.0], [1.0])(np.zeros((1, 2, 2)))


@pytest.mark.parametrize("dtype", [dl.float32, dl.float64])
def test_to_tensor_and_normalize_match_torchvision_bit_for_bit(dtype):
    torch = pytest.importorskip("torch")
    images = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)
    transform = T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))])
    try:
        dl.set_default_dtype(dtype)
        ours = T.batch_transform(transform)(images).numpy()
    finally:
        dl.set_default_dtype(dl.float32)
    # torchvision: img.permute(2, 0, 1).to(default dtype).div(255), then sub_(mean).div_(std)
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).to(getattr(torch, np.dtype(dtype).name)).div(255)
    expected = expected.sub_(torch.tensor(0.2860, dtype=expected.dtype)).div_(torch.tensor(0.3530, dtype=expected.dtype))
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, expected.numpy())


def test_batch_transform_equals_per_image_transforms():
    images = np.random.default_rng(0).integers(0, 256, (5, 6, 7, 3)).astype(np.uint8)
    transform = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    original = images.copy()
    batched = T.batch_transform(transform)(images)
    expected = np.stack([transform(image).numpy() for image in images])
    np.testing.assert_array_equal(batched.numpy(), expected)
    np.testing.assert_array_equal(images, original)
    floats = images.astype(np.float32)
    T.batch_transform(transform)(floats)  # float images are copied, not normalized in place
    np.testing.assert_array_equal(floats, original.astype(np.float32))
    assert T.batch_transform(T.Compose([T.ToTensor(), T.Lambda(lambda x: x)])) is None
    assert T.batch_transform(None) is None


# ---------------------------------------------------------------- Compose, Lambda, Grayscale


def test_compose_and_lambda():
    transform = T.Compose([T.Lambda(lambda x: x + 1), T.Lambda(lambda x: x * 10)])
    assert transform(1) == 20 and "Lambda" in repr(transform)
    with pytest.raises(TypeError, match="Argument lambd should be callable"):
        T.Lambda(3)


def test_grayscale_uses_luma_weights():
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = (100, 0, 0)
    rgb[0, 1] = (0, 0, 200)
    gray = T.Grayscale()(Image.fromarray(rgb))
    assert gray.mode == "L" and np.asarray(gray).tolist() == [[30, 23]]  # 0.299*100, 0.114*200
    three = T.Grayscale(num_output_channels=3)(Image.fromarray(rgb))
    assert three.mode == "RGB" and np.asarray(three)[0, 0].tolist() == [30, 30, 30]
    x = T.Grayscale()(T.ToTensor()(rgb))
    np.testing.assert_allclose(x.numpy(), [[[0.2989 * 100 / 255, 0.114 * 200 / 255]]], rtol=1e-5)
    with pytest.raises(ValueError, match="num_output_channels should be either 1 or 3"):
        T.Grayscale(2)


# ---------------------------------------------------------------- geometry


def test_resize():
    image = Image.fromarray(np.zeros((20, 10), np.uint8))  # h=20, w=10
    assert T.Resize(5)(image).size == (5, 10)  # smaller edge to 5, aspect kept
    assert T.Resize((3, 7))(image).size == (7, 3)
    assert T.Resize(5, max_size=8)(image).size == (4, 8)
    blocks = Image.fromarray(np.kron(np.array([[0, 255]], np.uint8), np.ones((2, 2), np.uint8)))
    small = T.Resize((1, 2), interpolation=T.InterpolationMode.NEAREST)(blocks)
    assert np.asarray(small).tolist() == [[0, 255]]
    with pytest.raises(ValueError, match="If size is a sequence, it should have 1 or 2 values"):
        T.Resize((1, 2, 3))
    with pytest.raises(TypeError, match="Resize takes a PIL Image"):
        T.Resize(2)(dl.zeros(1, 4, 4))


def test_center_crop_pil_and_tensor():
    image = _grid(4, 5)
    expected = [[11, 12, 13], [21, 22, 23]]  # top = round(1.0), left = round(1.0)
    assert np.asarray(T.CenterCrop((2, 3))(Image.fromarray(image))).tolist() == expected
    x = dl.tensor(image[None].astype(np.float32))
    assert T.CenterCrop((2, 3))(x).numpy()[0].tolist() == expected


def test_center_crop_pads_small_images():
    out = T.CenterCrop(4)(dl.ones(1, 2, 2))
    assert out.shape == (1, 4, 4)
    assert out.numpy()[0].tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_modes_match_numpy(mode):
    image = _grid(3, 4)
    kwargs = {"constant_values": 7} if mode == "constant" else {}
    expected = np.pad(image, ((2, 0), (1, 3)), mode=mode, **kwargs)
    out = T.pad(Image.fromarray(image), (1, 2, 3, 0), fill=7, padding_mode=mode)
    np.testing.assert_array_equal(np.asarray(out), expected)
    x = T.pad(dl.tensor(image[None]), (1, 2, 3, 0), fill=7, padding_mode=mode)
    np.testing.assert_array_equal(x.numpy()[0], expected)


def test_pad_fills_rgb_with_a_color():
    out = T.pad(Image.fromarray(np.zeros((1, 1, 3), np.uint8)), 1, fill=(1, 2, 3))
    assert np.asarray(out)[0, 0].tolist() == [1, 2, 3] and out.size == (3, 3)
    with pytest.raises(ValueError, match="Padding must be an int or a 1, 2, or 4 element tuple, not a 3"):
        T.pad(out, (1, 2, 3))


def test_random_crop_is_seeded_and_within_the_padded_image():
    image = Image.fromarray(_grid(6, 6))
    crop = T.RandomCrop(4, padding=2)
    dl.manual_seed(3)
    first = [np.asarray(crop(image)) for _ in range(5)]
    dl.manual_seed(3)
    assert all((a == np.asarray(crop(image))).all() for a in first)
    padded = np.pad(_grid(6, 6), 2)
    windows = {padded[i : i + 4, j : j + 4].tobytes() for i in range(7) for j in range(7)}
    assert all(a.shape == (4, 4) and a.tobytes() in windows for a in first)
    assert len({a.tobytes() for a in first}) > 1


def test_random_crop_generator_pad_if_needed_and_errors():
    x = dl.tensor(_grid(3, 3)[None])
    a = T.RandomCrop(2, generator=dl.Generator().manual_seed(1))(x)
    b = T.RandomCrop(2, generator=dl.Generator().manual_seed(1))(x)
    assert a.tolist() == b.tolist()
    assert T.RandomCrop((5, 4), pad_if_needed=True)(x).shape == (1, 5, 4)
    with pytest.raises(
        ValueError, match=r"Required crop size \(5, 5\) is larger than input image size \(3, 3\)"
    ):
        T.RandomCrop(5)(x)


def test_random_flips():
    image = _grid(2, 3)
    assert (
        np.asarray(T.RandomHorizontalFlip(p=1.0)(Image.fromarray(image))).tolist() == image[:, ::-1].tolist()
    )
    assert np.asarray(T.RandomVerticalFlip(p=1.0)(Image.fromarray(image))).tolist() == image[::-1].tolist()
    assert T.RandomHorizontalFlip(p=0.0)(dl.tensor(image)).tolist() == image.tolist()
    assert T.RandomHorizontalFlip(p=1.0)(dl.tensor(image)).tolist() == image[:, ::-1].tolist()
    flip = T.RandomHorizontalFlip()
    dl.manual_seed(0)
    flips = [flip(dl.tensor(image)).tolist() == image.tolist() for _ in range(200)]
    assert 60 < sum(flips) < 140
    dl.manual_seed(0)
    assert flips == [flip(dl.tensor(image)).tolist() == image.tolist() for _ in range(200)]


def test_random_rotation():
    image = Image.fromarray(_grid(4, 4))
    quarter = T.RandomRotation((90, 90))(image)  # counter-clockwise, as PIL and torchvision
    assert np.asarray(quarter).tolist() == np.rot90(_grid(4, 4)).tolist()
    filled = T.RandomRotation((45, 45), fill=255)(Image.fromarray(np.zeros((9, 9), np.uint8)))
    assert np.asarray(filled)[0, 0] == 255 and np.asarray(filled)[4, 4] == 0
    with pytest.raises(ValueError, match="If degrees is a single number, it must be positive."):
        T.RandomRotation(-3)
    with pytest.raises(ValueError, match="If degrees is a sequence, it must be of len 2."):
        T.RandomRotation([1, 2, 3])
    dl.manual_seed(5)
    first = np.asarray(T.RandomRotation(30)(image))
    dl.manual_seed(5)
    assert (np.asarray(T.RandomRotation(30)(image)) == first).all()
