"""Embedding lookup: rows of a weight matrix picked by integer indices; gradients scatter-add back."""

from __future__ import annotations

from typing import Any

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
    input: Tensor,  # noqa: A002
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` at the integer ``input``; the ``padding_idx`` row gets no gradient."""
    if input.dtype.kind not in "iu":
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got {input.dtype} instead")
    if sparse:
        raise NotImplementedError("sparse gradients are not supported; use sparse=False")
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError("Padding_idx must be within num_embeddings")
        padding_idx %= num
    data = input._data
    if data.size and (data.min() < 0 or data.max() >= num):
        raise IndexError(f"index out of range in self (indices must be in [0, {num}), got {int(data.min())}..{int(data.max())})")
    if max_norm is not None:
        _renorm_rows(weight, data, max_norm, norm_type)
    return Embedding.apply(weight, input, padding_idx, scale_grad_by_freq)
