"""Pictures of a classifier's results, drawn with pillow: a confusion matrix and misclassified samples.

TensorBoard's Images tab shows them every validation epoch, and ``dltool eval`` writes the
confusion matrix beside its JSON report. ``image_grid`` tiles any batch of images, such as a
generator's samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_DARK = np.array([30, 30, 70], dtype=np.float64)  # a share of 0
_BRIGHT = np.array([255, 225, 60], dtype=np.float64)  # a share of 1: brighter means more
_MARGIN = 6
# NOTE: pillow's bitmap font draws text 6x faster than its default TrueType one, and a 10-class
# matrix writes 120 labels and counts every validation epoch
_FONT = ImageFont.load_default_imagefont()


def confusion_matrix_image(matrix: np.ndarray, classes: Sequence[str], cell: int = 36) -> Image.Image:
    """The confusion matrix as a heat map: true classes on rows, predicted on columns.

    Each row is normalized by its class's support, so a cell's brightness is the share of that
    class predicted as the column's class; the count is written in the cell. Rows are labelled
    ``<index> <name>``, columns by index.

    Args:
        matrix: counts, ``(C, C)``, true classes on rows.
        classes: the class names, in index order.
        cell: a cell's side in pixels.

    Example:
        >>> confusion_matrix_image(np.array([[5, 1], [0, 4]]), ["cat", "dog"]).size
        (114, 96)
    """
    counts = np.asarray(matrix, dtype=np.int64)
    support = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    font = _FONT
    labels = [f"{i} {name}"[:16] for i, name in enumerate(classes)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = int(max(probe.textlength(label, font=font) for label in labels)) + 2 * _MARGIN
    top = cell // 2 + _MARGIN
    size = len(classes)
    image = Image.new("RGB", (left + size * cell, top + size * cell), "white")
    colors = (_DARK + shares[..., None] * (_BRIGHT - _DARK)).round().astype(np.uint8)
    pixels = np.kron(colors, np.ones((cell, cell, 1), dtype=np.uint8))
    image.paste(Image.fromarray(pixels), (left, top))
    draw = ImageDraw.Draw(image)
    for i, label in enumerate(labels):
        middle = top + i * cell + cell // 2
        draw.text((_MARGIN, middle), label, fill="black", font=font, anchor="lm")
        draw.text((left + i * cell + cell // 2, top // 2), str(i), fill="black", font=font, anchor="mm")
        for j in range(size):
            ink = "black" if shares[i, j] > 0.5 else "white"
            center = (left + j * cell + cell // 2, middle)
            draw.text(center, str(counts[i, j]), fill=ink, font=font, anchor="mm")
    return image


def misclassified_image(
    images: np.ndarray, targets: Sequence[int], predictions: Sequence[int], classes: Sequence[str]
) -> Image.Image:
    """A grid of samples, eight a row, each captioned ``true>predicted`` (class names, shortened).

    Args:
        images: ``(N, C, H, W)`` model inputs; each is scaled to its own range for display.
        targets: the true class of each.
        predictions: the predicted class of each.
        classes: the class names, in index order.
    """
    tiles = [_tile(image) for image in images]
    width, height = tiles[0].size
    columns, caption = min(8, len(tiles)), 12
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (columns * (width + 2), rows * (height + caption + 2)), "white")
    draw, font = ImageDraw.Draw(canvas), _FONT
    for k, (tile, true, predicted) in enumerate(zip(tiles, targets, predictions, strict=True)):
        row, column = divmod(k, columns)
        x, y = column * (width + 2), row * (height + caption + 2)
        canvas.paste(tile, (x, y))
        draw.text(
            (x + 1, y + height), f"{classes[true][:6]}>{classes[predicted][:6]}", fill="black", font=font
        )
    return canvas


def image_grid(
    images: np.ndarray, nrow: int = 8, padding: int = 2, value_range: tuple[float, float] = (-1.0, 1.0)
) -> Image.Image:
    """A batch of images tiled ``nrow`` a row on black, as torchvision's ``make_grid`` and ``save_image``.

    Values are clipped to ``value_range`` and mapped linearly onto 0..255 (rounded half up, as
    ``save_image`` does); ``padding`` black pixels separate the images and frame the grid. Unlike
    ``make_grid``, a batch of one image is framed too, and one channel stays grayscale.

    Args:
        images: ``(N, C, H, W)`` floats, ``C`` 1 or 3 (a generator's samples, for instance).
        nrow: images a row; the last row may be shorter.
        padding: pixels between neighbours and around the grid.
        value_range: the values shown as black and as white.

    Returns:
        An ``"L"`` image for one channel, ``"RGB"`` for three.

    Raises:
        ValueError: ``images`` is not a non-empty ``(N, 1 or 3, H, W)`` batch, or ``nrow``,
            ``padding`` or ``value_range`` is impossible.

    Example:
        >>> image_grid(np.zeros((10, 1, 28, 28))).size
        (242, 62)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(
            f"images must be a non-empty (N, C, H, W) batch with C 1 or 3, got shape {images.shape}"
        )
    if nrow < 1 or padding < 0:
        raise ValueError(f"nrow must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    pixels = ((np.clip(images, low, high) - low) / (high - low) * 255 + 0.5).astype(np.uint8)
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = -(-count // columns)
    # each cell is an image with its padding above and to the left; the frame's last edges come after
    cells = np.zeros((rows * columns, height + padding, width + padding, channels), dtype=np.uint8)
    cells[:count, padding:, padding:] = pixels.transpose(0, 2, 3, 1)
    grid = cells.reshape(rows, columns, height + padding, width + padding, channels).swapaxes(1, 2)
    grid = grid.reshape(rows * (height + padding), columns * (width + padding), channels)
    grid = np.pad(grid, ((0, padding), (0, padding), (0, 0)))
    return Image.fromarray(grid[..., 0] if channels == 1 else grid)


def _tile(image: np.ndarray) -> Image.Image:
    """One ``(C, H, W)`` input scaled to its own range, as RGB, enlarged to at least 96 pixels wide
    (so a caption fits under a 28 x 28 digit)."""
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    pixels = (scaled.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    tile = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).convert("RGB")
    factor = -(-96 // tile.width)
    return tile.resize((tile.width * factor, tile.height * factor), Image.Resampling.NEAREST)
