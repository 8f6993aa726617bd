"""Trigonometric and hyperbolic functions and their inverses, atan2, hypot, sinc, angle units.

The one-argument functions but sinc share ``Ufunc``: numpy's ufunc forward, and a derivative
written with the engine's ops from the saved input or output, so that it differentiates again.
"""

from __future__ import annotations

import math

import numpy as np

from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import require_float, tensor_arg, with_out
from dltool.engine.ops._utils import unbroadcast
from dltool.engine.ops.elementwise import (
    _float_input,
    _pair,
    cos,
    reciprocal,
    rsqrt,
    sin,
    where,
)
from dltool.engine.tensor import Tensor


class Ufunc(Function):
    """A numpy ufunc of one float tensor, differentiated by ``derivative``.

    Subclasses set ``ufunc`` and define ``derivative`` of the input, or of the output where
    ``from_output`` is set (``tan``, ``exp2``: their derivative is cheapest from the result).
    """

    ufunc = ""
    from_output = False

    @classmethod
    def forward(cls, ctx, x):
        # outside the domain the result is nan or inf, as in PyTorch, without numpy's warnings
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            y = getattr(x._xp(), cls.ufunc)(x._data)
        ctx.save_for_backward(y if cls.from_output else x)
        return y

    @classmethod
    def backward(cls, ctx, grad_output):
        (saved,) = ctx.saved_tensors
        return grad_output * cls.derivative(saved)

    @staticmethod
    def derivative(saved: Tensor) -> Tensor:
        raise NotImplementedError


# =============================================================== circular


class Tan(Ufunc):
    ufunc, from_output = "tan", True

    @staticmethod
    def derivative(y):
        return y * y + 1


class Asin(Ufunc):
    ufunc = "arcsin"

    @staticmethod
    def derivative(x):
        return rsqrt(1 - x * x)


class Acos(Ufunc):
    ufunc = "arccos"

    @staticmethod
    def derivative(x):
        return -rsqrt(1 - x * x)


class Atan(Ufunc):
    ufunc = "arctan"

    @staticmethod
    def derivative(x):
        return reciprocal(x * x + 1)


@with_out
def tan(input: Tensor) -> Tensor:
    """Elementwise tangent."""
    return Tan.apply(_float_input(input))


@with_out
def asin(input: Tensor) -> Tensor:
    """Elementwise arcsine; nan outside ``[-1, 1]``."""
    return Asin.apply(_float_input(input))


@with_out
def acos(input: Tensor) -> Tensor:
    """Elementwise arccosine; nan outside ``[-1, 1]``."""
    return Acos.apply(_float_input(input))


@with_out
def atan(input: Tensor) -> Tensor:
    """Elementwise arctangent."""
    return Atan.apply(_float_input(input))


arcsin, arccos, arctan = asin, acos, atan


class Atan2(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x._xp().arctan2(x._data, y._data)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        squared = x * x + y * y
        # NOTE: both gradients are 0 at the origin, as in PyTorch; the 1 only avoids 0/0 there
        scale = grad_output / where(squared == 0, 1.0, squared)
        x_grad = unbroadcast(scale * y, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(scale * -x, y.shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


@with_out
def atan2(input: Tensor, other: Tensor) -> Tensor:
    """The angle of the point ``(other, input)``: ``atan(input / other)`` in the right quadrant."""
    x, y = _pair(tensor_arg(input, "atan2", "input", 1), tensor_arg(other, "atan2", "other", 2))
    return Atan2.apply(_float_input(x), _float_input(y))


arctan2 = atan2


# =============================================================== hyperbolic


class Sinh(Ufunc):
    ufunc = "sinh"

    @staticmethod
    def derivative(x):
        return cosh(x)


class Cosh(Ufunc):
    ufunc = "cosh"

    @staticmethod
    def derivative(x):
        return sinh(x)


class Asinh(Ufunc):
    ufunc = "arcsinh"

    @staticmethod
    def derivative(x):
        return rsqrt(x * x + 1)


class Acosh(Ufunc):
    ufunc = "arccosh"

    @staticmethod
    def derivative(x):
        return rsqrt(x * x - 1)


class Atanh(Ufunc):
    ufunc = "arctanh"

    @staticmethod
    def derivative(x):
        return reciprocal(1 - x * x)


@with_out
def sinh(input: Tensor) -> Tensor:
    """Elementwise hyperbolic sine."""
    return Sinh.apply(_float_input(input))


@with_out
def cosh(input: Tensor) -> Tensor:
    """Elementwise hyperbolic cosine."""
    return Cosh.apply(_float_input(input))


@with_out
def asinh(input: Tensor) -> Tensor:
    """Elementwise inverse hyperbolic sine."""
    return Asinh.apply(_float_input(input))


@with_out
def acosh(input: Tensor) -> Tensor:
    """Elementwise inverse hyperbolic cosine; nan below 1."""
    return Acosh.apply(_float_input(input))


@with_out
def atanh(input: Tensor) -> Tensor:
    """Elementwise inverse hyperbolic tangent; +-inf at +-1, nan outside ``[-1, 1]``."""
    return Atanh.apply(_float_input(input))


arcsinh, arccosh, arctanh = asinh, acosh, atanh


# =============================================================== hypot, sinc, angle units


class Hypot(Function):
    @staticmethod
    def forward(ctx, x, y):
        out = x._xp().hypot(x._data, y._data)
        ctx.save_for_backward(x, y, out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, y, out = ctx.saved_tensors
        # NOTE: 0/0 at the origin gives nan gradients there, as in PyTorch
        scale = grad_output / out
        x_grad = unbroadcast(scale * x, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(scale * y, y.shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


@with_out
def hypot(input: Tensor, other: Tensor) -> Tensor:
    """``sqrt(input**2 + other**2)`` without overflow or underflow in the squares.

    Raises:
        NotImplementedError: for integer tensors, as in PyTorch.
    """
    x, y = _pair(tensor_arg(input, "hypot", "input", 1), tensor_arg(other, "hypot", "other", 2))
    require_float("hypot", x)
    return Hypot.apply(x, y)


class Sinc(Function):
    @staticmethod
    def forward(ctx, x):
        xp = x._xp()
        ctx.save_for_backward(x)
        with np.errstate(invalid="ignore", divide="ignore"):  # inf gives nan, as in PyTorch
            angle = x._data * x._data.dtype.type(math.pi)
            return xp.where(x._data == 0, 1, xp.sin(angle) / angle)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        at_zero = x == 0
        # the 1 stands in for 0, where the gradient is 0, so that the formula never meets 0/0
        angle = where(at_zero, 1.0, x) * math.pi
        slope = (cos(angle) * angle - sin(angle)) / (angle * angle) * math.pi
        return grad_output * where(at_zero, 0.0, slope)


@with_out
def sinc(input: Tensor) -> Tensor:
    """The normalized sinc ``sin(pi x) / (pi x)``, 1 at 0 (where its gradient is 0)."""
    return Sinc.apply(_float_input(input))


@with_out
def deg2rad(input: Tensor) -> Tensor:
    """Degrees to radians."""
    return _float_input(input) * (math.pi / 180)


@with_out
def rad2deg(input: Tensor) -> Tensor:
    """Radians to degrees."""
    return _float_input(input) * (180 / math.pi)
