"""The pictures a run draws: sizes, PNG round trips, and cells that show the right counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dltool.training.pictures import confusion_matrix_image, image_grid, misclassified_image


def _png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Image.open(io.BytesIO(buffer.getvalue()))


def _cell_brightness(image: Image.Image, size: int, cell: int) -> np.ndarray:
    """The luma of each cell's corner, clear of the count written in its middle."""
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    left, top = image.width - size * cell, image.height - size * cell
    return np.array(
        [[pixels[top + i * cell + 2, left + j * cell + 2] for j in range(size)] for i in range(size)]
    )


@pytest.mark.parametrize("brightest", [(0, 0), (1, 2), (2, 1)])
def test_the_largest_share_draws_the_brightest_cell(brightest: tuple[int, int]) -> None:
    counts = np.full((3, 3), 2)
    counts[brightest] = 50
    picture = _png(confusion_matrix_image(counts, ["a", "b", "c"], cell=30))
    luma = _cell_brightness(picture, 3, 30)
    assert np.unravel_index(luma.argmax(), luma.shape) == brightest
    assert picture.format == "PNG" and picture.mode == "RGB"


def test_rows_are_shares_of_their_class() -> None:
    counts = np.array([[10, 10], [1, 99]])  # same counts would look alike; shares differ
    luma = _cell_brightness(confusion_matrix_image(counts, ["x", "y"], cell=30), 2, 30)
    assert luma[0, 0] == luma[0, 1] and luma[1, 1] > luma[0, 0] > luma[1, 0]


def test_a_class_without_samples_draws_dark_not_nan() -> None:
    luma = _cell_brightness(confusion_matrix_image(np.array([[0, 0], [3, 1]]), ["x", "y"]), 2, 36)
    assert np.isfinite(luma).all() and luma[0, 0] == luma[0, 1] < luma[1, 0]


def test_size_grows_with_the_classes_and_the_longest_label() -> None:
    short = confusion_matrix_image(np.eye(4, dtype=int), list("abcd"), cell=20)
    long = confusion_matrix_image(np.eye(4, dtype=int), ["a", "b", "c", "a much longer name"], cell=20)
    assert short.height == long.height and long.width > short.width
    assert short.width - confusion_matrix_image(np.eye(3, dtype=int), list("abc"), cell=20).width == 20


def test_misclassified_samples_are_tiled_eight_a_row_with_captions() -> None:
    images = np.random.default_rng(0).random((10, 1, 28, 28))
    picture = _png(misclassified_image(images, [0] * 10, [1] * 10, ["shirt", "coat"]))
    tile = 28 * 4  # enlarged to at least 96 pixels
    assert picture.size == (8 * (tile + 2), 2 * (tile + 12 + 2))
    rgb = misclassified_image(
        np.random.default_rng(1).random((3, 3, 32, 32)), [0, 1, 0], [1, 0, 1], ["a", "b"]
    )
    assert rgb.size == (3 * (96 + 2), 96 + 12 + 2)


@pytest.mark.parametrize(
    ("shape", "nrow", "padding", "size"),
    [
        ((10, 1, 28, 28), 8, 2, (8 * 30 + 2, 2 * 30 + 2)),
        ((8, 1, 28, 28), 8, 2, (8 * 30 + 2, 30 + 2)),
        ((1, 1, 28, 28), 8, 2, (32, 32)),
        ((9, 1, 28, 28), 3, 0, (84, 84)),
        ((5, 1, 28, 16), 2, 1, (2 * 17 + 1, 3 * 29 + 1)),
        ((3, 3, 8, 8), 4, 4, (3 * 12 + 4, 12 + 4)),
    ],
)
def test_image_grid_size(shape: tuple, nrow: int, padding: int, size: tuple[int, int]) -> None:
    grid = image_grid(np.zeros(shape, dtype=np.float32), nrow=nrow, padding=padding)
    assert grid.size == size and grid.mode == ("L" if shape[1] == 1 else "RGB")


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_survives_a_png_round_trip(channels: int) -> None:
    grid = image_grid(np.random.default_rng(0).uniform(-1, 1, (7, channels, 12, 10)), nrow=3)
    decoded = _png(grid)
    assert decoded.format == "PNG" and decoded.mode == grid.mode and decoded.size == grid.size
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(grid))


def test_each_image_lands_in_its_cell_and_the_padding_is_black() -> None:
    images = np.full((6, 1, 28, 28), -1.0)
    images[3] = 1.0
    pixels = np.asarray(image_grid(images, nrow=4, padding=2))
    expected = np.zeros((2 * 30 + 2, 4 * 30 + 2), dtype=np.uint8)
    expected[2:30, 3 * 30 + 2 : 4 * 30] = 255  # row 0, column 3
    np.testing.assert_array_equal(pixels, expected)
    colors = np.full((5, 3, 4, 6), -1.0)
    colors[4, 0] = 1.0  # a red image, last of 5 at two a row: row 2, column 0
    rgb = np.asarray(image_grid(colors, nrow=2, padding=1))
    assert rgb.shape == (3 * 5 + 1, 2 * 7 + 1, 3)
    red = np.zeros_like(rgb)
    red[11:15, 1:7, 0] = 255
    np.testing.assert_array_equal(rgb, red)


def test_image_grid_clips_to_the_value_range_and_rounds_to_nearest() -> None:
    values = np.array([-5.0, -1.0, 0.0, 0.25, 1.0, 5.0]).reshape(6, 1, 1, 1)
    pixels = np.asarray(image_grid(values, nrow=6, padding=0))
    np.testing.assert_array_equal(pixels, [[0, 0, 128, 159, 255, 255]])
    unit = np.asarray(image_grid(values / 4, nrow=6, padding=0, value_range=(0.0, 1.0)))
    np.testing.assert_array_equal(unit, [[0, 0, 0, 16, 64, 255]])


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (np.zeros((1, 28, 28)), {}, r"\(N, C, H, W\) batch .* got shape \(1, 28, 28\)"),
        (np.zeros((2, 2, 8, 8)), {}, "C 1 or 3, got shape"),
        (np.zeros((0, 1, 8, 8)), {}, "non-empty"),
        (np.zeros((2, 1, 8, 8)), {"nrow": 0}, "nrow must be >= 1"),
        (np.zeros((2, 1, 8, 8)), {"padding": -1}, "padding >= 0"),
        (np.zeros((2, 1, 8, 8)), {"value_range": (1.0, 1.0)}, "low < high"),
    ],
)
def test_image_grid_rejects_bad_input(images: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        image_grid(images, **kwargs)
