"""``Optimizer``: parameter groups, per-parameter state and their ``state_dict``, as in PyTorch.

Subclasses implement ``_update(param, grad, state, group)`` on raw arrays; the base class walks
the groups, skips parameters without a gradient and handles closures, so one update rule is one
small method. Updates run in place on ``param._data`` with array ufuncs: no graph is recorded and
the same code serves numpy and cupy.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from copy import deepcopy
from itertools import chain
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.autograd.grad_mode import enable_grad
from dltool.engine.tensor import Tensor


class _RequiredParameter:
    """Marks a default that every parameter group must set itself (PyTorch's ``required``)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class of all optimizers, with PyTorch's ``param_groups`` / ``state`` layout.

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts that define
            parameter groups (each with a ``"params"`` entry and optional hyperparameters).
        defaults: the hyperparameters a group gets when it does not set them.

    Example:
        >>> w = tensor([1.0, 2.0], requires_grad=True)
        >>> opt = torch.optim.SGD([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w
        tensor([0.8000, 1.6000], requires_grad=True)
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got {type(params).__name__}"
            )
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------ groups

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with its own hyperparameters) to ``param_groups``."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"] = _group_params(param_group)
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization parameter {name}"
                )
            param_group.setdefault(name, default)
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this "
                "will cause an error",
                stacklevel=3,
            )
        for group in self.param_groups:
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
            if not ids.isdisjoint(id(p) for p in group["params"]):
                raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # ------------------------------------------------------------ stepping

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors: to ``None`` (default) or to zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.detach_()
                    param.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns the closure's loss, if given.

        Args:
            closure: re-evaluates the model and returns the loss (run with grad enabled).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                self._update(param._data, param.grad._data, state, group)
                param._version_counter[0] += 1
                if not state:  # NOTE: no empty entries, as in PyTorch (SGD without momentum keeps none)
                    del self.state[param]
        return loss

    def _update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Update the array ``param`` in place from ``grad``; ``state`` starts empty."""
        raise NotImplementedError(f"{type(self).__name__} must implement step() or _update()")

    # ------------------------------------------------------------ state dict

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, with parameters replaced by their index, exactly as PyTorch packs it.

        Returns:
            ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``; the
            state tensors are the live ones (as in PyTorch), so save or copy them before stepping.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            for param in group["params"]:
                index.setdefault(id(param), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {
            (index[id(key)] if isinstance(key, Tensor) else key): value for key, value in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict``.

        Tensors in the state move to their parameter's device and floating dtype, except
        ``step``, which stays a host tensor. Unlike PyTorch, they are always copied, so the loaded state never shares
        storage with ``state_dict`` (stepping cannot alter a checkpoint held in memory).

        Raises:
            ValueError: when the number of groups or of parameters in a group differs.
        """
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups, strict=True)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
            )
        id_map = dict(
            zip(
                chain.from_iterable(s["params"] for s in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
                strict=True,
            )
        )
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in id_map:
                param = id_map[key]
                state[param] = {name: _cast_like(param, v, name) for name, v in value.items()}
            else:
                state[key] = value
        for group, saved in zip(groups, saved_groups, strict=True):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.state = state
        self.param_groups = saved_groups


def _group_params(param_group: dict[str, Any]) -> list[Tensor]:
    """The group's tensors as a list, checked; ``(name, tensor)`` pairs also set ``param_names``."""
    params = param_group["params"]
    if isinstance(params, set):
        raise TypeError(
            "optimizer parameters need to be organized in ordered collections, but the ordering "
            "of tensors in sets will change between runs. Please use a list instead."
        )
    params = [params] if isinstance(params, Tensor) else list(params)
    names = [p[0] for p in params if isinstance(p, tuple)]
    if names:
        if len(names) != len(params):
            raise ValueError(
                "all optimizer params should be with/without names. Some param names are missing"
            )
        param_group["param_names"] = names
        params = [p[1] for p in params]
    for param in params:
        if not isinstance(param, Tensor):
            raise TypeError(
                f"optimizer can only optimize Tensors, but one of the params is {type(param).__name__}"
            )
        if not (param.is_leaf or param.retains_grad):
            raise ValueError("can't optimize a non-leaf Tensor")
    return params


def _cast_like(param: Tensor, value: Any, key: str) -> Any:
    """A copy of ``value`` on ``param``'s device and floating dtype; ``step`` stays as saved."""
    if isinstance(value, Tensor):
        if key == "step":
            return value.to("cpu", copy=True)
        floating = param.is_floating_point() and value.is_floating_point()
        return value.to(device=param.device, dtype=param.dtype if floating else None, copy=True)
    if isinstance(value, dict):
        return {k: _cast_like(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_like(param, v, key) for v in value)
    return value


# ---------------------------------------------------------------- helpers for subclasses


def check_hyperparameters(**values: float) -> None:
    """Raise PyTorch's ``ValueError`` ("Invalid learning rate: -0.1") for a negative or NaN value."""
    for name, value in values.items():
        if not 0.0 <= value:
            label = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
            raise ValueError(f"Invalid {label}: {value}")


def check_betas(betas: tuple[float, float]) -> None:
    """Raise PyTorch's ``ValueError`` ("Invalid beta parameter at index 0: 1.0") for a beta outside [0, 1)."""
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def check_supported(differentiable: bool) -> None:
    """Refuse the PyTorch options dltool's in-place updates cannot honour."""
    if differentiable:
        raise ValueError(
            "differentiable=True is not supported: dltool optimizers update in place without a graph"
        )


def new_step() -> Tensor:
    """A ``step`` counter at 0: a 0-dim host tensor of PyTorch's scalar dtype, as PyTorch keeps it."""
    dtype = dtypes.float64 if dtypes.get_default_dtype() == dtypes.float64 else dtypes.float32
    return Tensor._make(np.zeros((), dtype=dtype))


def advance_step(state: dict[str, Any]) -> float:
    """Add one to ``state["step"]`` and return the new count."""
    step = state["step"]._data
    step += 1
    return float(step)


def state_zeros(param: Any, value: float = 0.0) -> Tensor:
    """A state buffer shaped like the array ``param`` on its device, filled with ``value``."""
    buffer = backend.array_module(param).full_like(param, value)
    return Tensor._make(buffer)


def effective_grad(param: Any, grad: Any, weight_decay: float, maximize: bool) -> Any:
    """``±grad + weight_decay * param`` (L2 penalty), never writing into ``grad``.

    Returns ``grad`` itself when there is nothing to add or negate, else one new array.
    """
    if weight_decay == 0:
        return -grad if maximize else grad
    out = param * weight_decay
    if maximize:
        out -= grad
    else:
        out += grad
    return out


def decayed_grad(param: Any, grad: Any, group: dict[str, Any]) -> Any:
    """``effective_grad`` with the group's weight decay: L2, or decoupled when the group says so.

    Decoupled decay (AdamW's) shrinks ``param`` in place, ``param *= 1 - lr * weight_decay``,
    instead of adding to the gradient.
    """
    weight_decay = group["weight_decay"]
    if group["decoupled_weight_decay"]:
        if weight_decay != 0:
            param *= 1 - group["lr"] * weight_decay
        weight_decay = 0
    return effective_grad(param, grad, weight_decay, group["maximize"])


def add_scaled_(x: Any, y: Any, alpha: float) -> None:
    """``x += alpha * y`` in place (PyTorch's ``x.add_(y, alpha=alpha)``)."""
    if alpha == 1:
        x += y
    elif alpha == -1:
        x -= y
    else:
        x += y * alpha


def lerp_(x: Any, end: Any, weight: float) -> None:
    """``x += weight * (end - x)`` in place, with PyTorch's formula for each side of 0.5."""
    if abs(weight) < 0.5:
        x += (end - x) * weight
    else:
        diff = end - x
        diff *= weight - 1
        diff += end
        x[...] = diff
