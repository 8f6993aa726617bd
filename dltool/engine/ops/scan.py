"""Scans along a dim (cumsum, cumprod, cummax, cummin, logcumsumexp) and differences (diff)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import numpy_aliases, require_float, with_out, write_out
from dltool.engine.ops.elementwise import cast, exp, log, logical_xor, where
from dltool.engine.ops.index import gather
from dltool.engine.ops.shape import cat, flip, narrow
from dltool.engine.tensor import Tensor, _wrap_dim

values_indices = namedtuple("values_indices", ["values", "indices"])


def scan(ufunc: Any, array: Any, axis: int) -> Any:
    """``ufunc.accumulate(array, axis)`` for an associative ``ufunc``, as a log-step scan.

    NOTE: cupy's ufuncs accumulate only add and multiply; this runs alike on numpy and cupy, in
    ceil(log2(n)) whole-array passes (Hillis and Steele's scan).
    """
    out = array.copy()
    n, step = array.shape[axis], 1
    while step < n:
        later = (slice(None),) * axis + (slice(step, None),)
        earlier = (slice(None),) * axis + (slice(None, n - step),)
        out[later] = ufunc(out[later], out[earlier])
        step *= 2
    return out


def positions(shape: tuple, axis: int, xp: Any) -> Any:
    """``0 .. n-1`` along ``axis``, shaped to broadcast against an array of ``shape``."""
    return xp.arange(shape[axis]).reshape((1,) * axis + (-1,) + (1,) * (len(shape) - axis - 1))


def along_dim(op: Callable[..., Any], input: Tensor, dim: int, *args: Any) -> Any:
    """``op(input, dim, *args)`` with ``dim`` wrapped; a 0-dim input is taken as one element."""
    dim = _wrap_dim(dim, input.ndim)
    if input.ndim:
        return op(input, dim, *args)
    result = op(input.reshape(1), 0, *args)
    if isinstance(result, tuple):
        return type(result)(*(r.reshape(()) for r in result))
    return result.reshape(())


def _reverse_cumsum(x: Tensor, dim: int) -> Tensor:
    return flip(cumsum(flip(x, dim), dim), dim)


# =============================================================== sums and products


class CumSum(Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return x._xp().cumsum(x._data, axis=dim)

    @staticmethod
    def backward(ctx, grad_output):
        return _reverse_cumsum(grad_output, ctx.dim), None


class CumProd(Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = x._xp().cumprod(x._data, axis=dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        dim = ctx.dim
        # NOTE: y / x fails at zeros. Before a slice's first zero, y_j / x_k is the product of the
        # other factors; at the first zero it is the product with that zero taken as 1; after, 0.
        is_zero = x == 0
        zeros_so_far = cumsum(is_zero, dim)
        before = zeros_so_far == 0
        first_zero = is_zero & (zeros_so_far == 1)
        plain = _reverse_cumsum(grad_output * y, dim) / where(before, x, 1.0)
        at_zero = _reverse_cumsum(grad_output * cumprod(where(first_zero, 1.0, x), dim), dim)
        return where(before, plain, where(first_zero, at_zero, 0.0)), None


def _accumulated(input: Tensor, dtype: Any, out: Tensor | None) -> Tensor:
    """``input`` in the dtype a sum or product accumulates in: ``dtype``, else ``out``'s (as
    PyTorch does), else int64 for integers."""
    if dtype is None and out is not None:
        dtype = out.dtype
    if dtype is not None:
        return cast(input, dtype)
    return cast(input, dtypes.int64) if input.dtype.kind in "biu" else input


@numpy_aliases
def cumsum(input: Tensor, dim: int, *, dtype: Any = None, out: Tensor | None = None) -> Tensor:
    """Running sums along ``dim``; bools and integers sum as int64.

    Example:
        >>> cumsum(tensor([1, 2, 3]), 0).tolist()
        [1, 3, 6]
    """
    return write_out(out, along_dim(CumSum.apply, _accumulated(input, dtype, out), dim), "cumsum")


@numpy_aliases
def cumprod(input: Tensor, dim: int, *, dtype: Any = None, out: Tensor | None = None) -> Tensor:
    """Running products along ``dim``; the gradient is exact where the input has zeros."""
    return write_out(out, along_dim(CumProd.apply, _accumulated(input, dtype, out), dim), "cumprod")


# =============================================================== running extremes


def _running_extreme(input: Tensor, dim: int, largest: bool) -> values_indices:
    xp = input._xp()
    data = input._data
    values = scan(xp.maximum if largest else xp.minimum, data, dim)
    # a new extreme, a tie (the later index wins, as in PyTorch) or a NaN, which then propagates
    hit = data == values
    if data.dtype.kind == "f":
        hit |= xp.isnan(data)
    indices = scan(xp.maximum, xp.where(hit, positions(data.shape, dim, xp), 0), dim)
    indices = Tensor._make(indices.astype(dtypes.int64))
    return values_indices(gather(input, dim, indices), indices)


@numpy_aliases
@with_out
def cummax(input: Tensor, dim: int) -> values_indices:
    """Running maxima along ``dim`` and where each was reached; gradients flow to those elements."""
    return along_dim(_running_extreme, input, dim, True)


@numpy_aliases
@with_out
def cummin(input: Tensor, dim: int) -> values_indices:
    """Running minima along ``dim`` and where each was reached."""
    return along_dim(_running_extreme, input, dim, False)


# =============================================================== log-sum-exp


class LogCumSumExp(Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = scan(x._xp().logaddexp, x._data, dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        dim = ctx.dim
        # grad_j = sum_{k >= j} g_k exp(x_j - y_k), summed in log space for each sign of g
        parts = []
        for sign in (1.0, -1.0):
            magnitude = grad_output * sign
            positive = magnitude > 0
            log_magnitude = where(positive, log(where(positive, magnitude, 1.0)), float("-inf"))
            reversed_sum = flip(logcumsumexp(flip(log_magnitude - y, dim), dim), dim)
            parts.append(exp(x + reversed_sum))
        return parts[0] - parts[1], None


@numpy_aliases
@with_out
def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    """``log(cumsum(exp(input)))`` along ``dim``, computed without overflow or underflow."""
    require_float("logcumsumexp_out", input)
    return along_dim(LogCumSumExp.apply, input, dim)


# =============================================================== differences


def _check_edge(edge: Tensor, input: Tensor, dim: int) -> None:
    if edge.ndim != input.ndim:
        raise RuntimeError("diff expects prepend or append to be the same dimension as input")
    for d in range(input.ndim):
        if d != dim and edge.shape[d] != input.shape[d]:
            raise RuntimeError(
                "diff expects the shape of tensor to prepend or append to match that of input except "
                f"along the differencing dimension; input.size({d}) = {input.shape[d]}, but got "
                f"tensor.size({d}) = {edge.shape[d]}"
            )


@numpy_aliases
def diff(
    input: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None, append: Tensor | None = None
) -> Tensor:
    """The ``n``-th forward difference along ``dim`` (``logical_xor`` for bools).

    Example:
        >>> diff(tensor([1, 4, 9])).tolist()
        [3, 5]
    """
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    dim = _wrap_dim(dim, input.ndim)
    pieces = [input]
    if prepend is not None:
        _check_edge(prepend, input, dim)
        pieces.insert(0, prepend)
    if append is not None:
        _check_edge(append, input, dim)
        pieces.append(append)
    x = cat(pieces, dim) if len(pieces) > 1 else input
    for _ in range(min(n, x.shape[dim])):
        length = x.shape[dim] - 1
        later, earlier = narrow(x, dim, 1, length), narrow(x, dim, 0, length)
        x = logical_xor(later, earlier) if x.dtype == dtypes.bool else later - earlier
    return x
