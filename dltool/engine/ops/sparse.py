"""Embedding lookup: rows of a weight matrix picked by integer indices, alone or summed, averaged or
maxed over bags; gradients scatter-add back."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine.autograd.function import Function
from dltool.engine.ops.elementwise import where
from dltool.engine.ops.index import IndexAdd
from dltool.engine.tensor import Tensor


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq):
        ctx.shape = weight.shape
        ctx.indices = indices._data
        ctx.options = padding_idx, scale_grad_by_freq
        return weight._data[indices._data]

    @staticmethod
    def backward(ctx, grad_output):
        indices = ctx.indices
        padding_idx, scale_grad_by_freq = ctx.options
        xp = grad_output._xp()
        grad = grad_output
        if scale_grad_by_freq:
            counts = xp.bincount(indices.reshape(-1), minlength=ctx.shape[0])[indices]
            grad = grad / Tensor._make(counts[..., None].astype(grad.dtype))
        if padding_idx is not None:
            grad = where(Tensor._make(indices[..., None] != padding_idx), grad, 0.0)
        return IndexAdd.apply(grad, ctx.shape, (indices,), True), None, None, None


def _renorm_rows(weight: Tensor, indices: Any, max_norm: float, norm_type: float) -> None:
    """Scale the looked-up rows whose norm exceeds ``max_norm`` down to it, in place (no grad)."""
    xp = weight._xp()
    rows = xp.unique(indices.reshape(-1))
    norms = xp.linalg.norm(weight._data[rows], ord=norm_type, axis=1)
    scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0).astype(weight.dtype)
    weight._data[rows] *= scale[:, None]
    weight._version_counter[0] += 1


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` at the integer ``input``; the ``padding_idx`` row gets no gradient."""
    if input.dtype.kind not in "iu":
        raise RuntimeError(
            f"Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got {input.dtype} instead"
        )
    if sparse:
        raise NotImplementedError("sparse gradients are not supported; use sparse=False")
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError("Padding_idx must be within num_embeddings")
        padding_idx %= num
    data = input._data
    if data.size and (data.min() < 0 or data.max() >= num):
        raise IndexError(
            f"index out of range in self (indices must be in [0, {num}), got {int(data.min())}..{int(data.max())})"
        )
    if max_norm is not None:
        _renorm_rows(weight, data, max_norm, norm_type)
    return Embedding.apply(weight, input, padding_idx, scale_grad_by_freq)


# =============================================================== bags


def _bag_of_positions(indices: Tensor, offsets: Tensor, include_last_offset: bool) -> tuple[Any, int]:
    """The bag of each position of the 1-D ``indices`` (-1 past the last bag) and the bag count."""
    if offsets.dtype.kind not in "iu":
        raise RuntimeError(
            f"Expected tensor for argument #2 'offsets' to have one of the following scalar types: Long, Int; but got {offsets.dtype} instead"
        )
    xp = indices._xp()
    starts = offsets._data.astype(np.int64, copy=False)
    size = indices.shape[0]
    if starts.size:
        if int(starts[0]) != 0:
            raise RuntimeError(
                f"offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0. However, got {int(starts[0])}"
            )
        if int(starts[-1]) > size:
            raise RuntimeError(
                f"offsets[-1] can not be greater than input's length {size} but got offsets[-1] of {int(starts[-1])}"
            )
        if (starts[1:] < starts[:-1]).any():
            raise RuntimeError("offsets has to be non-decreasing")
    end = size
    if include_last_offset and starts.size:
        starts, end = starts[:-1], int(starts[-1])
    positions = xp.arange(size)
    bag = xp.searchsorted(starts, positions, side="right") - 1
    return xp.where(positions < end, bag, -1), int(starts.size)


def _flat_bags(
    indices: Tensor, offsets: Tensor | None, per_sample_weights: Tensor | None, include_last_offset: bool
) -> tuple:
    """Indices and per-sample weights as 1-D tensors, with the bag of each position and the bag count."""
    if indices.ndim == 2:
        if offsets is not None:
            raise ValueError(
                "if input is 2D, then offsets has to be None, as input is treated is a mini-batch of fixed "
                f"length sequences. However, found offsets of type {type(offsets)}"
            )
        rows, length = indices.shape
        bag = indices._xp().repeat(indices._xp().arange(rows), length)
        weights = None if per_sample_weights is None else per_sample_weights.reshape(-1)
        return indices.reshape(-1), weights, bag, rows
    if indices.ndim != 1:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {indices.ndim}")
    if offsets is None:
        raise ValueError("offsets has to be a 1D Tensor but got None")
    if offsets.ndim != 1:
        raise ValueError("offsets has to be a 1D Tensor")
    return (indices, per_sample_weights, *_bag_of_positions(indices, offsets, include_last_offset))


def _kept_positions(indices: Tensor, bag: Any, num: int, padding_idx: int | None) -> Any:
    """Which positions count: those inside a bag whose index is not ``padding_idx``."""
    if indices.dtype.kind not in "iu":
        raise RuntimeError(
            f"Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got {indices.dtype} instead"
        )
    data = indices._data
    bad = (data < 0) | (data >= num)
    if bad.any():
        first = int(bad.argmax())
        raise RuntimeError(
            f"Index {first} of input takes value {int(data[first])} which is not in the valid range [0, {num})"
        )
    keep = bag >= 0
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise RuntimeError(
                f"padding_idx must be within the number of embeddings, -{num} through {num - 1}, but got {padding_idx}"
            )
        keep &= data != padding_idx % num
    return keep


def _bag_max(rows: Tensor, bag: Any, bags: int) -> Tensor:
    """Each bag's elementwise max over its rows (sorted by bag), 0 for an empty bag. Its gradient
    goes to the first maximum, as in PyTorch."""
    xp = rows._xp()
    count, dim = rows.shape
    if count == 0:
        return Tensor._make(xp.zeros((bags, dim), dtype=rows.dtype))
    first = xp.searchsorted(bag, xp.arange(bags))
    sizes = xp.bincount(bag, minlength=bags)
    table = xp.full((bags, int(sizes.max()), dim), -np.inf, dtype=rows.dtype)
    table[bag, xp.arange(count) - first[bag]] = rows._data
    which = xp.minimum(first[:, None] + table.argmax(axis=1), count - 1)
    y = rows[Tensor._make(which), Tensor._make(xp.arange(dim))]
    return where(Tensor._make(sizes[:, None] > 0), y, 0.0)


def embedding_bag(
    input: Tensor,
    weight: Tensor,
    offsets: Tensor | None = None,
    max_norm: float | None = None,
    norm_type: float = 2,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights: Tensor | None = None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
) -> Tensor:
    """Sums, means or maxima of bags of ``weight`` rows, without forming each bag's rows apart.

    A 2-D ``input`` is one bag per row; a 1-D one is cut into bags at ``offsets`` (with
    ``include_last_offset``, the last offset ends the last bag). ``per_sample_weights`` scale the
    rows (mode ``'sum'`` only); ``padding_idx`` rows are left out of their bag; an empty bag is 0.

    Example:
        >>> embedding_bag(tensor([0, 2, 1]), tensor([[1.0], [2.0], [4.0]]), tensor([0, 2]), mode="sum")
        tensor([[5.],
                [2.]])
    """
    if per_sample_weights is not None and input.shape != per_sample_weights.shape:
        raise ValueError(
            f"embedding_bag: If per_sample_weights ({per_sample_weights.shape}) is not None, then it must "
            f"have the same shape as the input ({input.shape})"
        )
    if weight.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.ndim}")
    indices, per_sample_weights, bag, bags = _flat_bags(
        input, offsets, per_sample_weights, include_last_offset
    )
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(
            "embedding_bag: per_sample_weights was not None. per_sample_weights is only supported for "
            f"mode='sum' (got mode='{mode}'). Please open a feature request on GitHub."
        )
    keep = _kept_positions(indices, bag, weight.shape[0], padding_idx)
    if max_norm is not None:
        _renorm_rows(weight, indices._data, max_norm, norm_type)
    rows = embedding(
        Tensor._make(indices._data[keep]), weight, None, None, norm_type, scale_grad_by_freq, sparse
    )
    bag = bag[keep]
    if mode == "max":
        return _bag_max(rows, bag, bags)
    if per_sample_weights is not None:
        rows = rows * per_sample_weights[Tensor._make(keep)].unsqueeze(1)
    y = IndexAdd.apply(rows, (bags, weight.shape[1]), (bag,), True)
    if mode == "mean":
        sizes = rows._xp().bincount(bag, minlength=bags)
        y = y / Tensor._make(rows._xp().maximum(sizes, 1)[:, None].astype(y.dtype))
    return y
