"""The matrix-diagonal family: tril/triu, diagonal views and diagonal_scatter, diag, diag_embed,
and the indices of a triangle."""

from __future__ import annotations

from typing import Any

from dltool.engine import backend, dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import type_name, with_out
from dltool.engine.ops.elementwise import clone, zeros_like_value
from dltool.engine.tensor import Tensor, _wrap_dim

# =============================================================== triangles


class Triangle(Function):
    @staticmethod
    def forward(ctx, x, diagonal, upper):
        ctx.diagonal, ctx.upper = diagonal, upper
        xp = x._xp()
        return (xp.triu if upper else xp.tril)(x._data, diagonal)

    @staticmethod
    def backward(ctx, grad_output):
        return Triangle.apply(grad_output, ctx.diagonal, ctx.upper), None, None


def _triangle(input: Tensor, diagonal: int, upper: bool) -> Tensor:
    if input.ndim < 2:
        raise RuntimeError(f"{'triu' if upper else 'tril'}: input tensor must have at least 2 dimensions")
    return Triangle.apply(input, int(diagonal), upper)


@with_out
def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (elements above ``diagonal`` set to 0).

    Example:
        >>> tril(ones(2, 2)).tolist()
        [[1.0, 0.0], [1.0, 1.0]]
    """
    return _triangle(input, diagonal, upper=False)


@with_out
def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (elements below ``diagonal`` set to 0)."""
    return _triangle(input, diagonal, upper=True)


def _triangle_indices(row: int, col: int, offset: int, dtype: Any, device: Any, upper: bool) -> Tensor:
    for name, n in (("row", row), ("col", col)):
        if n < 0:
            raise RuntimeError(f"{name} must be non-negative, got{n}")
    dtype = dtypes.to_dtype(dtype)
    if dtype.kind not in "iu":
        kind = "triu" if upper else "tril"
        raise NotImplementedError(f"\"{kind}_indices\" not implemented for '{type_name(dtype)}'")
    xp = backend.module_for(backend.device(device))
    rows, cols = (xp.triu_indices if upper else xp.tril_indices)(row, offset, col)
    return Tensor._make(xp.stack([rows, cols]).astype(dtype))


def tril_indices(
    row: int, col: int, offset: int = 0, *, dtype: Any = dtypes.int64, device: Any = "cpu", layout: Any = None
) -> Tensor:
    """The 2 x N (row, column) coordinates of a ``row`` x ``col`` matrix's lower triangle, row by row.

    Example:
        >>> tril_indices(2, 2).tolist()
        [[0, 1, 1], [0, 0, 1]]
    """
    return _triangle_indices(row, col, offset, dtype, device, upper=False)


def triu_indices(
    row: int, col: int, offset: int = 0, *, dtype: Any = dtypes.int64, device: Any = "cpu", layout: Any = None
) -> Tensor:
    """The 2 x N (row, column) coordinates of a ``row`` x ``col`` matrix's upper triangle, row by row."""
    return _triangle_indices(row, col, offset, dtype, device, upper=True)


# =============================================================== diagonals


def _diagonal_view(array: Any, offset: int, dim1: int, dim2: int) -> Any:
    """The diagonal of ``array``'s (dim1, dim2) planes as a writable view, on the last axis."""
    xp = backend.array_module(array)
    rest = [d for d in range(array.ndim) if d not in (dim1, dim2)]
    planes = array.transpose(rest + [dim1, dim2])
    planes = planes[..., :, offset:] if offset >= 0 else planes[..., -offset:, :]
    length = min(planes.shape[-2], planes.shape[-1])
    strides = planes.strides[:-2] + (planes.strides[-2] + planes.strides[-1],)
    # NOTE: numpy's own diagonal() is read-only; PyTorch code writes through diagonal views
    return xp.lib.stride_tricks.as_strided(planes, planes.shape[:-2] + (length,), strides)


class Diagonal(Function):
    _is_view = True

    @staticmethod
    def forward(ctx, x, offset, dim1, dim2):
        ctx.shape, ctx.dims = x.shape, (offset, dim1, dim2)
        return _diagonal_view(x._data, offset, dim1, dim2)

    @staticmethod
    def backward(ctx, grad_output):
        zeros = Tensor._make(grad_output._xp().zeros(ctx.shape, dtype=grad_output.dtype))
        return DiagonalScatter.apply(zeros, grad_output, *ctx.dims), None, None, None

    @staticmethod
    def put_back(base, value, offset, dim1, dim2):
        return DiagonalScatter.apply(base, value, offset, dim1, dim2)


class DiagonalScatter(Function):
    @staticmethod
    def forward(ctx, x, src, offset, dim1, dim2):
        ctx.dims = (offset, dim1, dim2)
        y = x._data.copy()
        _diagonal_view(y, offset, dim1, dim2)[...] = src._data
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x_grad = src_grad = None
        if ctx.needs_input_grad[0]:
            x_grad = DiagonalScatter.apply(grad_output, zeros_like_value(grad_output), *ctx.dims)
        if ctx.needs_input_grad[1]:
            src_grad = Diagonal.apply(grad_output, *ctx.dims)
        return x_grad, src_grad, None, None, None


def _diagonal_dims(ndim: int, dim1: int, dim2: int) -> tuple[int, int]:
    first, second = _wrap_dim(dim1, ndim), _wrap_dim(dim2, ndim)
    if first == second:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return first, second


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """A view of the diagonal of the (``dim1``, ``dim2``) planes, appended as the last dim.

    Writes through the view reach ``input``, as in PyTorch.

    Example:
        >>> diagonal(tensor([[1, 2], [3, 4]])).tolist()
        [1, 4]
    """
    first, second = _diagonal_dims(input.ndim, dim1, dim2)
    return Diagonal.apply(input, int(offset), first, second)


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """A copy of ``input`` with ``src`` written on the diagonal that ``diagonal`` would view."""
    first, second = _diagonal_dims(input.ndim, dim1, dim2)
    expected = _diagonal_view(input._data, int(offset), first, second).shape
    if src.shape != expected:
        raise RuntimeError(
            f"expected src to have a size equal to the slice of self. src size = {list(src.shape)}, "
            f"slice size = {list(expected)}"
        )
    return DiagonalScatter.apply(input, src.to(input.dtype), int(offset), first, second)


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Matrices (in dims ``dim1``, ``dim2`` of the result) whose ``offset`` diagonal holds ``input``'s last dim."""
    first, second = _diagonal_dims(input.ndim + 1, dim1, dim2)
    n = input.shape[-1] + abs(int(offset))
    shape = list(input.shape[:-1])
    for dim in sorted((first, second)):
        shape.insert(dim, n)
    zeros = Tensor._make(input._xp().zeros(tuple(shape), dtype=input.dtype))
    return DiagonalScatter.apply(zeros, input, int(offset), first, second)


@with_out
def diag(input: Tensor, diagonal: int = 0) -> Tensor:
    """A vector's square diagonal matrix, or a copy of a matrix's ``diagonal``-th diagonal."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        return clone(Diagonal.apply(input, int(diagonal), 0, 1))
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")
