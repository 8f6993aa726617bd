"""Unpooling: ``max_unpool1d/2d``, the inverse of max pooling from its ``return_indices``.

Each value goes back to the flat position in its input plane that max pooling recorded; the
rest of the output is zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine.autograd.function import Function
from dltool.engine.ops.conv import pair
from dltool.engine.ops.index import gather
from dltool.engine.tensor import Tensor


class MaxUnpool(Function):
    """Rows ``(R, K)`` written at positions ``index`` of zeroed rows ``(R, size)``: max pooling
    undone. The gradient reads those positions back, so a position written twice (overlapping
    windows) passes its gradient to both writers, as in PyTorch."""

    @staticmethod
    def forward(ctx, x, index, size):
        ctx.index = index
        xp = x._xp()
        y = xp.zeros((x.shape[0], size), dtype=x.dtype)
        y[xp.arange(x.shape[0])[:, None], index._data] = x._data
        return y

    @staticmethod
    def backward(ctx, grad_output):
        return gather(grad_output, 1, ctx.index), None, None


def _unpool_output_size(shape: tuple, kernel: tuple, step: tuple, pad: tuple, output_size: Any) -> tuple:
    """The unpooled spatial size: the inverse of pooling's, or ``output_size`` if it is one of the
    sizes that pool to ``shape``."""
    dims = len(kernel)
    default = [(shape[-dims + d] - 1) * step[d] + kernel[d] - 2 * pad[d] for d in range(dims)]
    if output_size is None:
        return tuple(default)
    if len(output_size) == dims + 2:
        output_size = output_size[2:]
    if len(output_size) != dims:
        raise ValueError(
            f"output_size should be a sequence containing {dims} or {dims + 2} elements, but it has a "
            f"length of '{len(output_size)}'"
        )
    for d in range(dims):
        low, high = default[d] - step[d], default[d] + step[d]
        if not low < output_size[d] < high:
            raise ValueError(
                f'invalid output_size "{output_size}" (dim {d} must be between {low} and {high})'
            )
    return tuple(int(n) for n in output_size)


def _max_unpool(x: Tensor, indices: Tensor, size: tuple[int, int]) -> Tensor:
    """Planes ``(..., h, w)`` scattered into zeroed planes of ``size`` at ``indices``."""
    if x.ndim not in (3, 4):
        raise RuntimeError(
            f"Input to max_unpooling2d should be a 3d or 4d Tensor, but got a tensor with {x.ndim} dimensions."
        )
    if indices.dtype != np.int64:
        raise RuntimeError(f"elements in indices should be type int64 but got: {indices.dtype}")
    if indices.shape != x.shape:
        raise RuntimeError(
            f"Expected shape of indices to be same as that of the input tensor ({list(x.shape)}) but got "
            f"indices tensor with shape: {list(indices.shape)}"
        )
    data = indices._data
    bad = (data < 0) | (data >= size[0] * size[1])
    if bad.any():
        raise RuntimeError(
            f"Found an invalid max index: {int(data[bad][0])} (output volumes are of size {size[0]}x{size[1]})"
        )
    rows = x.shape[:-2]
    index = Tensor._make(data.reshape(-1, data.shape[-2] * data.shape[-1]))
    y = MaxUnpool.apply(x.reshape(index.shape), index, size[0] * size[1])
    return y.reshape(rows + size)


def max_unpool2d(
    input: Tensor,
    indices: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> Tensor:
    """The inverse of ``max_pool2d``: each value put back where ``indices`` (from ``max_pool2d(...,
    return_indices=True)``) says its maximum was, zeros elsewhere."""
    kernel = pair(kernel_size, "kernel_size")
    step = kernel if stride is None else pair(stride, "stride")
    size = _unpool_output_size(input.shape, kernel, step, pair(padding, "padding"), output_size)
    return _max_unpool(input, indices, size)


def max_unpool1d(
    input: Tensor,
    indices: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> Tensor:
    """The inverse of ``max_pool1d``, over ``(N, C, L)`` as width-1 planes (as PyTorch does)."""
    kernel = _single(kernel_size)
    step = kernel if stride is None else _single(stride)
    size = _unpool_output_size(input.shape, kernel, step, _single(padding), output_size)
    return _max_unpool(input.unsqueeze(-1), indices.unsqueeze(-1), size + (1,)).squeeze(-1)


def _single(value: Any) -> tuple[int]:
    return (int(value[0]),) if isinstance(value, (tuple, list)) else (int(value),)
