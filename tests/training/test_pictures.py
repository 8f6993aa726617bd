"""The pictures a run draws: sizes, PNG round trips, and cells that show the right counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dltool.training.pictures import confusion_matrix_image, misclassified_image


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
