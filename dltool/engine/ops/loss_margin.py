"""Margin and embedding losses: cosine_embedding, margin_ranking, hinge_embedding, soft_margin,
multilabel_soft_margin, multi_margin, triplet_margin.

Each is a composition of existing ops in PyTorch's formula, so it needs no backward of its own.
"""

from __future__ import annotations

from typing import Any

from dltool.engine.ops.activation import softplus
from dltool.engine.ops.elementwise import clamp_min, minimum, sqrt, where
from dltool.engine.ops.loss import apply_reduction, checked_reduction, legacy_reduction
from dltool.engine.ops.reduce import norm
from dltool.engine.tensor import Tensor

_COSINE_EPS = 1e-12  # added to both squared norms, as PyTorch does

# =============================================================== pairs and embeddings


def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``1 - cos(x1, x2)`` where ``target == 1``, ``max(0, cos(x1, x2) - margin)`` where it is -1.

    Rows ``(N, D)`` go with a target ``(N,)``, vectors ``(D,)`` with a 0-dim target.

    Example:
        >>> cosine_embedding_loss(tensor([[1.0, 0.0]]), tensor([[1.0, 1.0]]), tensor([1]))
        tensor(0.2929)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    if target.ndim > 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input1.ndim != target.ndim + 1 or input2.ndim != target.ndim + 1:
        raise RuntimeError(
            f"{target.ndim}D target tensor expects {target.ndim + 1}D input tensors, but found inputs "
            f"with sizes {list(input1.shape)} and {list(input2.shape)}."
        )
    dim = target.ndim
    dot = (input1 * input2).sum(dim)
    squares = ((input1 * input1).sum(dim) + _COSINE_EPS) * ((input2 * input2).sum(dim) + _COSINE_EPS)
    cos = dot / sqrt(squares)
    loss = where(target == 1, 1.0 - cos, 0.0) + where(target == -1, clamp_min(cos - margin, 0.0), 0.0)
    return apply_reduction(loss, reduction)


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``: ``target = 1`` wants ``input1`` ranked higher.

    Example:
        >>> margin_ranking_loss(tensor([1.0, 0.0]), tensor([0.0, 1.0]), tensor([1.0, 1.0]), margin=0.5)
        tensor(0.7500)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise RuntimeError(
            "margin_ranking_loss : All input tensors should have same dimension but got sizes: "
            f"input1: {input1.size()}, input2: {input2.size()}, target: {target.size()} "
        )
    return apply_reduction(clamp_min(-target * (input1 - input2) + margin, 0.0), reduction)


def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``input`` where ``target == 1``, ``max(0, margin - input)`` where it is -1 (e.g. distances).

    Example:
        >>> hinge_embedding_loss(tensor([0.3, 2.0]), tensor([1.0, -1.0]))
        tensor(0.1500)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    loss = where(target != 1, clamp_min(margin - input, 0.0), 0.0) + where(target != -1, input, 0.0)
    return apply_reduction(loss, reduction)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, margin + d(a, p) - d(a, n))`` with ``d`` the ``p``-norm of ``x1 - x2 + eps``.

    ``swap`` measures the negative's distance from the nearer of anchor and positive.

    Example:
        >>> triplet_margin_loss(tensor([[0.0, 0.0]]), tensor([[1.0, 0.0]]), tensor([[0.0, 3.0]]))
        tensor(0.)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(
            "The anchor, positive, and negative tensors are expected to have the same number of "
            f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
            f"{negative.ndim}D inputs"
        )
    positive_distance = _pairwise_distance(anchor, positive, p, eps)
    negative_distance = _pairwise_distance(anchor, negative, p, eps)
    if swap:
        negative_distance = minimum(negative_distance, _pairwise_distance(positive, negative, p, eps))
    return apply_reduction(clamp_min(margin + positive_distance - negative_distance, 0.0), reduction)


def _pairwise_distance(x1: Tensor, x2: Tensor, p: float, eps: float) -> Tensor:
    """PyTorch's ``pairwise_distance``: the ``p``-norm of ``x1 - x2 + eps`` over the last dim."""
    return norm(x1 - x2 + eps, p, -1)


# =============================================================== classification margins


def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Two-class logistic loss ``log(1 + exp(-target * input))`` for targets of ±1.

    Example:
        >>> soft_margin_loss(tensor([2.0, -1.0]), tensor([1.0, 1.0]))
        tensor(0.7201)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    return apply_reduction(softplus(-target * input), reduction)


def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross-entropy of ``sigmoid(input)`` with 0/1 ``target``, averaged over the classes
    (the last dim), with per-class ``weight``.

    Example:
        >>> multilabel_soft_margin_loss(tensor([[2.0, -1.0]]), tensor([[1.0, 0.0]]))
        tensor(0.2201)
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    # -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x)
    loss = target * softplus(-input) + (1.0 - target) * softplus(input)
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(dim=-1) / input.shape[-1]
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    return apply_reduction(loss, reduction)


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Multi-class hinge loss ``sum_{j != y} w_y max(0, margin - x_y + x_j)^p / C`` for logits
    ``(N, C)`` (or ``(C,)``) and class indices ``y``; ``p`` is 1 or 2.

    Example:
        >>> multi_margin_loss(tensor([[0.1, 0.2, 0.4, 0.8]]), tensor([3]))
        tensor(0.3250)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    x, t = _margin_rows(input, target, weight)
    rows = x._xp().arange(x.shape[0])
    hinge = clamp_min(margin - x[rows, t].unsqueeze(1) + x, 0.0)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * weight[t].unsqueeze(1)
    others = Tensor._make(t[:, None] != x._xp().arange(x.shape[1]))
    loss = where(others, hinge, 0.0).sum(dim=1) / x.shape[1]
    return apply_reduction(loss if input.ndim == 2 else loss.reshape(()), reduction)


def _margin_rows(x: Tensor, target: Tensor, weight: Tensor | None) -> tuple[Tensor, Any]:
    """``x`` as rows ``(N, C)`` and ``target`` as an index array, checked as PyTorch does."""
    shape = list(x.shape)
    if not (x.ndim == 0 or (x.ndim in (1, 2) and shape[-1] != 0)):
        raise RuntimeError(
            f"Expected non-empty vector or matrix with optional 0-dim batch size, but got: {shape}"
        )
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {target.dtype}")
    rows, classes = x.reshape(-1, shape[-1] if shape else 1).shape
    if target.ndim > 1 or target.numel() != rows:
        raise RuntimeError(
            "multi_margin_loss: target tensor should be 1-D with size equal to the number of input "
            f"samples (batch size). Expected target size [{rows}], but got {list(target.shape)}. "
            f"Input has shape {shape}."
        )
    if weight is not None and weight.numel() != classes:
        raise RuntimeError(f"inconsistent weight size, expected {classes} but got {list(weight.shape)}")
    t = target._data.reshape(-1)
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise RuntimeError("target out of range")
    return x.reshape(rows, classes), t
