"""ASGD (Polyak & Juditsky): SGD with a decaying step size and a running average of the iterates."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
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
from dltool.engine.tensor import Tensor


class ASGD(Optimizer):
    """Averaged SGD with PyTorch's update rule, arguments and state.

    The state per parameter is ``step``, ``eta`` (the current step size), ``mu`` (the averaging
    weight, 1 until ``t0`` steps have passed) and ``ax`` (the averaged parameter). ``eta`` and
    ``mu`` are 0-dim tensors on the parameter's device holding values rounded to the scalar dtype,
    as in PyTorch. ``foreach`` and ``capturable`` are accepted for compatibility.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = ASGD(model.parameters(), lr=1e-2, t0=1000)
        >>> model(randn(3, 4)).sum().backward()
        >>> opt.step()
        >>> averaged = [opt.state[p]["ax"] for p in model.parameters()]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, weight_decay=weight_decay)
        check_supported(differentiable)
        defaults = {
            "lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0, "weight_decay": weight_decay,
            "foreach": foreach, "maximize": maximize, "differentiable": differentiable,
            "capturable": capturable,
        }  # fmt: skip
        super().__init__(params, defaults)

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["step"] = new_step()
            state["eta"] = _scalar_like(param, group["lr"], state["step"].dtype)
            state["mu"] = _scalar_like(param, 1.0, state["step"].dtype)
            state["ax"] = state_zeros(param)
        step = advance_step(state)
        lr, lambd = group["lr"], group["lambd"]
        grad = effective_grad(param, grad, group["weight_decay"], group["maximize"])
        eta, mu, ax = state["eta"]._data, state["mu"]._data, state["ax"]._data
        eta_value = float(eta)
        param *= 1 - lambd * eta_value
        add_scaled_(param, grad, -eta_value)
        mu_value = float(mu)
        if mu_value != 1:
            ax += (param - ax) * mu_value
        else:
            ax[...] = param
        # NOTE: rounded as PyTorch rounds them, even where eta and mu are float64 after loading
        eta[...] = _rounded(lr / ((1 + lambd * lr * step) ** group["alpha"]))
        mu[...] = _rounded(1 / max(1, step - group["t0"]))


def _scalar_like(param: Any, value: float, dtype: np.dtype) -> Tensor:
    """A 0-dim tensor of ``dtype`` holding ``value``, on ``param``'s device."""
    return Tensor._make(backend.array_module(param).asarray(value, dtype=dtype))


def _rounded(value: float) -> Any:
    """``value`` as a tensor of the default dtype holds it (PyTorch's ``torch.as_tensor(value)``)."""
    return dtypes.get_default_dtype().type(value)
