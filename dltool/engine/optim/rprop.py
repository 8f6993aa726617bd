"""Rprop (Riedmiller & Braun): per-weight step sizes that grow while the gradient keeps its sign."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dltool.engine import backend
from dltool.engine.optim.optimizer import (
    Optimizer,
    advance_step,
    check_hyperparameters,
    check_supported,
    new_step,
    state_zeros,
)


class Rprop(Optimizer):
    """Resilient backpropagation with PyTorch's update rule, arguments and state.

    The state per parameter is ``step``, ``prev`` (the last gradient used) and ``step_size``
    (starting at ``lr``). Only the gradient's sign moves the weights. ``foreach`` and
    ``capturable`` are accepted for compatibility.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = Rprop(model.parameters(), lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50))
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        check_supported(differentiable)
        defaults = {
            "lr": lr, "etas": etas, "step_sizes": step_sizes, "foreach": foreach,
            "maximize": maximize, "differentiable": differentiable, "capturable": capturable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["prev"] = state_zeros(param)
            state["step_size"] = state_zeros(param, group["lr"])
        advance_step(state)
        xp = backend.array_module(param)
        (etaminus, etaplus), (step_size_min, step_size_max) = group["etas"], group["step_sizes"]
        prev, step_size = state["prev"]._data, state["step_size"]._data
        grad = -grad if group["maximize"] else grad.copy()
        factor = xp.sign(grad * prev)
        flipped = factor < 0
        factor[factor > 0] = etaplus
        factor[flipped] = etaminus
        factor[factor == 0] = 1
        step_size *= factor
        xp.clip(step_size, step_size_min, step_size_max, out=step_size)
        grad[flipped] = 0  # after a sign change: no move now, and no step-size change next step
        param -= xp.sign(grad) * step_size
        prev[...] = grad
