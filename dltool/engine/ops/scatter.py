"""Writing into positions along a dim: scatter (with its reductions), scatter_reduce, and
index_add, index_copy and index_fill, which address whole slices."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import numpy_aliases, type_name, with_out
from dltool.engine.ops.elementwise import cast, where
from dltool.engine.ops.index import (
    IndexAdd,
    _along,
    _check_index,
    _check_src,
    _src_grad,
    _within,
    gather,
    index_put,
    scatter_add,
)
from dltool.engine.ops.reduce import product_of_others
from dltool.engine.tensor import Tensor, _wrap_dim

# =============================================================== scatter


class Scatter(Function):
    @staticmethod
    def forward(ctx, x, dim, index, src):
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        out = x._data.copy()
        out[_along(index._data, dim, x._xp())] = _within(src._data, index.shape)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        x_grad = src_grad = None
        if ctx.needs_input_grad[0]:
            zeros = Tensor._make(grad_output._xp().zeros(index.shape, dtype=grad_output.dtype))
            x_grad = Scatter.apply(grad_output, ctx.dim, index, zeros)
        if ctx.needs_input_grad[3]:
            src_grad = _src_grad(gather(grad_output, ctx.dim, index), ctx.src_shape)
        return x_grad, None, None, src_grad


@numpy_aliases
def scatter(
    input: Tensor, dim: int, index: Tensor, src: Any = None, value: Any = None, *, reduce: str | None = None
) -> Tensor:
    """A copy of ``input`` with ``src`` (a tensor, or the number ``value``) written at ``index`` along ``dim``.

    ``reduce="add"`` or ``"multiply"`` combines instead of overwriting (``scatter_reduce``'s
    ``"sum"`` and ``"prod"``); where ``index`` repeats without it, which write wins is unspecified.
    """
    dim = _check_index("scatter", input, dim, index)
    source = value if src is None else src
    if isinstance(source, Tensor):
        _check_src(input, source)
    else:
        source = Tensor._make(input._xp().full(index.shape, source, dtype=input.dtype))
    if reduce is None:
        return Scatter.apply(input, dim, index, source)
    if reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    return scatter_reduce(input, dim, index, source, "sum" if reduce == "add" else "prod")


# =============================================================== scatter_reduce

_REDUCE_UFUNCS = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "maximum", "amin": "minimum"}


def _identity(reduce: str, dtype: Any) -> Any:
    """The value a reduction starts from where ``include_self=False`` leaves the input out."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtype.kind == "f":
        return -np.inf if reduce == "amax" else np.inf
    if dtype.kind == "b":
        return reduce == "amin"
    info = np.iinfo(dtype)
    return info.min if reduce == "amax" else info.max


class ScatterReduce(Function):
    @staticmethod
    def forward(ctx, x, dim, index, src, reduce, include_self):
        xp = x._xp()
        key = _along(index._data, dim, xp)
        count = xp.zeros(x.shape, dtype=dtypes.int64)
        xp.add.at(count, key, 1)
        y = x._data.copy()
        if not include_self:
            y[key] = _identity(reduce, y.dtype)
        # NOTE: cupy has no multiply.at, so reduce="prod" runs on numpy arrays only
        getattr(xp, _REDUCE_UFUNCS[reduce]).at(y, key, _within(src._data, index.shape))
        if reduce == "mean":
            divisor = xp.maximum(count + include_self, 1).astype(y.dtype)
            y = y / divisor if y.dtype.kind == "f" else y // divisor
        ctx.save_for_backward(x, index, src, y)
        ctx.dim, ctx.reduce, ctx.include_self = dim, reduce, include_self
        ctx.count, ctx.src_shape = count, src.shape
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, index, src, y = ctx.saved_tensors
        count = Tensor._make(ctx.count)
        x_part = count == 0 if not ctx.include_self else Tensor._make(count._xp().ones(count.shape, bool))
        src = src[tuple(slice(0, n) for n in index.shape)]
        grads = _SCATTER_GRADS[ctx.reduce](grad_output, ctx.dim, index, x, src, y, count, x_part)
        x_grad = grads[0] if ctx.needs_input_grad[0] else None
        src_grad = _src_grad(grads[1], ctx.src_shape) if ctx.needs_input_grad[3] else None
        return x_grad, None, None, src_grad, None, None


def _sum_grads(grad, dim, index, x, src, y, count, x_part):
    return where(x_part, grad, 0.0), gather(grad, dim, index)


def _mean_grads(grad, dim, index, x, src, y, count, x_part):
    share = grad / (count + cast(x_part, dtypes.int64))
    return where(x_part, share, 0.0), gather(share, dim, index)


def _extreme_grads(grad, dim, index, x, src, y, count, x_part):
    # NOTE: ties share the gradient evenly, as in PyTorch
    x_hits = x_part & (x == y)
    src_hits = src == gather(y, dim, index)
    ties = scatter_add(cast(x_hits, grad.dtype), dim, index, cast(src_hits, grad.dtype))
    share = grad / where(ties > 0, ties, 1.0)
    return where(x_hits, share, 0.0), where(src_hits, gather(share, dim, index), 0.0)


def _prod_grads(grad, dim, index, x, src, y, count, x_part):
    factor = where(x_part, x, 1.0)
    zero_count = scatter_add(cast(factor == 0, grad.dtype), dim, index, cast(src == 0, grad.dtype))
    nonzero = scatter_reduce(where(factor == 0, 1.0, factor), dim, index, where(src == 0, 1.0, src), "prod")
    x_grad = where(x_part, grad * product_of_others(factor, nonzero, zero_count), 0.0)
    others = product_of_others(src, gather(nonzero, dim, index), gather(zero_count, dim, index))
    return x_grad, gather(grad, dim, index) * others


_SCATTER_GRADS = {
    "sum": _sum_grads,
    "mean": _mean_grads,
    "amax": _extreme_grads,
    "amin": _extreme_grads,
    "prod": _prod_grads,
}


@numpy_aliases
@with_out
def scatter_reduce(
    input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True
) -> Tensor:
    """A copy of ``input`` with the ``src`` values at ``index`` along ``dim`` reduced into it.

    ``reduce`` is ``"sum"``, ``"prod"``, ``"mean"``, ``"amax"`` or ``"amin"``; with
    ``include_self=False`` the input's values at the written positions are left out of the
    reduction. Integer means round down, as in PyTorch.

    Example:
        >>> scatter_reduce(tensor([0, 0]), 0, tensor([0, 0, 1]), tensor([1, 5, 2]), "amax").tolist()
        [5, 2]
    """
    if reduce not in _REDUCE_UFUNCS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    dim = _check_index("scatter_reduce", input, dim, index)
    _check_src(input, src)
    return ScatterReduce.apply(input, dim, index, src, reduce, include_self)


# =============================================================== index_add, index_copy, index_fill


def _slices_at(name: str, input: Tensor, dim: int, index: Tensor) -> tuple[int, tuple]:
    """``dim`` wrapped, and the key of the slices of ``input`` that the vector ``index`` picks."""
    if index.dtype.kind not in "iu":
        raise RuntimeError(
            f"{name}(): Expected dtype int32/int64 for index but got: {type_name(index.dtype)}"
        )
    if index.ndim > 1:
        raise IndexError(
            f"{name}(): Index is supposed to be a vector, but got dim: {index.ndim} with type: "
            f"{type_name(index.dtype)} and size: {list(index.shape)}"
        )
    dim = _wrap_dim(dim, input.ndim)
    size, at = input.shape[dim], index._data.reshape(-1)
    outside = at[(at < 0) | (at >= size)]
    if outside.size:
        raise RuntimeError(f"index {int(outside[0])} is out of bounds for dimension {dim} with size {size}")
    return dim, (slice(None),) * dim + (at,)


def _check_source(name: str, input: Tensor, dim: int, count: int, source: Tensor) -> None:
    """PyTorch's checks that ``source`` holds ``count`` slices of ``input`` along ``dim``."""
    if source.ndim == input.ndim and source.shape[dim] != count:
        raise RuntimeError(
            f"{name}(): Number of indices ({count}) should be equal to source.size(dim): "
            f"({source.shape[dim]}), for dim: {dim}"
        )
    if source.shape != input.shape[:dim] + (count,) + input.shape[dim + 1 :]:
        raise RuntimeError(
            "source tensor shape must match self tensor shape, excluding the specified dimension. "
            f"Got self.shape = {list(input.shape)} source.shape = {list(source.shape)}"
        )
    if source.dtype != input.dtype:
        raise RuntimeError(
            f"{name}(): self ({type_name(input.dtype)}) and source ({type_name(source.dtype)}) must "
            "have the same scalar type"
        )


@numpy_aliases
@with_out
def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """A copy of ``input`` with ``alpha * source`` added to the slices ``index`` picks along ``dim``.

    Repeated indices accumulate.

    Example:
        >>> index_add(zeros(3), 0, tensor([0, 0, 2]), tensor([1.0, 2.0, 3.0])).tolist()
        [3.0, 0.0, 3.0]
    """
    dim, key = _slices_at("index_add_", input, dim, index)
    _check_source("index_add_", input, dim, key[-1].size, source)
    if alpha != 1:
        source = source * alpha
    return input + IndexAdd.apply(source, input.shape, (key,), True)


@numpy_aliases
@with_out
def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """A copy of ``input`` with the slices ``index`` picks along ``dim`` replaced by ``source``'s."""
    dim, key = _slices_at("index_copy_", input, dim, index)
    _check_source("index_copy_", input, dim, key[-1].size, source)
    return index_put(input, key, source)


@numpy_aliases
def index_fill(input: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
    """A copy of ``input`` with the slices ``index`` picks along ``dim`` set to ``value``."""
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(
            f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with {value.ndim} dimension(s)."
        )
    _, key = _slices_at("index_fill_", input, dim, index)
    return index_put(input, key, value)
