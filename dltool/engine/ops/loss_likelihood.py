"""Negative log-likelihood losses: Poisson (counts) and Gaussian (with predicted variances).

Compositions of existing ops in PyTorch's formulas, so they need no backward of their own.
"""

from __future__ import annotations

import math

from dltool.engine.autograd.grad_mode import no_grad
from dltool.engine.creation import full_like
from dltool.engine.ops.elementwise import exp, log, where
from dltool.engine.ops.loss import apply_reduction, checked_reduction, legacy_reduction
from dltool.engine.tensor import Tensor


def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average: bool | None = None,
    eps: float = 1e-8,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Poisson negative log-likelihood of ``target`` counts at rate ``exp(input)`` (or ``input``).

    ``log_input=False`` reads ``input`` as the rate itself: ``input - target * log(input + eps)``.
    ``full`` adds Stirling's approximation of ``log(target!)`` where ``target > 1``.

    Example:
        >>> poisson_nll_loss(tensor([0.0, 1.0]), tensor([1.0, 2.0]))
        tensor(0.8591)
    """
    reduction = checked_reduction(legacy_reduction(size_average, reduce, reduction))
    loss = exp(input) - target * input if log_input else input - target * log(input + eps)
    if full:
        # NOTE: the term is 0 where target <= 1; a masked 2 keeps log (and its gradient) finite there
        counts = where(target > 1, target, 2.0)
        stirling = counts * log(counts) - counts + 0.5 * log(counts * (2 * math.pi))
        loss = loss + where(target > 1, stirling, 0.0)
    return apply_reduction(loss, reduction)


def _homoscedastic_var(x: Tensor, var: Tensor) -> Tensor:
    """``var`` shaped to broadcast against ``x``, for the shapes PyTorch accepts."""
    if var.shape == x.shape:
        return var
    if x.shape[:-1] == var.shape:  # one variance per row: (N, D) input, (N,) var
        return var.unsqueeze(-1)
    if x.ndim == var.ndim and sum(v for i, v in zip(x.shape, var.shape, strict=True) if i != v) == 1:
        return var  # one dim of size 1 broadcasts: (N, D) input, (N, 1) var
    raise ValueError("var is of incorrect size")


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """Gaussian negative log-likelihood ``0.5 (log var + (input - target)² / var)``.

    ``var`` matches ``input``, lacks its last dim, has size 1 in one dim, or is one float. It is
    clamped to at least ``eps`` outside autograd, as PyTorch does: the gradient of a clamped
    variance is taken at ``eps`` rather than zeroed. ``full`` adds ``0.5 log(2π)``.

    Example:
        >>> gaussian_nll_loss(tensor([0.0, 1.0]), tensor([1.0, 1.0]), tensor([1.0, 2.0]))
        tensor(0.4233)
    """
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = full_like(input, var)
    elif (var._data < 0).any():
        raise ValueError("var has negative entry/entries")
    var = _homoscedastic_var(input, var)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = var.clone()
    with no_grad():
        var.clamp_(min=eps)
    diff = input - target
    loss = 0.5 * (log(var) + diff * diff / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return apply_reduction(loss, reduction)
