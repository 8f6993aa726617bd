"""Special functions: the error function family (erf, erfc, erfinv), exp2, logaddexp, xlogy.

numpy has no erf, so the erf family is computed here. float64 gets Chebyshev fits made at import
from Python's ``math.erf``/``math.erfc`` (a few ulps, as PyTorch's libm); float32 keeps the faster
7-term fit of Numerical Recipes (about 1.2e-7 relative), which ``gelu`` runs on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import require_float, tensor_arg, with_out
from dltool.engine.ops._utils import unbroadcast
from dltool.engine.ops.elementwise import _float_input, _pair, cast, exp, sigmoid, where
from dltool.engine.ops.trig import Ufunc
from dltool.engine.tensor import Tensor

# =============================================================== erf, erfc, erfinv

_SMALL = 0.5  # below it erf is fitted directly; above it 1 - erfc loses nothing
_SPREAD = 4.0  # erfc's fit maps x in [0, inf) to t = (x - 4) / (x + 4) in [-1, 1)
_LARGE = 28.0  # erfc underflows to 0 before it


def _chebyshev(coefficients: list[float], t: Any) -> Any:
    """The Chebyshev series ``sum(c[k] * T_k(t))`` at the array ``t``, by Clenshaw's recurrence."""
    b1 = b2 = 0.0
    twice = t + t
    for c in coefficients[:0:-1]:
        b1, b2 = twice * b1 - b2 + c, b1
    return t * b1 - b2 + coefficients[0]


def _polynomial(coefficients: list[float], u: Any) -> Any:
    """``sum(c[k] * u**k)`` at the array ``u``, by Horner's rule in place."""
    y = u * coefficients[-1]
    for c in coefficients[-2:0:-1]:
        y += c
        y *= u
    y += coefficients[0]
    return y


def _exp_neg_square(x: Any) -> Any:
    """``exp(-x*x)`` for float64 ``x``, without the rounding of ``x*x`` (scaled by ``x*x``) in it.

    ``x*x = z*z + (x - z)(x + z)`` with ``z`` the float32 nearest ``x``, whose square is exact.
    """
    xp = backend.array_module(x)
    z = x.astype(np.float32).astype(x.dtype)
    return xp.exp(-z * z) * xp.exp((z - x) * (z + x))


def _erfcx(x: float) -> float:
    """``exp(x*x) * erfc(x)`` for ``x >= 0``, to double precision (the fit's reference values)."""
    if x < 25:
        return math.erfc(x) / float(_exp_neg_square(np.float64(x)))
    # Laplace's continued fraction, which converges in a few terms this far out
    denominator = x
    for n in range(60, 0, -1):
        denominator = x + n / 2 / denominator
    return 1 / (math.sqrt(math.pi) * denominator)


def _erf_over_x(u: float) -> float:
    """``erf(x) / x`` at ``x = sqrt(u)``: an even function of ``x``, so a smooth one of ``u``."""
    x = math.sqrt(u)
    return math.erf(x) / x if x else 2 / math.sqrt(math.pi)


def _scaled_erfcx(t: float) -> float:
    """``(1 + 2x) * erfcx(x)`` at ``x = 4 (1 + t) / (1 - t)``: smooth in ``t`` and close to 1."""
    x = _SPREAD * (1 + t) / (1 - t)
    return (1 + 2 * x) * _erfcx(x)


def _interpolate(fn: Any, degree: int, domain: list[float]) -> np.polynomial.Chebyshev:
    """The Chebyshev interpolant of ``fn`` on ``domain`` at ``degree + 1`` nodes."""
    return np.polynomial.Chebyshev.interpolate(np.vectorize(fn), degree, domain)


# erf(x) / x on |x| < 0.5 as a power series in x*x (well conditioned there: the terms fall fast)
_ERF_SERIES = [
    float(c)
    for c in _interpolate(_erf_over_x, 7, [0.0, _SMALL**2]).convert(kind=np.polynomial.Polynomial).coef
]
# float32 needs the terms that still matter at |x| = 0.5 (they fall fast, so a prefix)
_ERF_SERIES32 = [c for k, c in enumerate(_ERF_SERIES) if abs(c) * _SMALL ** (2 * k) > 1e-9]
# (1 + 2x) erfcx(x) on [0, inf) as a Chebyshev series in t (kept in that basis: degree 26)
_ERFC_SERIES = [float(c) for c in _interpolate(_scaled_erfcx, 26, [-1.0, 1.0]).coef]


def _erfc_float32(z: Any) -> Any:
    """erfc of ``z >= 0`` by the Chebyshev fit of Numerical Recipes (``erfcc``), to 1.2e-7 relative."""
    xp = backend.array_module(z)
    t = z * 0.5
    t += 1.0
    xp.reciprocal(t, out=t)
    # Horner's rule in place: the array is large and every temporary costs a pass
    y = t * 0.17087277
    for c in (-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196):
        y += c
        y *= t
    y += 1.00002368
    y *= t
    y -= 1.26551223
    y -= z * z
    xp.exp(y, out=y)
    y *= t
    return y


def _erfc_float64(z: Any) -> Any:
    """erfc of ``z >= 0`` to a few ulps, from the fit of ``(1 + 2z) erfcx(z)``."""
    z = backend.array_module(z).minimum(z, _LARGE)
    return _exp_neg_square(z) * _chebyshev(_ERFC_SERIES, (z - _SPREAD) / (z + _SPREAD)) / (1 + 2 * z)


def _erf_near_zero(x: Any) -> Any:
    """erf of ``|x| < 0.5`` from its series fit (meaningless elsewhere, for a where() to drop)."""
    xp = backend.array_module(x)
    square = xp.minimum(xp.abs(x), _SMALL)
    square *= square
    y = _polynomial(_ERF_SERIES if x.dtype == np.float64 else _ERF_SERIES32, square)
    y *= x
    return y


def _erfc_of_magnitude(z: Any) -> Any:
    """erfc of ``z >= 0``; in float64 near 0 from erf's fit, where erfc's is least exact."""
    if z.dtype != np.float64:
        return _erfc_float32(z)
    return backend.array_module(z).where(z < _SMALL, 1.0 - _erf_near_zero(z), _erfc_float64(z))


def _erfc_array(x: Any) -> Any:
    xp = backend.array_module(x)
    y = _erfc_of_magnitude(xp.abs(x))
    # erfc(-z) = 2 - erfc(z), added branch-free: a where() on a random sign mask is ten times slower
    flip = y * -2.0
    flip += 2.0
    flip *= x < 0
    y += flip
    return y


def _erf_array(x: Any) -> Any:
    xp = backend.array_module(x)
    magnitude = xp.abs(x)
    large = xp.copysign(1.0 - _erfc_of_magnitude(magnitude), x)
    return xp.where(magnitude < _SMALL, _erf_near_zero(x), large)


def _erfinv_array(y: Any) -> Any:
    """erfinv in float64: Winitzki's closed form (2e-3 relative), then two Halley steps."""
    xp = backend.array_module(y)
    a = xp.abs(y.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        log_term = xp.log1p(-a * a)
        b = 2 / (math.pi * 0.147) + log_term / 2
        x = xp.sqrt(xp.sqrt(b * b - log_term / 0.147) - b)
        for _ in range(2):
            # near |y| = 1 the residual is taken on erfc's side, where 1 - |y| is exact
            erfc_x = _erfc_of_magnitude(x)
            erf_x = xp.where(x < _SMALL, _erf_near_zero(x), 1.0 - erfc_x)
            residual = xp.where(a < _SMALL, erf_x - a, (1.0 - a) - erfc_x)
            ratio = residual / (2 / math.sqrt(math.pi) * _exp_neg_square(x))
            x = x - ratio / (1.0 + x * ratio)
        x = xp.where(a == 1.0, np.inf, x)
    return xp.copysign(x, y).astype(y.dtype)


def _in_float32(array_fn: Any, x: Any) -> Any:
    """``array_fn`` at least in float32: float16 is computed in float32 and rounded, as PyTorch does."""
    if x.dtype == np.float16:
        return array_fn(x.astype(np.float32)).astype(np.float16)
    return array_fn(x)


class Erf(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _in_float32(_erf_array, x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * exp(-(x * x)) * (2.0 / math.sqrt(math.pi))


class Erfc(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _in_float32(_erfc_array, x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * exp(-(x * x)) * (-2.0 / math.sqrt(math.pi))


class Erfinv(Function):
    @staticmethod
    def forward(ctx, x):
        y = _erfinv_array(x._data)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * exp(y * y) * (math.sqrt(math.pi) / 2)


@with_out
def erf(input: Tensor) -> Tensor:
    """The error function ``2/sqrt(pi) * integral of exp(-t*t) from 0 to input``."""
    return Erf.apply(_float_input(input))


@with_out
def erfc(input: Tensor) -> Tensor:
    """The complementary error function ``1 - erf(input)``, accurate where it is tiny."""
    return Erfc.apply(_float_input(input))


@with_out
def erfinv(input: Tensor) -> Tensor:
    """The inverse of ``erf`` on ``[-1, 1]``: +-inf at +-1, nan outside."""
    return Erfinv.apply(_float_input(input))


# =============================================================== exponentials and logarithms


class Exp2(Ufunc):
    ufunc, from_output = "exp2", True

    @staticmethod
    def derivative(y):
        return y * math.log(2.0)


@with_out
def exp2(input: Tensor) -> Tensor:
    """``2 ** input``."""
    return Exp2.apply(_float_input(input))


class LogAddExp(Function):
    """``log(b**x + b**y) / log(b)`` for the base ``b`` with ``log(b) = scale``, without overflow."""

    @staticmethod
    def forward(ctx, x, y, scale):
        xp = x._xp()
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        with np.errstate(invalid="ignore"):  # inf - inf, where the x == y branch answers instead
            gap = xp.abs(x._data - y._data) * -scale
            spread = xp.maximum(x._data, y._data) + xp.log1p(xp.exp(gap)) / scale
        return xp.where(x._data == y._data, x._data + math.log(2.0) / scale, spread)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        share = sigmoid((x - y) * ctx.scale)
        x_grad = unbroadcast(grad_output * share, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(grad_output * (1 - share), y.shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad, None


def _log_add_exp(name: str, input: Tensor, other: Tensor, scale: float) -> Tensor:
    x, y = _pair(tensor_arg(input, name, "input", 1), tensor_arg(other, name, "other", 2))
    require_float(name, x)
    return LogAddExp.apply(x, y, scale)


@with_out
def logaddexp(input: Tensor, other: Tensor) -> Tensor:
    """``log(exp(input) + exp(other))``, computed without overflow."""
    return _log_add_exp("logaddexp", input, other, 1.0)


@with_out
def logaddexp2(input: Tensor, other: Tensor) -> Tensor:
    """``log2(2**input + 2**other)``, computed without overflow."""
    return _log_add_exp("logaddexp2", input, other, math.log(2.0))


class XLogY(Function):
    @staticmethod
    def forward(ctx, x, y):
        xp = x._xp()
        ctx.save_for_backward(x, y)
        with np.errstate(invalid="ignore", divide="ignore"):
            product = x._data * xp.log(y._data)
        # 0 * log(y) is 0, even at y = 0 or inf; only a nan y stays nan
        return xp.where((x._data == 0) & ~xp.isnan(y._data), 0, product)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        x_grad = y_grad = None
        if ctx.needs_input_grad[0]:
            # log(y), but 0 where x is 0 and log(y) is -inf or nan, as PyTorch takes it
            x_grad = where((x == 0) & (y <= 0), 0.0, XLogY.apply(grad_output, y))
            x_grad = unbroadcast(x_grad, x.shape)
        if ctx.needs_input_grad[1]:
            y_grad = unbroadcast(grad_output * x / y, y.shape)
        return x_grad, y_grad


@with_out
def xlogy(input: Any, other: Any) -> Tensor:
    """``input * log(other)``, taken as 0 where ``input`` is 0 (unless ``other`` is nan).

    Either argument may be a Python number.
    """
    x, y = _pair(input, other)
    if x.dtype.kind != "f":
        x, y = cast(x, dtypes.get_default_dtype()), cast(y, dtypes.get_default_dtype())
    return XLogY.apply(x, y)
