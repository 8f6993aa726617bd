"""Pooling: max_pool1d/2d, avg_pool1d/2d, adaptive_avg/max_pool1d/2d (unpooling: ``unpool``).

Windows are read as strided slices of the padded input, one whole-array op per kernel offset
(a 2x2 pool is four ``maximum`` calls over the output's size), which beats copying the windows out
and reducing over a short axis. Backward scatters through ``fold``, so it is differentiable too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.ops._utils import memory_order
from dltool.engine.ops.conv import Fold, as_2d, offset_slices, out_size, pad_array, pair
from dltool.engine.ops.index import gather
from dltool.engine.tensor import Tensor


def _pool_geometry(
    name: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool
) -> tuple:
    if x.ndim not in (3, 4):
        raise RuntimeError(
            f"{name}: Expected 3D or 4D (batch mode) tensor for input, but got: {list(x.shape)}"
        )
    kernel = pair(kernel_size, "kernel_size")
    step = kernel if stride is None or stride == [] or stride == () else pair(stride, "stride")
    pad, dil = pair(padding, "padding"), pair(dilation, "dilation")
    if min(kernel) <= 0 or min(step) <= 0 or min(dil) <= 0:
        raise RuntimeError(
            f"{name}: kernel_size, stride and dilation must be greater than zero, got {kernel}, {step}, {dil}"
        )
    if any(p > (d * (k - 1) + 1) // 2 for p, k, d in zip(pad, kernel, dil, strict=True)):
        raise RuntimeError(
            f"{name}: pad should be at most half of effective kernel size, but got pad={pad}, "
            f"kernel_size={kernel} and dilation={dil}"
        )
    size = x.shape[-2:]
    out = tuple(out_size(size[a], kernel[a], step[a], pad[a], dil[a], ceil_mode) for a in range(2))
    if min(out) <= 0:
        raise RuntimeError(
            f"{name}: Given input size {list(x.shape)}, calculated output size {list(x.shape[:-2]) + list(out)} is too small"
        )
    # windows of ceil_mode may hang past the padded input; extra right padding covers them
    extra = tuple(
        max(0, (out[a] - 1) * step[a] + dil[a] * (kernel[a] - 1) + 1 - size[a] - 2 * pad[a]) for a in range(2)
    )
    return kernel, step, pad, dil, out, extra


def _scatter_windows(
    grad_cols: Tensor,
    shape: tuple,
    kernel: tuple,
    step: tuple,
    pad: tuple,
    dil: tuple,
    out: tuple,
    extra: tuple,
) -> Tensor:
    """Window gradients ``(N, C, kh*kw, Ho, Wo)`` summed back onto an input of ``shape``."""
    n, c = grad_cols.shape[:2]
    size = (shape[-2] + extra[0], shape[-1] + extra[1])
    image = Fold.apply(grad_cols.reshape(n, -1, out[0] * out[1]), size, kernel, dil, pad, step, out, False)
    if any(extra):
        image = image[..., : shape[-2], : shape[-1]]
    return image


def _batched4(x: Tensor) -> Tensor:
    return x if x.ndim == 4 else x.unsqueeze(0)


# =============================================================== max pooling


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, step, pad, dil, out, extra):
        xp = x._xp()
        padded = pad_array(x._data, pad, extra, value=-np.inf)
        windows = offset_slices(kernel, dil, step, out)
        y = padded[next(windows)[2]].copy(order="K")  # in the input's memory order (see conv)
        offset_type = np.int8 if kernel[0] * kernel[1] <= 127 else np.int16
        index = xp.zeros_like(y, dtype=offset_type)
        for k, (_, _, window) in enumerate(windows, 1):
            # NOTE: strictly greater, so the gradient goes to a window's first maximum, as in PyTorch.
            # Offsets only grow, so the new index is max(index, k where greater): arithmetic rather
            # than a masked write, which numpy runs several times slower on a random mask
            candidate = padded[window]
            greater = candidate > y
            xp.maximum(y, candidate, out=y)
            xp.maximum(index, greater * offset_type(k), out=index)
        ctx.index = index
        ctx.set_materialize_grads(False)
        ctx.geometry = x.shape, kernel, step, pad, dil, out, extra
        return y, index

    @staticmethod
    def backward(ctx, grad_output, _):
        return (RouteToMaxima.apply(grad_output, ctx.index, ctx.geometry),) + (None,) * 6


class RouteToMaxima(Function):
    """Max pooling's gradient: each window's gradient goes to the input position of its maximum
    (``index`` is the offset within the window). Its adjoint ``GatherAtMaxima`` is its backward.
    """

    @staticmethod
    def forward(ctx, grad, index, geometry):
        ctx.index, ctx.geometry = index, geometry
        shape, kernel, step, pad, dil, out, extra = geometry
        size = (shape[-2] + 2 * pad[0] + extra[0], shape[-1] + 2 * pad[1] + extra[1])
        xp = grad._xp()
        # in the pooled input's memory order (index has it), which the ops around it work in
        image = xp.zeros_like(index, dtype=grad.dtype, shape=grad.shape[:-2] + size)
        routed = _in_layout_of(grad._data, index)
        disjoint = all(s >= d * (k - 1) + 1 for k, d, s in zip(kernel, dil, step, strict=True))
        for k, (_, _, window) in enumerate(offset_slices(kernel, dil, step, out)):
            if disjoint:
                xp.multiply(routed, index == k, out=image[window])
            else:
                image[window] += routed * (index == k)
        return image[..., pad[0] : pad[0] + shape[-2], pad[1] : pad[1] + shape[-1]]

    @staticmethod
    def backward(ctx, grad_output):
        return GatherAtMaxima.apply(grad_output, ctx.index, ctx.geometry), None, None


def _in_layout_of(array: Any, template: Any) -> Any:
    """``array``, copied into ``template``'s memory order if its own differs (8x faster for a 2x2
    pool's gradient than mixing the two orders, see ``memory_order``)."""
    if memory_order(array) == memory_order(template):
        return array
    copy = backend.array_module(array).empty_like(template, dtype=array.dtype)
    copy[...] = array
    return copy


class GatherAtMaxima(Function):
    """Each window's value at the position of its maximum: the adjoint of ``RouteToMaxima``."""

    @staticmethod
    def forward(ctx, x, index, geometry):
        ctx.index, ctx.geometry = index, geometry
        _, kernel, step, pad, dil, out, extra = geometry
        padded = pad_array(x._data, pad, extra)
        result = x._xp().zeros_like(index, dtype=x.dtype)
        for k, (_, _, window) in enumerate(offset_slices(kernel, dil, step, out)):
            result += padded[window] * (index == k)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        return RouteToMaxima.apply(grad_output, ctx.index, ctx.geometry), None, None


def _flat_indices(index: Any, shape: tuple, kernel: tuple, step: tuple, pad: tuple, dil: tuple) -> Any:
    """Window offsets as PyTorch's ``return_indices``: positions in the flattened input plane."""
    xp = backend.array_module(index)
    index = index.astype(np.int64)  # the offsets' own small dtype would overflow below
    rows = xp.arange(index.shape[-2]).reshape(-1, 1) * step[0] - pad[0] + (index // kernel[1]) * dil[0]
    cols = xp.arange(index.shape[-1]) * step[1] - pad[1] + (index % kernel[1]) * dil[1]
    return rows * shape[-1] + cols


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Largest value of each window of ``(N, C, H, W)``; ``stride`` defaults to ``kernel_size``."""
    geometry = _pool_geometry("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    y, index = MaxPool2d.apply(_batched4(input), *geometry)
    if input.ndim == 3:
        y, index = y.squeeze(0), Tensor._make(index._data[0])
    if not return_indices:
        return y
    kernel, step, pad, dil = geometry[:4]
    return y, Tensor._make(_flat_indices(index._data, input.shape, kernel, step, pad, dil))


def max_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """``max_pool2d`` over ``(N, C, L)`` as a height-1 image."""
    one = _one_dim(kernel_size, stride, padding, dilation)
    result = max_pool2d(input.unsqueeze(-2), *one, ceil_mode, return_indices)
    if return_indices:
        return result[0].squeeze(-2), result[1].squeeze(-2)
    return result.squeeze(-2)


def _one_dim(kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> tuple:
    """1-D pooling arguments as 2-D ones over a height of 1."""
    kernel = as_2d(kernel_size, 1)
    return kernel, kernel if stride is None else as_2d(stride, 1), as_2d(padding, 0), as_2d(dilation, 1)


# =============================================================== average pooling


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, step, pad, out, extra, divisor):
        padded = pad_array(x._data, pad, extra)
        windows = offset_slices(kernel, (1, 1), step, out)
        _, _, first = next(windows)
        y = padded[first].copy()
        for _, _, window in windows:
            y += padded[window]
        y /= divisor
        ctx.geometry = x.shape, kernel, step, pad, (1, 1), out, extra
        ctx.divisor = divisor
        return y

    @staticmethod
    def backward(ctx, grad_output):
        shape, kernel, *_ = geometry = ctx.geometry
        n, c, ho, wo = grad_output.shape
        divisor = ctx.divisor if isinstance(ctx.divisor, float) else Tensor._make(ctx.divisor)
        share = grad_output / divisor
        grad_cols = share.unsqueeze(2).expand(n, c, kernel[0] * kernel[1], ho, wo)
        return (_scatter_windows(grad_cols, *geometry),) + (None,) * 6


def _divisor(
    size: tuple,
    kernel: tuple,
    step: tuple,
    pad: tuple,
    out: tuple,
    count_include_pad: bool,
    dtype: Any,
    xp: Any,
) -> Any:
    """Per-window counts for the mean, as PyTorch clips windows at the padded and true edges."""
    counts = []
    for a in range(2):
        start = np.arange(out[a]) * step[a] - pad[a]
        end = np.minimum(start + kernel[a], size[a] + pad[a])
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, size[a]) - np.maximum(start, 0))
    table = np.outer(counts[0], counts[1])
    if (table == kernel[0] * kernel[1]).all():
        return float(kernel[0] * kernel[1])
    return xp.asarray(table, dtype=dtype)


def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean of each window of ``(N, C, H, W)``; ``stride`` defaults to ``kernel_size``."""
    kernel, step, pad, _, out, extra = _pool_geometry(
        "avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode
    )
    if divisor_override is not None:
        if divisor_override == 0:
            raise RuntimeError("avg_pool2d: divisor must be not zero")
        divisor: Any = float(divisor_override)
    else:
        divisor = _divisor(
            input.shape[-2:], kernel, step, pad, out, count_include_pad, input.dtype, input._xp()
        )
    y = AvgPool2d.apply(_batched4(input), kernel, step, pad, out, extra, divisor)
    return y if input.ndim == 4 else y.squeeze(0)


def avg_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """``avg_pool2d`` over ``(N, C, L)`` as a height-1 image."""
    kernel, step, pad, _ = _one_dim(kernel_size, stride, padding, 1)
    return avg_pool2d(input.unsqueeze(-2), kernel, step, pad, ceil_mode, count_include_pad).squeeze(-2)


# =============================================================== adaptive pooling


def _adaptive_bounds(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of PyTorch's adaptive windows ``[floor(i*n/o), ceil((i+1)*n/o))``."""
    start = (np.arange(out) * size) // out
    end = -((-(np.arange(1, out + 1) * size)) // out)
    return start, end


def _adaptive_size(x: Tensor, output_size: Any) -> tuple[int, int]:
    """``output_size`` (an int or a pair, ``None`` keeping that input size) as a pair of ints."""
    h, w = x.shape[-2:]
    size = (
        (output_size, output_size)
        if isinstance(output_size, int) or output_size is None
        else tuple(output_size)
    )
    return (h if size[0] is None else int(size[0]), w if size[1] is None else int(size[1]))


def _averaging_matrix(size: int, out: int, dtype: Any, xp: Any) -> Tensor:
    """``(out, size)`` rows that average the adaptive windows."""
    start, end = _adaptive_bounds(size, out)
    positions = np.arange(size)
    inside = (positions >= start[:, None]) & (positions < end[:, None])
    return Tensor._make(xp.asarray(inside / (end - start)[:, None], dtype=dtype))


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling to a fixed ``output_size`` (``None`` keeps that input size)."""
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    h, w = input.shape[-2:]
    out = _adaptive_size(input, output_size)
    if out == (1, 1):
        return input.mean(dim=(-2, -1), keepdim=True)
    if h % out[0] == 0 and w % out[1] == 0:
        return avg_pool2d(input, (h // out[0], w // out[1]))
    xp = input._xp()
    rows = _averaging_matrix(h, out[0], input.dtype, xp)
    cols = _averaging_matrix(w, out[1], input.dtype, xp)
    return rows.matmul(input).matmul(cols.t())


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling of ``(N, C, L)`` to a fixed length."""
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, size)).squeeze(-2)


def _adaptive_windows(size: int, out: int) -> np.ndarray:
    """``(out, k)`` positions in each adaptive window, shorter windows padded by repeating their
    last position (a repeat never changes which position is the first maximum)."""
    start, end = _adaptive_bounds(size, out)
    width = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(width), end[:, None] - 1)


def _adaptive_argmax(x: Tensor, out: tuple[int, int]) -> Any:
    """Positions in the flattened input plane of each adaptive window's first maximum."""
    xp = x._xp()
    h, w = x.shape[-2:]
    rows, cols = _adaptive_windows(h, out[0]), _adaptive_windows(w, out[1])
    cells = xp.asarray((rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(out[0], out[1], -1))
    windows = x._data.reshape(x.shape[:-2] + (h * w,))[..., cells]
    best = windows.argmax(axis=-1)  # the first maximum, as PyTorch picks
    return cells[xp.arange(out[0])[:, None], xp.arange(out[1]), best]


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling of ``(N, C, H, W)`` to a fixed ``output_size`` (``None`` keeps that input size).

    Adaptive windows may overlap; the gradient of each goes to its first maximum. The indices
    are positions in the flattened input plane, as ``max_pool2d`` returns them.
    """
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_max_pool2d(): Expected 3D or 4D tensor, but got: {list(input.shape)}")
    index = _adaptive_argmax(input, _adaptive_size(input, output_size))
    flat = Tensor._make(index.reshape(index.shape[:-2] + (-1,)))
    y = gather(input.flatten(-2), -1, flat).reshape(index.shape)
    return (y, Tensor._make(index)) if return_indices else y


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling of ``(N, C, L)`` to a fixed length."""
    if input.ndim not in (2, 3):
        raise RuntimeError(
            f"Expected 2 to 3 dimensions, but got {input.ndim}-dimensional tensor for argument #1 'self' "
            "(while checking arguments for adaptive_max_pool1d)"
        )
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    result = adaptive_max_pool2d(input.unsqueeze(-2), (1, size), return_indices)
    if return_indices:
        return result[0].squeeze(-2), result[1].squeeze(-2)
    return result.squeeze(-2)
