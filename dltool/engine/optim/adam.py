"""Adam (and the decoupled weight decay AdamW builds on), with AMSGrad."""

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


class Adam(Optimizer):
    """Adam (Kingma & Ba), with PyTorch's update rule, bias correction, arguments and state.

    The state per parameter is ``step``, ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad``,
    ``max_exp_avg_sq``. ``decoupled_weight_decay=True`` is AdamW. ``foreach``, ``fused`` and
    ``capturable`` are accepted for compatibility: updates are always whole-array.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), amsgrad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, eps=eps)
        check_betas(betas)
        check_hyperparameters(weight_decay=weight_decay)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
            "maximize": maximize, "foreach": foreach, "capturable": capturable,
            "differentiable": differentiable, "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["exp_avg"] = state_zeros(param)
            state["exp_avg_sq"] = state_zeros(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = state_zeros(param)
        lr, (beta1, beta2) = group["lr"], group["betas"]
        step = advance_step(state)
        grad = decayed_grad(param, grad, group)
        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += grad * (1 - beta2) * grad

        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        xp = backend.array_module(param)
        if group["amsgrad"]:
            second_moment = state["max_exp_avg_sq"]._data
            xp.maximum(second_moment, exp_avg_sq, out=second_moment)
        else:
            second_moment = exp_avg_sq
        denom = xp.sqrt(second_moment)
        denom /= bias_correction2_sqrt
        denom += group["eps"]
        xp.divide(exp_avg * -step_size, denom, out=denom)
        param += denom
