"""Resampling: ``interpolate`` (nearest, nearest-exact, linear, bilinear, trilinear, area) and
``pixel_shuffle`` / ``pixel_unshuffle``.

Interpolation is separable: one spatial axis at a time, from the last, the input is gathered at the
source positions PyTorch's kernels compute (in the same float precision, so the same pixels are
picked) and, for the linear modes, blended with the next one. Going from the last axis gives
PyTorch's order of products and sums. The gather is its own ``Function``: its indices never
decrease, so its backward sums runs of equal indices with ``reduceat``, about three times faster
than a scatter-add.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.ops.pool import adaptive_avg_pool1d, adaptive_avg_pool2d
from dltool.engine.tensor import Tensor

# =============================================================== gather along an axis


class Take(Function):
    """``x`` gathered along ``axis`` at ``index``, a non-decreasing host array."""

    @staticmethod
    def forward(ctx, x, index, axis):
        ctx.size, ctx.index, ctx.axis = x.shape[axis], index, axis
        return x._xp().take(x._data, backend.move(index, x.device), axis=axis)

    @staticmethod
    def backward(ctx, grad_output):
        return SumRuns.apply(grad_output, ctx.index, ctx.size, ctx.axis), None, None


class SumRuns(Function):
    """``Take``'s adjoint: slice ``i`` of ``x`` along ``axis`` added into slice ``index[i]`` of an
    axis of ``size``."""

    @staticmethod
    def forward(ctx, x, index, size, axis):
        ctx.index, ctx.axis = index, axis
        xp = x._xp()
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        sums = xp.add.reduceat(x._data, backend.move(starts, x.device), axis=axis)
        if len(starts) == size:  # every source slice is used, in order: upsampling
            return sums
        out = xp.zeros(x.shape[:axis] + (size,) + x.shape[axis + 1 :], dtype=x.dtype)
        out[(slice(None),) * axis + (backend.move(index[starts], x.device),)] = sums
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return Take.apply(grad_output, ctx.index, ctx.axis), None, None, None


# =============================================================== source positions


def _nearest_index(size: int, out: int, scale: float | None, exact: bool, shortcut: bool) -> np.ndarray:
    """The source of each output position, by PyTorch's nearest(-exact) rule in float32."""
    if shortcut and out in (size, 2 * size):
        # NOTE: PyTorch's 2-D nearest kernel, and only it, copies or halves for these two sizes
        return np.arange(out) // (out // size)
    ratio = np.float32(1.0 / scale) if scale else np.float32(size) / np.float32(out)
    positions = np.arange(out)
    if exact:  # PyTorch adds the half in double precision and floors in single
        source = ((positions + 0.5) * np.float64(ratio)).astype(np.float32)
    else:
        source = positions.astype(np.float32) * ratio
    return np.minimum(np.floor(source).astype(np.int64), size - 1)


def _linear_sources(size: int, out: int, scale: float | None, align_corners: bool, dtype: Any) -> tuple:
    """Lower and upper source of each output position and the upper one's weight, computed as
    PyTorch's linear kernels do, in the input's precision (float32 for float16)."""
    real = np.promote_types(dtype, np.float32).type
    positions = np.arange(out, dtype=real)
    if align_corners:
        ratio = real(size - 1) / real(out - 1) if out > 1 else real(0)
        source = ratio * positions
    else:
        ratio = real(1.0 / scale) if scale else real(size) / real(out)
        source = np.maximum(ratio * (positions + real(0.5)) - real(0.5), real(0))
    low = np.minimum(np.floor(source).astype(np.int64), size - 1)
    weight = np.clip(source - low.astype(real), 0, 1)
    return low, np.minimum(low + 1, size - 1), weight


def _blend(x: Tensor, axis: int, low: np.ndarray, high: np.ndarray, weight: np.ndarray) -> Tensor:
    """``(1 - weight) * x[low] + weight * x[high]`` along ``axis``."""
    upper = weight.astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    lower, upper = (Tensor._make(backend.move(w, x.device)) for w in (1 - upper, upper))
    return Take.apply(x, low, axis) * lower + Take.apply(x, high, axis) * upper


# =============================================================== interpolate


_RANKS = {
    "nearest": (3, 4, 5),
    "nearest-exact": (3, 4, 5),
    "area": (3, 4),
    "linear": (3,),
    "bilinear": (4,),
    "trilinear": (5,),
}


def _per_dim(value: Any, dim: int, message: str) -> list:
    """``value`` for each of ``dim`` spatial dims: a sequence of that length, or one number."""
    if isinstance(value, (list, tuple)):
        if len(value) != dim:
            raise ValueError(message)
        return list(value)
    return [value] * dim


def _output_geometry(input: Tensor, size: Any, scale_factor: Any, recompute: bool | None, mode: str) -> tuple:
    """The output size of each spatial dim, and the scale factor the kernels get (or ``None``)."""
    dim, spatial = input.ndim - 2, list(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        sizes = _per_dim(
            size,
            dim,
            (
                "Input and output must have the same number of spatial dimensions, but got input with spatial "
                f"dimensions of {spatial} and output size of {size}. Please provide input tensor in (N, C, d1, "
                "d2, ...,dK) format and output size in (o1, o2, ...,oK) format."
            ),
        )
        if not all(isinstance(s, (int, np.integer)) for s in sizes):
            raise TypeError(
                "expected size to be one of int or Tuple[int] or Tuple[int, int] or Tuple[int, int, int], "
                f"but got size with types {[type(s) for s in sizes]}"
            )
        if recompute:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        return [int(s) for s in sizes], [None] * dim
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    scales = [
        float(s)
        for s in _per_dim(
            scale_factor,
            dim,
            (
                "Input and scale_factor must have the same number of spatial dimensions, but got input with "
                f"spatial dimensions of {spatial} and scale_factor of shape {scale_factor}. Please provide input "
                "tensor in (N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) format."
            ),
        )
    ]
    sizes = [int(n * s) for n, s in zip(spatial, scales, strict=True)]
    # area pooling, like a recomputed scale, works from the output size alone
    return sizes, [None] * dim if recompute or mode == "area" else scales


def _named_sizes(sizes: list) -> str:
    """``H: 4, W: 5``, as PyTorch names the spatial sizes in its messages."""
    return ", ".join(f"{name}: {n}" for name, n in zip(("D", "H", "W")[3 - len(sizes) :], sizes, strict=True))


def _check_mode(input: Tensor, mode: str, sizes: list) -> None:
    """PyTorch's errors for a mode and rank that do not go together, and for empty sizes."""
    ndim = input.ndim
    if ndim not in _RANKS.get(mode, ()):
        if ndim in (3, 4, 5) and mode in ("linear", "bilinear", "trilinear"):
            raise NotImplementedError(f"Got {ndim}D input, but {mode} mode needs {_RANKS[mode][0]}D input")
        if ndim in (3, 4, 5) and mode in ("bicubic", "lanczos", "area"):
            raise NotImplementedError(f"interpolate: mode '{mode}' is not supported for {ndim}D input")
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {ndim}D) for the modes: nearest | "
            f"linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact (got {mode})"
        )
    spatial = list(input.shape[2:])
    if min(spatial + sizes) <= 0:
        raise RuntimeError(
            "Input and output sizes should be greater than 0, but got input "
            f"({_named_sizes(spatial)}) output ({_named_sizes(sizes)})"
        )
    if mode in ("linear", "bilinear", "trilinear") and not input.is_floating_point():
        raise NotImplementedError(f"interpolate: mode '{mode}' is not implemented for {input.dtype}")


def interpolate(
    input: Tensor,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of ``(N, C, *spatial)`` to ``size`` or by ``scale_factor``.

    Modes ``nearest``, ``nearest-exact``, ``linear`` (3-D), ``bilinear`` (4-D), ``trilinear``
    (5-D) and ``area`` (3-D, 4-D) pick and weigh the same source pixels as PyTorch; ``bicubic``,
    ``lanczos`` and ``antialias=True`` are not implemented.

    Raises:
        ValueError: for both or neither of ``size`` and ``scale_factor``, lengths that do not match
            the spatial dims, or ``align_corners`` with a non-interpolating mode.
        NotImplementedError: for a mode that does not fit the input's rank.
        RuntimeError: for an empty input or output size.

    Example:
        >>> interpolate(ones(1, 3, 4, 4), scale_factor=2, mode="bilinear").shape
        (1, 3, 8, 8)
    """
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError(
                "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear"
            )
    elif align_corners is None:
        align_corners = False
    sizes, scales = _output_geometry(input, size, scale_factor, recompute_scale_factor, mode)
    if antialias:
        if not (mode in ("bilinear", "bicubic", "lanczos") and input.ndim == 4):
            raise ValueError(
                "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D tensor as input"
            )
        raise NotImplementedError("interpolate: antialias=True is not supported")
    _check_mode(input, mode, sizes)
    if mode == "area":
        return (adaptive_avg_pool1d if input.ndim == 3 else adaptive_avg_pool2d)(input, sizes)
    x = input
    for axis in reversed(range(2, input.ndim)):
        size_in, out, scale = input.shape[axis], sizes[axis - 2], scales[axis - 2]
        if mode in ("nearest", "nearest-exact"):
            index = _nearest_index(
                size_in, out, scale, mode == "nearest-exact", mode == "nearest" and input.ndim == 4
            )
            x = Take.apply(x, index, axis)
        elif out != size_in:  # the linear kernels copy an axis whose size is unchanged
            x = _blend(x, axis, *_linear_sources(size_in, out, scale, align_corners, input.dtype))
    return x


# =============================================================== pixel shuffle


def _check_shuffle(name: str, input: Tensor, factor: int, factor_name: str) -> None:
    if input.ndim < 3:
        raise RuntimeError(
            f"{name} expects input to have at least 3 dimensions, but got input with {input.ndim} dimension(s)"
        )
    if factor <= 0:
        raise RuntimeError(f"{name} expects a positive {factor_name}, but got {factor}")


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """Rearrange ``(*, C * r**2, H, W)`` into ``(*, C, H * r, W * r)`` for ``r = upscale_factor``.

    Example:
        >>> pixel_shuffle(ones(1, 8, 3, 3), 2).shape
        (1, 2, 6, 6)
    """
    _check_shuffle("pixel_shuffle", input, upscale_factor, "upscale_factor")
    r, (*batch, c, h, w), n = upscale_factor, input.shape, input.ndim - 3
    if c % (r * r):
        raise RuntimeError(
            "pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
            f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}"
        )
    x = input.reshape(*batch, c // (r * r), r, r, h, w).permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*batch, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """Rearrange ``(*, C, H * r, W * r)`` into ``(*, C * r**2, H, W)``: ``pixel_shuffle``'s inverse."""
    _check_shuffle("pixel_unshuffle", input, downscale_factor, "downscale_factor")
    r, (*batch, c, h, w), n = downscale_factor, input.shape, input.ndim - 3
    for name, axis, length in (("height", -2, h), ("width", -1, w)):
        if length % r:
            raise RuntimeError(
                f"pixel_unshuffle expects {name} to be divisible by downscale_factor, but "
                f"input.size({axis})={length} is not divisible by {r}"
            )
    x = input.reshape(*batch, c, h // r, r, w // r, r).permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*batch, c * r * r, h // r, w // r)
