"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dltool.engine.optim.optimizer import (
    Optimizer,
    add_scaled_,
    check_hyperparameters,
    check_supported,
    effective_grad,
)
from dltool.engine.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's update rule, arguments and state.

    ``foreach`` and ``fused`` are accepted for compatibility: updates are always whole-array.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay)
        check_supported(differentiable)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
            "nesterov": nesterov, "maximize": maximize, "foreach": foreach,
            "differentiable": differentiable, "fused": fused,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        grad = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        momentum = group["momentum"]
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buf = grad.copy()
                state["momentum_buffer"] = Tensor._make(buf)
            else:
                buf = buffer._data
                buf *= momentum
                add_scaled_(buf, grad, 1 - group["dampening"])
            grad = grad + buf * momentum if group["nesterov"] else buf
        add_scaled_(param, grad, -group["lr"])
