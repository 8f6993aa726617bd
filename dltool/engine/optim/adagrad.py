"""Adagrad (Duchi et al.): per-coordinate steps scaled by the sum of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dltool.engine import backend
from dltool.engine.optim.optimizer import (
    Optimizer,
    advance_step,
    check_hyperparameters,
    check_supported,
    effective_grad,
    new_step,
    state_zeros,
)


class Adagrad(Optimizer):
    """Adagrad with PyTorch's update rule, arguments and state (``step``, ``sum``).

    As in PyTorch, the state exists from construction (``sum`` starts at
    ``initial_accumulator_value``); groups added later get theirs in ``add_param_group``.
    ``foreach`` and ``fused`` are accepted for compatibility.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = Adagrad(model.parameters(), lr=1e-2, lr_decay=1e-4)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_hyperparameters(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps,
        )  # fmt: skip
        check_supported(differentiable)
        defaults = {
            "lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value, "foreach": foreach,
            "maximize": maximize, "differentiable": differentiable, "fused": fused,
        }  # fmt: skip
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        for param in param_group["params"]:
            state = self.state[param]
            state["step"] = new_step()
            state["sum"] = state_zeros(param._data, param_group["initial_accumulator_value"])

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        step = advance_step(state)
        grad = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        state_sum = state["sum"]._data
        state_sum += grad * grad
        xp = backend.array_module(param)
        std = xp.sqrt(state_sum)
        std += group["eps"]
        param += xp.divide(grad * -clr, std, out=std)
