"""RAdam (Liu et al.): Adam whose adaptive step is rectified while the variance estimate is young."""

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
    decayed_grad,
    lerp_,
    new_step,
    state_zeros,
)


class RAdam(Optimizer):
    """RAdam with PyTorch's update rule, arguments and state (``step``, ``exp_avg``, ``exp_avg_sq``).

    While the approximated simple moving average is 5 steps long or less, the update is plain
    momentum SGD, as in PyTorch. ``decoupled_weight_decay=True`` decays the weights as AdamW
    does. ``foreach`` and ``capturable`` are accepted for compatibility.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = RAdam(model.parameters(), lr=1e-3, weight_decay=1e-2, decoupled_weight_decay=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, eps=eps)
        check_betas(betas)
        check_hyperparameters(weight_decay=weight_decay)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize,
            "foreach": foreach, "capturable": capturable,
            "decoupled_weight_decay": decoupled_weight_decay, "differentiable": differentiable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["exp_avg"] = state_zeros(param)
            state["exp_avg_sq"] = state_zeros(param)
        step = advance_step(state)
        lr, (beta1, beta2) = group["lr"], group["betas"]
        grad = decayed_grad(param, grad, group)
        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += grad * (1 - beta2) * grad

        bias_correction2 = 1 - beta2**step
        update = exp_avg / (1 - beta1**step)
        update *= lr
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        if rho_t > 5.0:
            xp = backend.array_module(param)
            adaptive = xp.sqrt(exp_avg_sq)
            adaptive += group["eps"]
            update *= xp.divide(bias_correction2**0.5, adaptive, out=adaptive)
            update *= ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        param -= update
