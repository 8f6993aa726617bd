"""``make_grid`` and ``save_image``: a batch of images as one picture, as ``torchvision.utils``.

``from dltool.datasets import utils as vutils`` stands in for ``import torchvision.utils as vutils``:
same names, arguments, defaults and layout. Both work on the arrays without recording autograd
history (torchvision runs them under ``no_grad``).
"""

from __future__ import annotations

import os
from typing import IO, Any

import numpy as np
from PIL import Image

from dltool.engine import backend
from dltool.engine.tensor import Tensor


def make_grid(
    tensor: Tensor | list[Tensor],
    nrow: int = 8,
    padding: int = 2,
    normalize: bool = False,
    value_range: tuple[float, float] | None = None,
    scale_each: bool = False,
    pad_value: float = 0.0,
) -> Tensor:
    """Tile a batch of images into one image, row by row, with ``padding`` pixels around each.

    One-channel images become three-channel (gray to RGB). A single image comes back without
    padding.

    Args:
        tensor: a ``(B, C, H, W)`` batch, a list of ``(C, H, W)`` images, one ``(C, H, W)`` or one
            ``(H, W)`` image.
        nrow: images per row; the grid has ``ceil(B / nrow)`` rows.
        padding: pixels between images and around the edge.
        normalize: shift and scale values to [0, 1]: by ``value_range`` where given, else by the
            batch's minimum and maximum (each image's own with ``scale_each``).
        value_range: ``(min, max)`` for ``normalize``; values outside it are clamped.
        scale_each: normalize each image by its own minimum and maximum.
        pad_value: the value of the padding pixels.

    Returns:
        A ``(C, H', W')`` tensor on the input's device.

    Raises:
        TypeError: ``tensor`` is not a tensor or a list of tensors, or ``value_range`` is not a tuple.
        ValueError: the shape is not an image's or a batch's, or ``nrow`` is not positive.

    Example:
        >>> make_grid(zeros(5, 1, 28, 28), nrow=4).shape
        (3, 62, 122)
    """
    images = _batch(tensor)
    if normalize:
        images = _normalize(images, value_range, scale_each)
    if images.shape[0] == 1:
        return Tensor._make(images[0])
    if nrow < 1:
        raise ValueError(f"nrow should be a positive integer, got {nrow}")
    return Tensor._make(_tile(images, nrow, padding, pad_value))


def save_image(
    tensor: Tensor | list[Tensor], fp: str | os.PathLike | IO[bytes], format: str | None = None, **kwargs: Any
) -> None:
    """Write ``make_grid(tensor, **kwargs)`` as an image file (pillow), as ``torchvision.utils.save_image``.

    Values in [0, 1] map to 0..255: ``value * 255 + 0.5``, clamped, then truncated to uint8.

    Args:
        tensor: what ``make_grid`` takes, with values in [0, 1] (or ``normalize=True``).
        fp: a path or a writable binary file object.
        format: pillow's format name (``"PNG"``); ``None`` picks it from the file name.
        **kwargs: ``make_grid``'s arguments (``nrow``, ``padding``, ``normalize``, ...).

    Raises:
        TypeError: the images are not floating point.

    Example:
        >>> save_image(randn(16, 1, 28, 28), "samples.png", nrow=8, normalize=True)
    """
    grid = backend.move(make_grid(tensor, **kwargs)._data, backend.CPU)
    if grid.dtype.kind != "f":
        raise TypeError(f"save_image expects floating point images with values in [0, 1], got {grid.dtype}")
    pixels = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(pixels.transpose(1, 2, 0)).save(fp, format=format)


def _batch(tensor: Tensor | list[Tensor]) -> Any:
    """The images as a ``(B, C, H, W)`` array, one channel repeated to three."""
    if isinstance(tensor, list):
        for item in tensor:
            if not isinstance(item, Tensor):
                raise TypeError(f"tensor or list of tensors expected, got a list containing {type(item)}")
        if not tensor:
            raise ValueError("make_grid expects at least one image, got an empty list")
        images = backend.array_module(tensor[0]._data).stack([item._data for item in tensor])
    elif isinstance(tensor, Tensor):
        images = tensor._data
    else:
        raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")
    if images.ndim not in (2, 3, 4):
        raise ValueError(
            f"make_grid expects a (B, C, H, W) batch or a (C, H, W) or (H, W) image, got shape {images.shape}"
        )
    images = images.reshape((1,) * (4 - images.ndim) + images.shape)
    if images.shape[1] == 1:
        images = backend.array_module(images).repeat(images, 3, axis=1)
    return images


def _normalize(images: Any, value_range: tuple[float, float] | None, scale_each: bool) -> Any:
    """``images`` clamped to the range and scaled to [0, 1]; the range is the values' own by default."""
    if value_range is not None and not isinstance(value_range, tuple):
        raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
    if images.dtype.kind != "f":
        raise TypeError(f"make_grid(normalize=True) expects floating point images, got {images.dtype}")
    xp = backend.array_module(images)
    if value_range is not None:
        low, high = (xp.asarray(bound, dtype=images.dtype) for bound in value_range)
    else:
        axes = (1, 2, 3) if scale_each else None
        low, high = images.min(axis=axes, keepdims=True), images.max(axis=axes, keepdims=True)
    # NOTE: the floor on the span keeps a constant image finite (it maps to 0), as torchvision's does
    return (xp.clip(images, low, high) - low) / xp.maximum(high - low, images.dtype.type(1e-5))


def _tile(images: Any, nrow: int, padding: int, pad_value: float) -> Any:
    """Lay the images out ``nrow`` to a row, each cell ``padding`` pixels above and left of its image."""
    xp = backend.array_module(images)
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = -(-count // columns)
    cell_height, cell_width = height + padding, width + padding
    cells = xp.full((rows * columns, channels, cell_height, cell_width), pad_value, dtype=images.dtype)
    cells[:count, :, padding:, padding:] = images
    # (row, column, C, y, x) -> (C, row, y, column, x): cells side by side, then rows one under another
    tiled = cells.reshape(rows, columns, channels, cell_height, cell_width).transpose(2, 0, 3, 1, 4)
    grid = xp.full(
        (channels, rows * cell_height + padding, columns * cell_width + padding), pad_value, images.dtype
    )
    grid[:, : rows * cell_height, : columns * cell_width] = tiled.reshape(
        channels, rows * cell_height, columns * cell_width
    )
    return grid
