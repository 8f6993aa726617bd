"""RMSprop (Hinton), with momentum and the centered variant."""

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
    lerp_,
    new_step,
    state_zeros,
)


class RMSprop(Optimizer):
    """RMSprop with PyTorch's update rule, arguments and state.

    The state per parameter is ``step``, ``square_avg`` and, when used, ``momentum_buffer`` and
    ``grad_avg`` (``centered``). ``foreach`` and ``capturable`` are accepted for compatibility.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = RMSprop(model.parameters(), lr=1e-2, alpha=0.99, centered=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
            "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach,
            "maximize": maximize, "differentiable": differentiable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["square_avg"] = state_zeros(param)
            if group["momentum"] > 0:
                state["momentum_buffer"] = state_zeros(param)
            if group["centered"]:
                state["grad_avg"] = state_zeros(param)
        advance_step(state)
        xp = backend.array_module(param)
        grad = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        alpha, square_avg = group["alpha"], state["square_avg"]._data
        square_avg *= alpha
        square_avg += grad * (1 - alpha) * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            lerp_(grad_avg, grad, 1 - alpha)
            avg = square_avg - grad_avg * grad_avg
            xp.sqrt(avg, out=avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]._data
            buf *= group["momentum"]
            buf += grad / avg
            add_scaled_(param, buf, -group["lr"])
        else:
            param += xp.divide(grad * -group["lr"], avg, out=avg)
