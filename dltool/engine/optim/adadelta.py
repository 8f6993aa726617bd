"""Adadelta (Zeiler): steps scaled by running averages of squared gradients and squared updates."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dltool.engine import backend
from dltool.engine.optim.optimizer import (
    Optimizer,
    add_scaled_,
    advance_step,
    check_hyperparameters,
    check_supported,
    effective_grad,
    new_step,
    state_zeros,
)


class Adadelta(Optimizer):
    """Adadelta with PyTorch's update rule, arguments and state (``step``, ``square_avg``, ``acc_delta``).

    ``foreach`` and ``capturable`` are accepted for compatibility: updates are always whole-array.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = Adadelta(model.parameters(), lr=1.0, rho=0.9)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_hyperparameters(eps=eps, weight_decay=weight_decay)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
            "capturable": capturable, "foreach": foreach, "differentiable": differentiable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["square_avg"] = state_zeros(param)
            state["acc_delta"] = state_zeros(param)
        advance_step(state)
        xp = backend.array_module(param)
        rho, eps = group["rho"], group["eps"]
        grad = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        square_avg, acc_delta = state["square_avg"]._data, state["acc_delta"]._data
        square_avg *= rho
        square_avg += grad * (1 - rho) * grad
        std = square_avg + eps
        xp.sqrt(std, out=std)
        delta = acc_delta + eps
        xp.sqrt(delta, out=delta)
        delta /= std
        delta *= grad
        acc_delta *= rho
        acc_delta += delta * (1 - rho) * delta
        add_scaled_(param, delta, -group["lr"])
