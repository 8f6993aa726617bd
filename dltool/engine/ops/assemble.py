"""Tensors assembled from others: repeat_interleave, atleast_Nd, the *stack family, meshgrid,
cartesian_prod and block_diag. All compose differentiable ops, so none has a backward of its own."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

from dltool.engine.creation import zeros
from dltool.engine.ops._boundary import numpy_aliases, type_name, with_out
from dltool.engine.ops.index import index_select
from dltool.engine.ops.shape import cat, pad, reshape, stack
from dltool.engine.tensor import Tensor, _wrap_dim

# =============================================================== repeat_interleave


def _repeat_counts(repeats: Any, size: int, dim: int, xp: Any) -> Any:
    """How often each of the ``size`` slices repeats, as an array, with PyTorch's checks."""
    if not isinstance(repeats, Tensor):
        if repeats < 0:
            raise RuntimeError("Repeats must be non-negative")
        return xp.full(size, int(repeats), dtype="int64")
    if repeats.ndim > 1:
        raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
    if repeats.dtype.kind not in "iu":
        raise NotImplementedError(
            f"\"repeat_interleave_cpu\" not implemented for '{type_name(repeats.dtype)}'"
        )
    counts = repeats._data.reshape(-1)
    if counts.size == 1:
        counts = xp.broadcast_to(counts, (size,))
    elif counts.size != size:
        raise RuntimeError(
            f"repeats must have the same size as input along dim, but got repeats.size(0) = {counts.size} "
            f"and input.size({dim}) = {size}"
        )
    if size and bool((counts < 0).any()):
        raise RuntimeError("repeats can not be negative")
    return counts


@numpy_aliases
def repeat_interleave(
    input: Tensor, repeats: Any = None, dim: int | None = None, *, output_size: int | None = None
) -> Tensor:
    """Each slice of ``input`` along ``dim`` (of the flattened input without ``dim``) repeated in place.

    ``repeat_interleave(counts)`` alone gives ``0 .. len(counts) - 1`` each repeated ``counts[i]`` times.

    Example:
        >>> repeat_interleave(tensor([1, 2]), 2).tolist()
        [1, 1, 2, 2]
    """
    xp = input._xp()
    if repeats is None:
        return repeat_interleave(Tensor._make(xp.arange(input.numel())), input, 0, output_size=output_size)
    if dim is None:
        input, dim = reshape(input, -1), 0
    dim = _wrap_dim(dim, input.ndim)
    size = input.shape[dim] if input.ndim else 1
    ends = xp.cumsum(_repeat_counts(repeats, size, dim, xp))
    total = int(ends[-1]) if size else 0
    if output_size is not None and output_size != total:
        raise RuntimeError(f"repeat_interleave: Invalid output_size, expected {total} but got {output_size}")
    # slice i fills the output positions [ends[i-1], ends[i])
    index = xp.searchsorted(ends, xp.arange(total), side="right")
    return index_select(input, dim, Tensor._make(index))


# =============================================================== at least N dims, and stacking


def _each(tensors: tuple, fn: Callable[[Tensor], Tensor]) -> Any:
    """``fn`` of one tensor, or a tuple of ``fn`` of each (given as arguments or as one sequence)."""
    if len(tensors) == 1 and isinstance(tensors[0], Tensor):
        return fn(tensors[0])
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    return tuple(fn(x) for x in tensors)


def atleast_1d(*tensors: Any) -> Any:
    """0-dim tensors as 1-element vectors; others unchanged."""
    return _each(tensors, lambda x: reshape(x, 1) if x.ndim == 0 else x)


def atleast_2d(*tensors: Any) -> Any:
    """0-dim tensors as 1 x 1 and vectors as 1 x n; others unchanged."""
    return _each(tensors, lambda x: reshape(x, 1, -1) if x.ndim < 2 else x)


def atleast_3d(*tensors: Any) -> Any:
    """0-dim tensors as 1 x 1 x 1, vectors as 1 x n x 1 and matrices as m x n x 1; others unchanged."""
    shapes = {0: (1, 1, 1), 1: (1, -1, 1)}
    return _each(tensors, lambda x: reshape(x, shapes.get(x.ndim, x.shape + (1,))) if x.ndim < 3 else x)


def _nonempty(tensors: Sequence[Tensor], name: str) -> list[Tensor]:
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError(f"{name} expects a non-empty TensorList")
    return tensors


@with_out
def hstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 1 (dim 0 for vectors), after ``atleast_1d``."""
    tensors = atleast_1d(_nonempty(tensors, "hstack"))
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


@with_out
def vstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 0, after ``atleast_2d``."""
    return cat(atleast_2d(_nonempty(tensors, "vstack")), 0)


row_stack = vstack


@with_out
def dstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 2, after ``atleast_3d``."""
    return cat(atleast_3d(_nonempty(tensors, "dstack")), 2)


@with_out
def column_stack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 1, with 0-dim tensors and vectors as columns."""
    tensors = _nonempty(tensors, "column_stack")
    return cat([reshape(x, -1, 1) if x.ndim < 2 else x for x in tensors], 1)


# =============================================================== grids and blocks


def meshgrid(*tensors: Any, indexing: str | None = None) -> tuple[Tensor, ...]:
    """Coordinate grids, one per input vector, each expanded over all of them.

    ``indexing="ij"`` (the default, as in PyTorch) gives the grids shape ``(len(t0), len(t1), ...)``;
    ``"xy"`` swaps the first two. The grids are broadcast views.
    """
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    indexing = "ij" if indexing is None else indexing
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    for x in tensors:
        if x.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {x}")
        if x.dtype != tensors[0].dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) > 1:
        order[0], order[1] = 1, 0
    shape = tuple(tensors[i].numel() for i in order)
    grids = []
    for position, i in enumerate(order):
        sizes = [1] * len(tensors)
        sizes[position] = -1
        grids.append(reshape(tensors[i], sizes).expand(shape))
    return tuple(grids[order.index(i)] for i in range(len(tensors)))


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """Every combination of one element from each vector, as rows (``itertools.product`` order)."""
    for x in tensors:
        if x.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(x.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    return stack([reshape(g, -1) for g in meshgrid(*tensors, indexing="ij")], 1)


def block_diag(*tensors: Tensor) -> Tensor:
    """The tensors (0-, 1- or 2-dim, each taken as a matrix) along the diagonal of a zero matrix."""
    blocks = []
    for i, x in enumerate(tensors):
        if x.ndim > 2:
            raise RuntimeError(
                f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has {x.ndim} dimensions"
            )
        blocks.append(reshape(x, 1, -1) if x.ndim < 2 else x)
    if not blocks:
        return zeros(1, 0)
    width = builtins.sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        rows.append(pad(b, (left, width - left - b.shape[1])))
        left += b.shape[1]
    return cat(rows, 0)
