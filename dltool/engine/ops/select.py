"""Selection by order and counting: kthvalue, median, nanmedian, mode, msort, unique,
unique_consecutive, bincount, histc, bucketize and searchsorted.

Selected values are gathered from the input, so their gradients flow back to the chosen elements;
the counting ops give integer tensors without gradients.
"""

from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.ops._boundary import numpy_aliases, require_float, type_name, with_out
from dltool.engine.ops.index import gather, sort
from dltool.engine.ops.scan import along_dim, positions, scan
from dltool.engine.tensor import Tensor, _wrap_dim

values_indices = namedtuple("values_indices", ["values", "indices"])

# =============================================================== order statistics


def _pick(input: Tensor, dim: int, keepdim: bool, order: Any, position: Any) -> values_indices:
    """The elements at ``position`` (one per slice, keepdim-shaped) of ``input`` sorted by ``order``."""
    xp = input._xp()
    shape = order.shape[:dim] + (1,) + order.shape[dim + 1 :]
    position = xp.broadcast_to(xp.asarray(position, dtype=order.dtype), shape)
    indices = xp.take_along_axis(order, position, axis=dim)
    indices = Tensor._make(indices.astype(dtypes.int64))
    values = gather(input, dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return values_indices(values, indices)


def _stable_order(input: Tensor, dim: int) -> Any:
    """Ascending order along ``dim``, NaNs last, equal elements in their original order."""
    return input._xp().argsort(input._data, axis=dim, kind="stable")


def _check_reducible(input: Tensor, dim: int, name: str) -> None:
    if input.ndim and input.shape[dim] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {dim} to have non-zero size.")


def _kthvalue(input: Tensor, dim: int, k: int, keepdim: bool) -> values_indices:
    if not 1 <= k <= input.shape[dim]:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
    return _pick(input, dim, keepdim, _stable_order(input, dim), k - 1)


@numpy_aliases
@with_out
def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> values_indices:
    """The ``k``-th smallest element along ``dim`` (1-based) and its index.

    Example:
        >>> kthvalue(tensor([3.0, 1.0, 2.0]), 2).values.item()
        2.0
    """
    return along_dim(_kthvalue, input, dim, k, keepdim)


def _median(input: Tensor, dim: int, keepdim: bool, skip_nan: bool) -> values_indices:
    _check_reducible(input, dim, "nanmedian" if skip_nan else "median")
    xp = input._xp()
    size = input.shape[dim]
    nan_count = xp.isnan(input._data).sum(axis=dim, keepdims=True) if input.dtype.kind == "f" else 0
    if skip_nan:
        count = size - nan_count
        position = xp.maximum(count - 1, 0) // 2
    else:
        # a slice with NaNs has median NaN: the first NaN in sorted order (they sort last)
        position = xp.where(nan_count > 0, size - nan_count, (size - 1) // 2)
    return _pick(input, dim, keepdim, _stable_order(input, dim), position)


def _whole_median(input: Tensor, skip_nan: bool) -> Tensor:
    if input.numel() == 0:
        return Tensor._make(input._xp().full((), np.nan, dtype=input.dtype))
    return _median(input.reshape(-1), 0, False, skip_nan).values


@numpy_aliases
@with_out
def median(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median (of all elements, or ``(values, indices)`` along ``dim``); NaN if any is NaN.

    For an even count it is the lower of the two middle elements, as in PyTorch.

    Example:
        >>> median(tensor([1.0, 4.0, 2.0, 3.0])).item()
        2.0
    """
    if dim is None:
        return _whole_median(input, skip_nan=False)
    return along_dim(_median, input, dim, keepdim, False)


@numpy_aliases
@with_out
def nanmedian(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """``median`` ignoring NaNs (NaN only where a slice holds nothing else)."""
    if dim is None:
        return _whole_median(input, skip_nan=True)
    return along_dim(_median, input, dim, keepdim, True)


def _mode(input: Tensor, dim: int, keepdim: bool) -> values_indices:
    _check_reducible(input, dim, "mode")
    xp = input._xp()
    order = _stable_order(input, dim)
    ordered = xp.take_along_axis(input._data, order, axis=dim)
    at = positions(ordered.shape, dim, xp)
    starts = xp.ones(ordered.shape, dtype=bool)
    later = (slice(None),) * dim + (slice(1, None),)
    starts[later] = ordered[later] != ordered[(slice(None),) * dim + (slice(None, -1),)]
    run_length = at - scan(xp.maximum, xp.where(starts, at, 0), dim) + 1
    # the end of the first longest run: the smallest most frequent value, at its last index
    best = xp.argmax(run_length, axis=dim, keepdims=True)
    return _pick(input, dim, keepdim, order, best)


@numpy_aliases
@with_out
def mode(input: Tensor, dim: int = -1, keepdim: bool = False) -> values_indices:
    """The most frequent value along ``dim`` (the smallest on ties) and its last index."""
    return along_dim(_mode, input, dim, keepdim)


@with_out
def msort(input: Tensor) -> Tensor:
    """``input`` sorted along dim 0."""
    return sort(input, 0).values


# =============================================================== unique values


def _unique(input: Tensor, sorted_: bool, return_inverse: bool, return_counts: bool, dim: int | None) -> Any:
    xp = input._xp()
    if dim is None:
        rows, inverse_shape = input._data.reshape(-1, 1), input.shape
    else:
        dim = _wrap_dim(dim, input.ndim)
        moved = xp.moveaxis(input._data, dim, 0)
        rows, inverse_shape = moved.reshape(moved.shape[0], -1), (moved.shape[0],)
    n = rows.shape[0]
    if sorted_ and n and rows.shape[1]:
        order = xp.lexsort(rows.T[::-1])  # rows compared by their first column, then the next, ...
    else:
        order = xp.arange(n)
    ordered = rows[order]
    starts = xp.ones(n, dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)  # NaNs never equal: each is its own value
    kept = ordered[starts]
    if dim is None:
        output = Tensor._make(kept.reshape(-1))
    else:
        output = Tensor._make(xp.moveaxis(kept.reshape((-1,) + moved.shape[1:]), 0, dim))
    results = [output]
    if return_inverse:
        inverse = xp.empty(n, dtype=dtypes.int64)
        inverse[order] = xp.cumsum(starts) - 1
        results.append(Tensor._make(inverse.reshape(inverse_shape)))
    if return_counts:
        edges = xp.concatenate([xp.nonzero(starts)[0], xp.asarray([n])])
        results.append(Tensor._make(xp.diff(edges).astype(dtypes.int64)))
    return results[0] if len(results) == 1 else tuple(results)


def unique(
    input: Tensor,
    sorted: bool = True,
    return_inverse: bool = False,
    return_counts: bool = False,
    dim: int | None = None,
) -> Any:
    """The distinct elements (or slices along ``dim``), sorted, with optional inverse and counts.

    The result is always sorted (``sorted=False`` allows any order in PyTorch). NaNs are all kept,
    as PyTorch keeps them.

    Example:
        >>> unique(tensor([3, 1, 3]), return_counts=True)
        (tensor([1, 3]), tensor([1, 2]))
    """
    return _unique(input, True, return_inverse, return_counts, dim)


def unique_consecutive(
    input: Tensor, return_inverse: bool = False, return_counts: bool = False, dim: int | None = None
) -> Any:
    """The first element (or slice along ``dim``) of each run of equal consecutive ones."""
    return _unique(input, False, return_inverse, return_counts, dim)


# =============================================================== counting and binning


def bincount(input: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """How often each value ``0 .. max(input)`` occurs in the 1-D ``input`` (or the sum of its ``weights``).

    Example:
        >>> bincount(tensor([0, 1, 1, 3])).tolist()
        [1, 2, 0, 1]
    """
    if input.dtype.kind not in "iu":
        raise NotImplementedError(f"\"bincount_cpu\" not implemented for '{type_name(input.dtype)}'")
    if input.ndim != 1 or (input.numel() and int(input._data.min()) < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    xp = input._xp()
    if weights is None:
        return Tensor._make(xp.bincount(input._data, minlength=minlength).astype(dtypes.int64))
    if weights.ndim != 1 or weights.shape != input.shape:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dtype = weights.dtype if weights.dtype.kind == "f" else dtypes.float64
    return Tensor._make(xp.bincount(input._data, weights._data, minlength=minlength).astype(dtype))


@with_out
def histc(input: Tensor, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:
    """Counts of ``input`` in ``bins`` equal-width bins over ``[min, max]`` (the data's range if equal).

    Elements outside the range, and NaNs, are not counted; the last bin includes ``max``.

    Example:
        >>> histc(tensor([1.0, 2.0, 1.0]), bins=4, min=0, max=3).tolist()
        [0.0, 2.0, 1.0, 0.0]
    """
    require_float("histogram", input)
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if min > max:
        raise RuntimeError("torch.histc: max must be larger than min")
    xp, data = input._xp(), input._data.reshape(-1)
    low, high = builtins.float(min), builtins.float(max)
    if low == high and data.size:
        low, high = builtins.float(data.min()), builtins.float(data.max())
    if low == high:
        low, high = low - 1, high + 1
    if not (np.isfinite(low) and np.isfinite(high)):
        raise RuntimeError(f"torch.histc: range of [{low:g}, {high:g}] is not finite")
    low_, high_ = (xp.asarray(v, dtype=data.dtype) for v in (low, high))
    inside = data[(data >= low_) & (data <= high_)]
    # computed as PyTorch does, in the input's dtype: (x - min) * bins / (max - min), truncated
    position = ((inside - low_) * bins / (high_ - low_)).astype(dtypes.int64)
    position = xp.minimum(position, bins - 1)
    return Tensor._make(xp.bincount(position, minlength=bins).astype(input.dtype))


def _side(right: bool, side: str | None) -> str:
    if side is None:
        return "right" if right else "left"
    if side not in ("left", "right"):
        raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
    if right and side == "left":
        raise RuntimeError(
            "torch.searchsorted(): side and right can't be set to opposites, got side of left while right was True"
        )
    return side


def _batched_searchsorted(boundaries: Any, values: Any, side: str) -> Any:
    """``searchsorted`` of each row of ``values`` in the same row of ``boundaries``, for all rows at once.

    Each row of both is sorted together; a value's answer is the number of boundaries before it.
    On ties, values sort before the boundaries for ``left`` and after them for ``right``.
    """
    xp = backend.array_module(boundaries)
    n, m = boundaries.shape[-1], values.shape[-1]
    left = side == "left"
    joined = xp.concatenate([values, boundaries] if left else [boundaries, values], axis=-1)
    order = xp.argsort(joined, axis=-1, kind="stable")
    is_boundary = order >= m if left else order < n
    boundaries_before = xp.cumsum(is_boundary, axis=-1)
    answers = xp.take_along_axis(boundaries_before, xp.argsort(order, axis=-1), axis=-1)
    return answers[..., :m] if left else answers[..., n:]


@with_out
def searchsorted(
    sorted_sequence: Tensor,
    values: Any,
    *,
    out_int32: bool = False,
    right: bool = False,
    side: str | None = None,
    sorter: Tensor | None = None,
) -> Tensor:
    """Where ``values`` would go in the innermost dim of ``sorted_sequence`` to keep it sorted.

    ``sorted_sequence`` is 1-D, or has the leading dims of ``values`` (one sequence per row);
    ``side="right"`` (or ``right=True``) puts a value after equal elements.

    Example:
        >>> searchsorted(tensor([1, 3, 5]), tensor([3, 4])).tolist()
        [1, 2]
    """
    side = _side(right, side)
    if sorted_sequence.ndim == 0:
        raise RuntimeError(
            "torch.searchsorted(): boundaries tensor should have positive dimension, but got 0 dimension"
        )
    xp = sorted_sequence._xp()
    if not isinstance(values, Tensor):
        if sorted_sequence.ndim != 1:
            raise RuntimeError(
                "torch.searchsorted(): input value can be a scalar only when boundaries tensor dimension is 1, "
                f"but we got boundaries tensor dim({sorted_sequence.ndim}) and input value's dim(0) numel(1)"
            )
        values = Tensor._make(xp.asarray(values))
    if sorted_sequence.ndim > 1 and sorted_sequence.shape[:-1] != values.shape[:-1]:
        raise RuntimeError(
            "torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions of "
            "boundaries tensor and input value tensor must match, but we got boundaries tensor "
            f"{list(sorted_sequence.shape)} and input value tensor {list(values.shape)}"
        )
    boundaries = _apply_sorter(sorted_sequence, sorter)
    if boundaries.ndim == 1:
        answers = xp.asarray(xp.searchsorted(boundaries, values._data, side=side))
    else:
        answers = _batched_searchsorted(boundaries, values._data, side)
    return Tensor._make(answers.astype(dtypes.int32 if out_int32 else dtypes.int64))


def _apply_sorter(sorted_sequence: Tensor, sorter: Tensor | None) -> Any:
    """The boundaries in sorted order: ``sorted_sequence`` itself, or taken in ``sorter``'s order."""
    if sorter is None:
        return sorted_sequence._data
    if sorter.shape != sorted_sequence.shape:
        raise RuntimeError(
            "torch.searchsorted(): boundary and sorter must have the same size, but got boundary tensor "
            f"{list(sorted_sequence.shape)}and got sorter tensor {list(sorter.shape)}"
        )
    size = sorted_sequence.shape[-1]
    if sorter.numel() and (int(sorter._data.min()) < 0 or int(sorter._data.max()) >= size):
        raise RuntimeError("torch.searchsorted(): sorter index out of range")
    return sorted_sequence._xp().take_along_axis(sorted_sequence._data, sorter._data, axis=-1)


@with_out
def bucketize(input: Any, boundaries: Tensor, *, out_int32: bool = False, right: bool = False) -> Tensor:
    """The index of the bucket of each element of ``input`` between the sorted 1-D ``boundaries``.

    ``boundaries[i-1] < x <= boundaries[i]`` gives ``i`` (``<=`` and ``<`` swap with ``right=True``).
    """
    if boundaries.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)
