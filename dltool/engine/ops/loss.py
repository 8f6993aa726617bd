"""Losses: a fused softmax cross-entropy, nll, bce (with logits), mse, l1, smooth l1, huber, kl_div.

The other families live beside it: ``loss_likelihood`` (Poisson, Gaussian), ``loss_margin``
(hinge, ranking and embedding losses) and ``loss_ctc``.

Cross-entropy is one ``Function`` over logits and per-class coefficients ``a`` (a one-hot row for
a class index, with weights and label smoothing folded in, or a probability row):
``loss = sum_c a_c * (logsumexp(x) - x_c)``, with gradient ``softmax(x) * sum(a) - a``. It never
forms ``log(softmax)``, so it is stable, and it saves only the logits.
"""

from __future__ import annotations

import warnings
from typing import Any

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._utils import row_reduce, unbroadcast
from dltool.engine.ops.activation import softplus
from dltool.engine.ops.elementwise import abs, clamp, log, where
from dltool.engine.ops.reduce import log_softmax, softmax
from dltool.engine.tensor import Tensor

_REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The ``reduction`` meant by PyTorch's deprecated ``size_average``/``reduce`` flags."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    result = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{result}' instead.",
        UserWarning,
        stacklevel=3,
    )
    return result


def checked_reduction(reduction: str) -> str:
    """``reduction``, refused before any work unless it is ``'none'``, ``'mean'`` or ``'sum'``."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def apply_reduction(loss: Tensor, reduction: str) -> Tensor:
    """``loss`` averaged, summed or kept elementwise, as ``reduction`` says."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_sizes(input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        warnings.warn(
            f"Using a target size ({tuple(target.shape)}) that is different to the input size "
            f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            UserWarning,
            stacklevel=3,
        )


# =============================================================== cross-entropy


class SoftmaxCrossEntropy(Function):
    """Rows ``sum_c a_c (logsumexp(x) - x_c)``; given a ``denominator``, their sum divided by it.

    Folding the mean into the node keeps the common loss a single node of the graph.
    """

    @staticmethod
    def forward(ctx, x, a, dim, denominator):
        xp = x._xp()
        log_probs = x._data - row_reduce(xp.maximum, x._data, dim)
        log_probs -= xp.log(row_reduce(xp.add, xp.exp(log_probs), dim))
        log_probs *= a._data
        ctx.save_for_backward(x, a, denominator)
        ctx.dim = dim
        if denominator is None:
            return -row_reduce(xp.add, log_probs, dim).squeeze(dim)
        return log_probs.sum() / -denominator._data

    @staticmethod
    def backward(ctx, grad_output):
        x, a, denominator = ctx.saved_tensors
        dim = ctx.dim
        grad = grad_output.unsqueeze(dim) if denominator is None else grad_output / denominator
        x_grad = a_grad = None
        if ctx.needs_input_grad[0]:
            x_grad = SoftmaxCrossEntropyGrad.apply(grad, x, a, dim)
        if ctx.needs_input_grad[1]:
            a_grad = -grad * log_softmax(x, dim)
        return x_grad, a_grad, None, None


class SoftmaxCrossEntropyGrad(Function):
    """``grad * (softmax(x) * sum_c(a) - a)``, the logits' gradient, as one node with its own
    backward (second derivatives of the loss)."""

    @staticmethod
    def forward(ctx, grad, x, a, dim):
        xp = x._xp()
        probs = x._data - row_reduce(xp.maximum, x._data, dim)
        xp.exp(probs, out=probs)
        probs /= row_reduce(xp.add, probs, dim)
        ctx.save_for_backward(grad, x, a)
        ctx.dim = dim
        return grad._data * (probs * row_reduce(xp.add, a._data, dim) - a._data)

    @staticmethod
    def backward(ctx, grad_output):
        grad, x, a = ctx.saved_tensors
        dim = ctx.dim
        needs_grad, needs_x, needs_a, _ = ctx.needs_input_grad
        probs, total = softmax(x, dim), a.sum(dim=dim, keepdim=True)
        grad_grad = x_grad = a_grad = None
        if needs_grad:
            grad_grad = unbroadcast(grad_output * (probs * total - a), grad.shape)
        if needs_x:  # softmax's vector-Jacobian product with grad * grad_output * total
            upstream = grad_output * grad * total
            x_grad = probs * (upstream - (upstream * probs).sum(dim=dim, keepdim=True))
        if needs_a:
            a_grad = grad * ((grad_output * probs).sum(dim=dim, keepdim=True) - grad_output)
        return grad_grad, x_grad, a_grad, None


def _unsqueeze_array(array: Any, dim: int) -> Any:
    return array.reshape(array.shape[:dim] + (1,) + array.shape[dim:])


def _class_coefficients(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
) -> tuple[Tensor, Tensor]:
    """Per-class coefficients ``a`` for class-index targets, and the mean's denominator.

    Row i is ``(1-ε) w[t_i] onehot(t_i) + (ε/C) w`` (zero where ``t_i == ignore_index``); the
    denominator is ``sum_i w[t_i]`` over kept rows, as PyTorch divides both terms by it.
    """
    dim = 0 if input.ndim == 1 else 1
    classes = input.shape[dim]
    expected = input.shape[:dim] + input.shape[dim + 1 :]
    if target.shape != expected:
        raise RuntimeError(f"Expected target size {expected}, got {tuple(target.shape)}")
    if target.dtype.kind not in "iu":
        raise RuntimeError(f"expected scalar type Long but found {target.dtype} for the class-index target")
    if weight is not None and weight.shape != (classes,):
        raise RuntimeError(
            f"weight tensor should be defined either for all {classes} classes or no classes but got weight tensor of shape: {list(weight.shape)}"
        )
    return ClassCoefficients.apply(input, target, weight, ignore_index, label_smoothing)


class ClassCoefficients(Function):
    """``_class_coefficients``'s arrays, as a node of their own (without a gradient) so that a trace
    records them as a function of the targets rather than as constants."""

    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, label_smoothing):
        a, denominator = _coefficient_arrays(input, target, weight, ignore_index, label_smoothing)
        ctx.mark_non_differentiable(a, denominator)
        return a, denominator


def _coefficient_arrays(
    input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, label_smoothing: float
) -> tuple[Any, Any]:
    """The arrays of ``_class_coefficients``, for targets that passed its checks."""
    dim = 0 if input.ndim == 1 else 1
    classes = input.shape[dim]
    xp, dtype = input._xp(), input.dtype
    t = target._data
    if weight is None and label_smoothing == 0 and input.ndim <= 2 and t.size:
        low, high = int(t.min()), int(t.max())
        if 0 <= low and high < classes and not low <= ignore_index <= high:  # the common case
            onehot = xp.eye(classes, dtype=dtype)[t]
            return onehot, xp.asarray(t.size, dtype=dtype)
    kept = t != ignore_index
    bad = ((t < 0) | (t >= classes)) & kept
    if bad.any():
        raise IndexError(f"Target {int(t[bad].reshape(-1)[0])} is out of bounds.")
    safe = xp.where(kept, t, 0)
    class_axis = xp.arange(classes).reshape((classes,) + (1,) * (input.ndim - dim - 1))
    onehot = (_unsqueeze_array(safe, dim) == class_axis) & _unsqueeze_array(kept, dim)
    if weight is None and label_smoothing == 0:
        return onehot.astype(dtype), xp.asarray(kept.sum(), dtype=dtype)
    w = xp.ones(classes, dtype=dtype) if weight is None else weight._data.astype(dtype, copy=False)
    row_weight = xp.where(kept, w[safe], 0).astype(dtype, copy=False)
    a = onehot * _unsqueeze_array(row_weight * (1.0 - label_smoothing), dim)
    if label_smoothing > 0:
        spread = w.reshape(class_axis.shape) * (label_smoothing / classes)
        a = a + spread * _unsqueeze_array(kept, dim)
    return a.astype(dtype, copy=False), xp.asarray(row_weight.sum(), dtype=dtype)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits ``(N, C, ...)`` (or ``(C,)``) with class indices or probabilities.

    Example:
        >>> cross_entropy(tensor([[2.0, 0.5, -1.0]]), tensor([0]))
        tensor(0.2413)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    dim = 0 if input.ndim == 1 else 1
    if target.dtype.kind == "f":
        a, denominator = _probability_coefficients(input, target, weight, label_smoothing, dim)
    else:
        a, denominator = _class_coefficients(input, target, weight, ignore_index, label_smoothing)
    if reduction == "mean":
        return SoftmaxCrossEntropy.apply(input, a, dim, denominator)
    return apply_reduction(SoftmaxCrossEntropy.apply(input, a, dim, None), reduction)


def _probability_coefficients(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    label_smoothing: float,
    dim: int,
) -> tuple[Tensor, Tensor]:
    """Probability targets as coefficients (smoothed, weighted) and the mean's denominator (rows)."""
    if target.shape != input.shape:
        raise RuntimeError(f"Expected target size {tuple(input.shape)}, got {tuple(target.shape)}")
    classes = input.shape[dim]
    if label_smoothing > 0:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    if weight is not None:
        target = target * weight.reshape((classes,) + (1,) * (input.ndim - dim - 1))
    rows = max(input.numel() // classes, 1)
    return target.to(input.dtype), Tensor._make(input._xp().asarray(rows, dtype=input.dtype))


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``(N, C, ...)`` at class indices."""
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    a, denominator = _class_coefficients(input, target, weight, ignore_index, 0.0)
    loss = -(input * a).sum(dim=0 if input.ndim == 1 else 1)
    if reduction == "mean":
        return loss.sum() / denominator
    return apply_reduction(loss, reduction)


# =============================================================== binary


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """``-w (t log x + (1-t) log(1-x))`` for probabilities ``x``; logs are clamped at -100 as in PyTorch."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(
            f"Using a target size ({tuple(target.shape)}) that is different to the input size "
            f"({tuple(input.shape)}) is deprecated. Please ensure they have the same size."
        )
    data = input._data
    if ((data < 0) | (data > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = -(target * clamp(log(input), min=-100.0) + (1.0 - target) * clamp(log(1.0 - input), min=-100.0))
    if weight is not None:
        loss = loss * weight
    return apply_reduction(loss, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """BCE of ``sigmoid(input)`` computed from the logits stably; ``pos_weight`` scales positives."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(
            f"Target size ({tuple(target.shape)}) must be the same as input size ({tuple(input.shape)})"
        )
    # -log(sigmoid(x)) = softplus(-x) and -log(1 - sigmoid(x)) = x + softplus(-x)
    log_weight = 1.0 if pos_weight is None else (pos_weight - 1.0) * target + 1.0
    loss = (1.0 - target) * input + log_weight * softplus(-input)
    if weight is not None:
        loss = loss * weight
    return apply_reduction(loss, reduction)


# =============================================================== regression


def _weighted(loss: Tensor, weight: Tensor | None, reduction: str, mean_by_weight: bool) -> Tensor:
    """Elementwise ``weight`` (input-shaped) applied; mse/l1 then average by ``sum(weight)``."""
    if weight is None:
        return apply_reduction(loss, reduction)
    if weight.shape != loss.shape:
        raise ValueError("Weights and input must have the same size.")
    loss = loss * weight
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', 'sum'.")
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / weight.sum()
    return apply_reduction(loss, reduction)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error (weighted by an input-shaped ``weight``: ``sum(w e²) / sum(w)``)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_sizes(input, target)
    diff = input - target
    return _weighted(diff * diff, weight, reduction, True)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean absolute error (weighted like ``mse_loss``)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_sizes(input, target)
    return _weighted(abs(input - target), weight, reduction, True)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """``0.5 d²/beta`` where ``|d| < beta``, else ``|d| - beta/2``; plain L1 for ``beta == 0``."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _check_sizes(input, target)
    distance = abs(input - target)
    if beta == 0:
        return apply_reduction(distance, reduction)
    loss = where(distance < beta, distance * distance * (0.5 / beta), distance - 0.5 * beta)
    return apply_reduction(loss, reduction)


def huber_loss(
    input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0, weight: Tensor | None = None
) -> Tensor:
    """``0.5 d²`` where ``|d| < delta``, else ``delta (|d| - delta/2)`` (smooth L1 times delta)."""
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _check_sizes(input, target)
    distance = abs(input - target)
    loss = where(distance < delta, distance * distance * 0.5, (distance - 0.5 * delta) * delta)
    return _weighted(loss, weight, reduction, False)


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """KL divergence of ``target`` from log-probabilities ``input``: ``t (log t - input)``.

    ``reduction='batchmean'`` divides the sum by the batch size (the mathematically correct mean);
    ``'mean'`` divides by every element and warns, as PyTorch does.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            UserWarning,
            stacklevel=2,
        )
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # NOTE: t log t is 0 at t = 0; log of a masked 1 keeps its gradient finite there
        loss = target * log(where(target > 0, target, 1.0)) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return apply_reduction(loss, reduction)


# =============================================================== targets


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Class indices as int64 one-hot rows along a new last dim (``num_classes=-1``: max + 1)."""
    if tensor.dtype.kind not in "iu":
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = tensor._xp()
    data = tensor._data
    if num_classes == -1:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        raise RuntimeError(
            "Class values must be smaller than num_classes."
            if data.min() >= 0
            else "Class values must be non-negative."
        )
    return Tensor._make((data[..., None] == xp.arange(num_classes)).astype(dtypes.int64))
