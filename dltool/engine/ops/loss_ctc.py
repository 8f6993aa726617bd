"""Connectionist temporal classification: ``ctc_loss`` by the alpha-beta recursion in log space.

Alignments run over the extended labels ``l' = (blank, l1, blank, l2, ..., lS, blank)``. Each
time step is one whole-array update over the batch and the ``2 max(S) + 1`` extended positions;
only time is a Python loop. Positions past a sample's own ``2 S + 1`` hold ``log 0``, so samples
of different lengths share the arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.ops.loss import checked_reduction
from dltool.engine.tensor import Tensor

_CHECKING = " (while checking arguments for ctc_loss)"


class _Lattice(NamedTuple):
    """The alignment lattice of a batch: what the forward and the backward recursions share."""

    labels: Any  # (N, L) extended labels, blank past each sample's own 2 S + 1
    skip: Any  # (N, L) whether position s may be entered from s - 2 (a label unlike the one before)
    input_lengths: Any  # (N,)
    ends: Any  # (N,) 2 S: the last position, the trailing blank
    lp_ext: Any  # (T, N, L) log_probs at the extended labels, log 0 past ``ends``


def _log_add(xp: Any, *terms: Any) -> Any:
    """``log(sum(exp(terms)))`` elementwise; exactly ``-inf`` where every term is."""
    total = terms[0]
    for term in terms[1:]:
        total = xp.logaddexp(total, term)
    return total


def _lattice(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any, blank: int) -> _Lattice:
    """The lattice of log-probabilities ``(T, N, C)`` and padded targets ``(N, S)``."""
    xp = backend.array_module(log_probs)
    batch, longest = targets.shape
    labels = xp.full((batch, 2 * longest + 1), blank, dtype=targets.dtype)
    labels[:, 1::2] = targets
    positions = xp.arange(labels.shape[1])
    skip = (positions % 2 == 1) & (positions >= 2)
    skip = skip & (labels != xp.roll(labels, 2, axis=1))
    ends = 2 * target_lengths
    lp_ext = log_probs[:, xp.arange(batch)[:, None], labels]
    lp_ext[:, positions > ends[:, None]] = -np.inf
    return _Lattice(labels, skip, input_lengths, ends, lp_ext)


def _alpha(lattice: _Lattice) -> Any:
    """Forward variables ``(T, N, L)``: log-probability of the prefixes that reach ``(t, s)``."""
    lp_ext = lattice.lp_ext
    xp = backend.array_module(lp_ext)
    steps, batch, width = lp_ext.shape
    alpha = xp.full(lp_ext.shape, -np.inf, dtype=lp_ext.dtype)
    alpha[0, :, :2] = lp_ext[0, :, :2]
    before = xp.full((batch, width + 2), -np.inf, dtype=lp_ext.dtype)  # two leading log 0s
    for t in range(1, steps):
        before[:, 2:] = alpha[t - 1]
        jump = xp.where(lattice.skip, before[:, :-2], -np.inf)
        alpha[t] = _log_add(xp, before[:, 2:], before[:, 1:-1], jump) + lp_ext[t]
    return alpha


def _beta(lattice: _Lattice) -> Any:
    """Backward variables ``(T, N, L)``: log-probability of the suffixes from ``(t, s)`` on,
    including ``(t, s)`` itself; each sample's start at its own last step ``T_n - 1``."""
    lp_ext, lengths = lattice.lp_ext, lattice.input_lengths
    xp = backend.array_module(lp_ext)
    steps, batch, width = lp_ext.shape
    positions = xp.arange(width)
    final = (positions >= lattice.ends[:, None] - 1) & (positions <= lattice.ends[:, None])
    skip_ahead = xp.zeros_like(lattice.skip)
    skip_ahead[:, :-2] = lattice.skip[:, 2:]
    beta = xp.full(lp_ext.shape, -np.inf, dtype=lp_ext.dtype)
    after = xp.full((batch, width + 2), -np.inf, dtype=lp_ext.dtype)  # two trailing log 0s
    for t in range(steps - 1, -1, -1):
        if t + 1 < steps:
            after[:, :width] = beta[t + 1]
        jump = xp.where(skip_ahead, after[:, 2:], -np.inf)
        step = _log_add(xp, after[:, :width], after[:, 1:-1], jump) + lp_ext[t]
        start = xp.where(final, lp_ext[t], -np.inf)
        beta[t] = xp.where(
            (t == lengths - 1)[:, None], start, xp.where((t < lengths - 1)[:, None], step, -np.inf)
        )
    return beta


def _nll(alpha: Any, lattice: _Lattice) -> Any:
    """``-log p(target | input)`` per sample, from the forward variables at its last step."""
    xp = backend.array_module(alpha)
    lengths, ends = lattice.input_lengths, lattice.ends
    rows = xp.arange(alpha.shape[1])
    last = alpha[xp.maximum(lengths - 1, 0), rows]
    blank_end = last[rows, ends]
    label_end = xp.where(ends > 0, last[rows, xp.maximum(ends - 1, 0)], -np.inf)
    nll = -_log_add(xp, blank_end, label_end)
    # no step at all: only the empty target has an alignment
    return xp.where(lengths == 0, xp.where(ends == 0, 0.0, np.inf), nll).astype(alpha.dtype)


class CtcLoss(Function):
    """Per-sample CTC losses ``(N,)`` of log-probabilities ``(T, N, C)``."""

    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
        lattice = _lattice(log_probs._data, targets, input_lengths, target_lengths, blank)
        alpha = _alpha(lattice)
        nll = _nll(alpha, lattice)
        ctx.save_for_backward(log_probs)
        ctx.state = lattice, alpha, nll, zero_infinity
        return log_probs._xp().where(zero_infinity & (nll == np.inf), 0.0, nll).astype(nll.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (log_probs,) = ctx.saved_tensors
        return CtcLossBackward.apply(grad_output, log_probs, ctx.state), None, None, None, None, None


class CtcLossBackward(Function):
    """The gradient of ``CtcLoss`` with respect to the log-probabilities, as PyTorch defines it.

    That is ``exp(log_probs) - occupancy``, the occupancy being the posterior probability of
    emitting class c at step t: the gradient through the ``log_softmax`` that produces
    normalized log-probabilities, folded in (its ``exp`` term sums to zero after that
    ``log_softmax``). Steps past a sample's input length get zero, and so does a sample whose
    infinite loss ``zero_infinity`` zeroed.
    """

    @staticmethod
    def forward(ctx, grad, log_probs, state):
        lattice, alpha, nll, zero_infinity = state
        xp = log_probs._xp()
        steps, batch, classes = log_probs.shape
        running = (xp.arange(steps)[:, None] < lattice.input_lengths)[:, :, None]
        inside = running & (xp.arange(alpha.shape[2]) <= lattice.ends[:, None])
        with np.errstate(invalid="ignore"):  # an impossible alignment: inf - inf, a nan as in PyTorch
            log_occupancy = alpha + _beta(lattice) - lattice.lp_ext + nll[:, None]
            occupancy = xp.exp(xp.where(inside, log_occupancy, -np.inf))
        cells = (xp.arange(steps * batch).reshape(steps, batch, 1) * classes + lattice.labels).reshape(-1)
        summed = xp.bincount(cells, weights=occupancy.reshape(-1), minlength=steps * batch * classes)
        y = xp.exp(log_probs._data) - summed.reshape(log_probs.shape).astype(log_probs.dtype)
        kept = running & ~(zero_infinity & (nll == np.inf))[:, None]
        return xp.where(kept, y * grad._data[:, None], 0.0).astype(log_probs.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        raise RuntimeError("derivative for ctc_loss_backward is not implemented")


# =============================================================== arguments


def _lengths(value: Any, name: str) -> np.ndarray:
    """Lengths (a tensor, a sequence or an int) as a 1-D int64 array on the host."""
    if isinstance(value, Tensor):
        if value.dtype.kind not in "iu":
            raise RuntimeError(f"{name} must be integral")
        value = value.tolist()
    return np.asarray(value, dtype=np.int64).reshape(-1)


def _rows_of_concatenated(data: Any, target_lengths: np.ndarray) -> Any:
    """Concatenated targets cut into rows ``(N, max S)``; entries past a row's length are filler."""
    total = data.shape[0]
    if total != int(target_lengths.sum()):
        raise RuntimeError(
            f"Expected tensor to have size {int(target_lengths.sum())} at dimension 0, but got size {total} "
            f"for argument #2 'targets'{_CHECKING}"
        )
    starts = np.cumsum(target_lengths) - target_lengths
    index = np.minimum(starts[:, None] + np.arange(target_lengths.max(initial=0)), max(total - 1, 0))
    xp = backend.array_module(data)
    return data[xp.asarray(index)] if total else xp.zeros(index.shape, dtype=np.int64)


def _padded_targets(targets: Tensor, target_lengths: np.ndarray, batch: int, classes: int, blank: int) -> Any:
    """Targets as ``(N, max S)`` class indices, blank past each length, from padded ``(N, S)`` or
    concatenated 1-D targets."""
    xp = targets._xp()
    data = targets._data.astype(np.int64, copy=False)
    longest = int(target_lengths.max(initial=0))
    if targets.ndim not in (1, 2):
        raise RuntimeError(
            f"Expected 1 to 2 dimensions, but got {targets.ndim}-dimensional tensor for argument #2 "
            f"'targets'{_CHECKING}"
        )
    if targets.ndim == 1:
        data = _rows_of_concatenated(data, target_lengths)
    elif data.shape[0] != batch or data.shape[1] < longest:
        at_least, dim = ("", 0) if data.shape[0] != batch else ("at least ", 1)
        expected = batch if dim == 0 else longest
        raise RuntimeError(
            f"Expected tensor to have size {at_least}{expected} at dimension {dim}, but got size "
            f"{data.shape[dim]} for argument #2 'targets'{_CHECKING}"
        )
    data = data[:, :longest]
    used = xp.arange(longest) < xp.asarray(target_lengths)[:, None]
    bad = used & ((data < 0) | (data >= classes))
    if bad.any():
        raise IndexError(f"ctc_loss: target {int(data[bad][0])} is out of bounds for {classes} classes")
    return xp.where(used, data, blank)


def _check_lengths(input_lengths: np.ndarray, target_lengths: np.ndarray, batch: int, steps: int) -> None:
    """PyTorch's checks of the lengths against the batch and the number of steps."""
    for name, lengths in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if lengths.size != batch:
            raise RuntimeError(f"{name} must be of size batch_size")
        if lengths.size and lengths.min() < 0:
            raise RuntimeError(
                f"Expected {name} to have value at least 0, but got value {lengths.min()}{_CHECKING}"
            )
    if input_lengths.size and input_lengths.max() > steps:
        raise RuntimeError(
            f"Expected input_lengths to have value at most {steps}, but got value {input_lengths.max()}"
            f"{_CHECKING}"
        )


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Tensor:
    """Connectionist temporal classification loss of log-probabilities ``(T, N, C)`` (or
    ``(T, C)``) against targets padded ``(N, S)`` or concatenated 1-D.

    ``'mean'`` divides each sample's loss by its target length (at least 1), then averages;
    ``zero_infinity`` zeroes the loss and gradient of samples no alignment fits. As in PyTorch,
    the gradient assumes ``log_probs`` come from a ``log_softmax`` (see ``CtcLossBackward``).

    Example:
        >>> log_probs = tensor([[[-0.5, -1.0]], [[-1.0, -0.5]]]).log_softmax(2)
        >>> ctc_loss(log_probs, tensor([[1]]), [2], [1], reduction="sum")
        tensor(0.2679)
    """
    checked_reduction(reduction)
    if log_probs.ndim not in (2, 3):
        raise RuntimeError(
            f"Expected 3-dimensional tensor, but got {log_probs.ndim}-dimensional tensor for argument #1 "
            f"'log_probs'{_CHECKING}"
        )
    batched = log_probs.ndim == 3
    x = log_probs if batched else log_probs.unsqueeze(1)
    steps, batch, classes = x.shape
    inputs, lengths = _lengths(input_lengths, "input_lengths"), _lengths(target_lengths, "target_lengths")
    if not 0 <= blank < classes:
        raise RuntimeError("blank must be in label range")
    _check_lengths(inputs, lengths, batch, steps)
    padded = _padded_targets(targets if batched else targets.reshape(1, -1), lengths, batch, classes, blank)
    xp = x._xp()
    loss = CtcLoss.apply(x, padded, xp.asarray(inputs), xp.asarray(lengths), blank, zero_infinity)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return (loss / Tensor._make(xp.asarray(np.maximum(lengths, 1), dtype=loss.dtype))).mean()
    return loss if batched else loss.squeeze(0)
