"""Piecewise ops: remainders (fmod, frac), signs (copysign, signbit, heaviside), nan_to_num.

``fmod`` and ``copysign`` get their own ``Function``: numpy computes them exactly, where a
composition of division and rounding would not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import require_float, tensor_arg, with_out
from dltool.engine.ops._utils import unbroadcast
from dltool.engine.ops.elementwise import (
    _check_broadcast,
    _float_input,
    _pair,
    clone,
    div,
    isfinite,
    trunc,
    where,
)
from dltool.engine.tensor import Tensor

# =============================================================== remainders


class Fmod(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        with np.errstate(invalid="ignore", divide="ignore"):
            return x._xp().fmod(x._data, y._data)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        x_grad = unbroadcast(grad_output, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = None
        if ctx.needs_input_grad[1]:
            y_grad = unbroadcast(grad_output * -trunc(div(x, y)), y.shape)
        return x_grad, y_grad


@with_out
def fmod(input: Tensor, other: Any) -> Tensor:
    """C's remainder of ``input / other``: the sign follows the dividend (``remainder``'s, the divisor).

    Raises:
        RuntimeError: an integer division by zero.
    """
    x, y = _pair(tensor_arg(input, "fmod", "input", 1), other)
    if x.dtype.kind in "biu" and not y._data.all():
        raise RuntimeError("ZeroDivisionError")
    return Fmod.apply(x, y)


@with_out
def frac(input: Tensor) -> Tensor:
    """The fractional part ``input - trunc(input)``, with the sign of ``input``."""
    require_float("frac", input)
    with np.errstate(invalid="ignore"):  # inf - inf: nan, as in PyTorch, without numpy's warning
        return input - trunc(input)


# =============================================================== signs


class Copysign(Function):
    @staticmethod
    def forward(ctx, x, y):
        out = x._xp().copysign(x._data, y._data)
        ctx.save_for_backward(x, y)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        xp = x._xp()
        # d/dx copysign(x, y) is +-1 (the sign flip), taken as 0 at x == 0, as PyTorch does
        flip = xp.copysign(xp.ones((), x.dtype), x._data) * xp.copysign(xp.ones((), y.dtype), y._data)
        flip = Tensor._make(xp.where(x._data == 0, 0, flip).astype(x.dtype))
        x_grad = unbroadcast(grad_output * flip, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = Tensor._make(xp.zeros(y.shape, y.dtype)) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


@with_out
def copysign(input: Tensor, other: Any) -> Tensor:
    """``|input|`` with the sign of ``other`` (including the sign of zero)."""
    x, y = _pair(tensor_arg(input, "copysign", "input", 1), other)
    return Copysign.apply(_float_input(x), _float_input(y))


@with_out
def signbit(input: Tensor) -> Tensor:
    """True where the sign bit is set (``-0.0`` and ``-nan`` included); a bool tensor without gradient."""
    xp = input._xp()
    data = input._data
    return Tensor._make(xp.signbit(data) if data.dtype.kind == "f" else data < 0)


@with_out
def heaviside(input: Tensor, values: Tensor) -> Tensor:
    """0 where ``input < 0``, 1 where ``input > 0``, ``values`` where ``input == 0``; no gradient.

    Raises:
        RuntimeError: ``input`` and ``values`` have different dtypes.
    """
    tensor_arg(input, "heaviside", "input", 1)
    tensor_arg(values, "heaviside", "values", 2)
    if input.dtype != values.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    _check_broadcast(input.shape, values.shape)
    xp = input._xp()
    # NOTE: nan counts as neither zero nor positive, so it maps to 0 (numpy's heaviside gives nan)
    step = xp.where(input._data == 0, values._data, input._data > 0)
    return Tensor._make(step.astype(input.dtype))


# =============================================================== non-finite values


@with_out
def nan_to_num(
    input: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None
) -> Tensor:
    """``nan``, ``posinf`` and ``neginf`` in place of NaN and infinities (by default 0 and the dtype's
    largest and lowest finite values); the gradient is zero where a value was replaced."""
    if input.dtype.kind != "f":
        return clone(input)
    xp = input._xp()
    replaced = Tensor._make(xp.nan_to_num(input._data, nan=nan, posinf=posinf, neginf=neginf))
    return where(isfinite(input), input, replaced)
