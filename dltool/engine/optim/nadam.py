"""NAdam (Dozat): Adam with Nesterov momentum and a momentum schedule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

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
from dltool.engine.tensor import Tensor


class NAdam(Optimizer):
    """NAdam with PyTorch's update rule, momentum schedule, arguments and state.

    The state per parameter is ``step``, ``mu_product`` (host scalars, as in PyTorch),
    ``exp_avg`` and ``exp_avg_sq``. ``decoupled_weight_decay=True`` decays the weights as AdamW
    does. ``foreach`` and ``capturable`` are accepted for compatibility.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = NAdam(model.parameters(), lr=2e-3, momentum_decay=4e-3)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, eps=eps)
        check_betas(betas)
        check_hyperparameters(weight_decay=weight_decay, momentum_decay=momentum_decay)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "momentum_decay": momentum_decay, "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize, "foreach": foreach, "capturable": capturable,
            "differentiable": differentiable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["mu_product"] = Tensor._make(np.ones((), dtype=state["step"].dtype))
            state["exp_avg"] = state_zeros(param)
            state["exp_avg_sq"] = state_zeros(param)
        step = advance_step(state)
        lr, (beta1, beta2), momentum_decay = group["lr"], group["betas"], group["momentum_decay"]
        grad = decayed_grad(param, grad, group)
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        mu_product = _advance_product(state, mu)
        mu_product_next = mu_product * mu_next

        exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += grad * (1 - beta2) * grad
        xp = backend.array_module(param)
        denom = exp_avg_sq / (1 - beta2**step)
        xp.sqrt(denom, out=denom)
        denom += group["eps"]
        param += (grad * (-lr * (1.0 - mu) / (1.0 - mu_product))) / denom
        param += xp.divide(exp_avg * ((-lr * mu_next) / (1.0 - mu_product_next)), denom, out=denom)


def _advance_product(state: dict[str, Any], mu: float) -> float:
    """Multiply ``state["mu_product"]`` by ``mu`` and return the new product.

    NOTE: the product is computed in the dtype of ``step`` (the one it was created with), also
    after ``load_state_dict`` has cast it to the parameter's dtype, so that a resumed run stays
    bit-identical to an uninterrupted one.
    """
    mu_product = state["mu_product"]._data
    value = state["step"].dtype.type(float(mu_product)) * mu
    mu_product[...] = value
    return float(value)
