"""Adamax (Kingma & Ba): Adam with the infinity norm in place of the second moment."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dltool.engine import backend
from dltool.engine.optim.optimizer import (
    Optimizer,
    advance_step,
    check_betas,
    check_hyperparameters,
    check_supported,
    effective_grad,
    lerp_,
    new_step,
    state_zeros,
)


class Adamax(Optimizer):
    """Adamax with PyTorch's update rule, arguments and state (``step``, ``exp_avg``, ``exp_inf``).

    ``foreach`` and ``capturable`` are accepted for compatibility: updates are always whole-array.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = Adamax(model.parameters(), lr=2e-3, betas=(0.9, 0.999))
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, eps=eps)
        check_betas(betas)
        check_hyperparameters(weight_decay=weight_decay)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "foreach": foreach,
            "maximize": maximize, "differentiable": differentiable, "capturable": capturable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["exp_avg"] = state_zeros(param)
            state["exp_inf"] = state_zeros(param)
        step = advance_step(state)
        xp = backend.array_module(param)
        beta1, beta2 = group["betas"]
        grad = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        exp_avg, exp_inf = state["exp_avg"]._data, state["exp_inf"]._data
        lerp_(exp_avg, grad, 1 - beta1)
        exp_inf *= beta2
        norm = xp.abs(grad)
        norm += group["eps"]
        xp.maximum(exp_inf, norm, out=exp_inf)
        clr = group["lr"] / (1 - beta1**step)
        param += xp.divide(exp_avg * -clr, exp_inf, out=norm)
