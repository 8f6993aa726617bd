"""Indexing ops: ``x[key]`` and its in-place twin, gather/scatter, index_select, topk and sort.

Gradients of advanced indexing scatter-add, so repeated indices accumulate.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._utils import unbroadcast
from dltool.engine.ops.elementwise import _pair, cast
from dltool.engine.tensor import Tensor, _wrap_dim

values_indices = namedtuple("values_indices", ["values", "indices"])


def _normalize_key(key: Any, xp: Any) -> tuple[Any, bool]:
    """The key with tensors and lists as arrays of ``xp``, and whether it uses advanced indexing."""
    parts = key if isinstance(key, tuple) else (key,)
    normalized, advanced = [], False
    for part in parts:
        if isinstance(part, Tensor):
            part = part._data
        elif isinstance(part, list):
            part = np.asarray(part)
        if hasattr(part, "dtype") and getattr(part, "ndim", 0) >= 0 and not isinstance(part, np.generic):
            if part.dtype.kind not in "iub":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            part = xp.asarray(part)
            advanced = True
            if part.dtype.kind == "b":  # a mask becomes its coordinates, which add.at accepts
                normalized.extend(xp.nonzero(part))
                continue
        normalized.append(part)
    return (tuple(normalized) if isinstance(key, tuple) or advanced else normalized[0]), advanced


class IndexAdd(Function):
    """Zeros of ``shape`` with ``values`` added at ``key``: the gradient of indexing."""

    @staticmethod
    def forward(ctx, values, shape, key, advanced):
        ctx.key, ctx.advanced = key, advanced
        xp = values._xp()
        out = xp.zeros(shape, dtype=values.dtype)
        if advanced:
            xp.add.at(out, key, values._data)
        else:
            out[key] = values._data
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return Getitem.apply(grad_output, ctx.key, ctx.advanced), None, None, None


class Getitem(Function):
    @staticmethod
    def forward(ctx, x, key, advanced):
        ctx.shape, ctx.key, ctx.advanced = x.shape, key, advanced
        return x._data[key]

    @staticmethod
    def backward(ctx, grad_output):
        return IndexAdd.apply(grad_output, ctx.shape, ctx.key, ctx.advanced), None, None


def getitem(input: Tensor, key: Any) -> Tensor:  # noqa: A002
    """``input[key]`` with ints, slices, None, Ellipsis, bool masks and integer tensors or lists."""
    key, advanced = _normalize_key(key, input._xp())
    try:
        return Getitem.apply(input, key, advanced)
    except IndexError as error:
        raise IndexError(f"{error} (indexing a tensor of shape {list(input.shape)})") from None


class IndexPut(Function):
    @staticmethod
    def forward(ctx, x, key, value):
        ctx.key = key
        ctx.value_shape = value.shape
        out = x._data.copy()
        out[key] = value._data
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x_grad = value_grad = None
        if ctx.needs_input_grad[0]:
            x_grad = index_put(grad_output, ctx.key, 0.0)
        if ctx.needs_input_grad[2]:
            value_grad = unbroadcast(getitem(grad_output, ctx.key), ctx.value_shape)
        return x_grad, None, value_grad


def index_put(input: Tensor, key: Any, value: Any) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``value`` written at ``key`` (what ``x[key] = value`` records)."""
    key, _ = _normalize_key(key, input._xp())
    _, value = _pair(input, value)
    return IndexPut.apply(input, key, cast(value, input.dtype))


# =============================================================== gather and scatter


def _along(index: Any, dim: int, xp: Any) -> tuple:
    """Full index arrays for every position of ``index``, with ``index`` itself on ``dim``."""
    grids = list(xp.indices(index.shape, sparse=True))
    grids[dim] = index
    return tuple(grids)


class Gather(Function):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.shape, ctx.dim = x.shape, dim
        ctx.save_for_backward(index)
        return x._data[_along(index._data, dim, x._xp())]

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        zeros = Tensor._make(grad_output._xp().zeros(ctx.shape, dtype=grad_output.dtype))
        return scatter_add(zeros, ctx.dim, index, grad_output), None, None


class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, dim, index, src):
        ctx.dim = dim
        ctx.save_for_backward(index)
        xp = x._xp()
        out = x._data.copy()
        src_part = src._data[tuple(slice(0, n) for n in index.shape)]
        xp.add.at(out, _along(index._data, dim, xp), src_part)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (index,) = ctx.saved_tensors
        src_grad = gather(grad_output, ctx.dim, index) if ctx.needs_input_grad[3] else None
        return grad_output, None, None, src_grad


def _check_index(name: str, input: Tensor, dim: int, index: Tensor) -> int:  # noqa: A002
    if index.dtype != dtypes.int64 and index.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if index.ndim != input.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    return _wrap_dim(dim, input.ndim)


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:  # noqa: A002
    """``out[i][j] = input[index[i][j]][j]`` for ``dim=0``, and so on for other dims."""
    dim = _check_index("gather", input, dim, index)
    return Gather.apply(input, dim, index)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate)."""
    dim = _check_index("scatter_add", input, dim, index)
    return ScatterAdd.apply(input, dim, index, cast(src, input.dtype))


def scatter(input: Tensor, dim: int, index: Tensor, src: Any = None, value: Any = None) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``src`` (or ``value``) written at ``index`` along ``dim``; no grad."""
    dim = _check_index("scatter", input, dim, index)
    out = input._data.copy()
    xp = input._xp()
    source = src._data[tuple(slice(0, n) for n in index.shape)] if isinstance(src, Tensor) else (value if src is None else src)
    out[_along(index._data, dim, xp)] = source
    return Tensor._make(out)


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:  # noqa: A002
    """The slices of ``input`` along ``dim`` picked by the 1-D ``index``."""
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    dim = _wrap_dim(dim, input.ndim)
    return getitem(input, (slice(None),) * dim + (index.reshape(-1),))


def masked_select(input: Tensor, mask: Tensor) -> Tensor:  # noqa: A002
    if mask.shape != input.shape:
        mask = mask.expand(input.shape)
    return getitem(input, mask)


def take(input: Tensor, index: Tensor) -> Tensor:  # noqa: A002
    return getitem(input.reshape(-1), index)


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:  # noqa: A002
    coords = input._xp().nonzero(input._data)
    if as_tuple:
        return tuple(Tensor._make(c.astype(dtypes.int64)) for c in coords)
    return Tensor._make(input._xp().stack(coords, axis=1).astype(dtypes.int64))


# =============================================================== sorting


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:  # noqa: A002
    """Values sorted along ``dim`` and their indices; values carry gradients."""
    dim = _wrap_dim(dim, input.ndim)
    order = input._xp().argsort(-input._data if descending else input._data, axis=dim, kind="stable")
    indices = Tensor._make(order.astype(dtypes.int64))
    return values_indices(gather(input, dim, indices), indices)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:  # noqa: A002
    return sort(input, dim, descending, stable).indices


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
    """The ``k`` largest (or smallest) values along ``dim`` with their indices."""
    dim = _wrap_dim(dim, input.ndim)
    if not 0 <= k <= input.shape[dim]:
        raise RuntimeError(f"selected index k out of range (k={k}, size={input.shape[dim]})")
    order = sort(input, dim, descending=largest).indices
    indices = Tensor._make(order._data[(slice(None),) * dim + (slice(0, k),)])
    return values_indices(gather(input, dim, indices), indices)
