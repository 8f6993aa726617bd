"""Activations beyond relu/sigmoid/tanh (those live in elementwise), erf/erfc, and dropout masks.

Most are compositions of existing ops. ``Elu`` and ``Softplus`` get their own ``Function`` because
the composed forms overflow (``exp`` of a large input on the branch ``where`` discards still
poisons the gradient with ``inf * 0``), and ``Erfc`` because numpy has no erf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.ops._utils import memory_order
from dltool.engine.ops.elementwise import _float_input, clamp, exp, sigmoid, tanh, where
from dltool.engine.tensor import Tensor

# =============================================================== erf


def _erfc_array(x: Any) -> Any:
    """erfc by the Chebyshev fit of Numerical Recipes (``erfcc``): relative error below 1.2e-7.

    Relative (not absolute) accuracy matters in the tail, where gelu(x) = x * erfc(-x/√2) / 2.
    """
    xp = backend.array_module(x)
    z = xp.abs(x)
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
    z *= z
    y -= z
    xp.exp(y, out=y)
    y *= t
    # erfc(-z) = 2 - erfc(z), added branch-free: a where() on a random sign mask is ten times slower
    flip = y * -2.0
    flip += 2.0
    flip *= x < 0
    y += flip
    return y


class Erfc(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _erfc_array(x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * exp(-(x * x)) * (-2.0 / math.sqrt(math.pi))


def erfc(input: Tensor) -> Tensor:  # noqa: A002
    """Complementary error function, to about 1e-7 relative error (numpy has no erf)."""
    return Erfc.apply(_float_input(input))


def erf(input: Tensor) -> Tensor:  # noqa: A002
    """Error function as ``1 - erfc``, to about 1e-7 absolute error."""
    return 1.0 - erfc(input)


# =============================================================== activations


class Elu(Function):
    @staticmethod
    def forward(ctx, x, alpha, scale):
        xp = x._xp()
        negative = xp.expm1(xp.minimum(x._data, 0)) * (alpha * scale)
        y = xp.where(x._data > 0, x._data * scale, negative)
        ctx.save_for_backward(x, y)
        ctx.constants = alpha, scale
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        alpha, scale = ctx.constants
        # on the negative side d/dx (scale*alpha*(e^x - 1)) = y + scale*alpha
        return where(x > 0, grad_output * scale, grad_output * (y + alpha * scale)), None, None


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _maybe_inplace(lambda x: Elu.apply(x, alpha, 1.0), input, inplace)


def selu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """Scaled ELU with the self-normalizing constants of Klambauer et al."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return _maybe_inplace(lambda x: Elu.apply(x, alpha, scale), input, inplace)


class Softplus(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = x._xp()
        z = x._data * beta
        # NOTE: log1p(exp(z)) overflows for large z; max(z, 0) + log1p(exp(-|z|)) does not
        y = (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta
        y = xp.where(z > threshold, x._data, y)
        ctx.save_for_backward(x)
        ctx.constants = beta, threshold
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        beta, threshold = ctx.constants
        z = x * beta
        return where(z > threshold, grad_output, grad_output * sigmoid(z)), None, None


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    return Softplus.apply(_float_input(input), beta, threshold)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    return _maybe_inplace(lambda x: where(x > 0, x, x * negative_slope), input, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` clamped to ``[min_val, max_val]``."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(lambda x: clamp(x, min_val, max_val), input, inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    return hardtanh(input, 0.0, 6.0, inplace)


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * sigmoid(x)`` (swish)."""
    return _maybe_inplace(lambda x: x * sigmoid(x), input, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * tanh(softplus(x))``."""
    return _maybe_inplace(lambda x: x * tanh(softplus(x)), input, inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """``x * Φ(x)``; ``approximate='tanh'`` uses the tanh formula of Hendrycks and Gimpel."""
    if approximate == "none":
        return input * erfc(input * -math.sqrt(0.5)) * 0.5
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * (tanh(inner) + 1.0) * 0.5
    raise RuntimeError(f"approximate argument must be either none or tanh, got '{approximate}'")


def _maybe_inplace(fn: Callable[[Tensor], Tensor], input: Tensor, inplace: bool) -> Tensor:  # noqa: A002
    """``fn(input)``, written into ``input`` when ``inplace`` (as PyTorch's ``inplace=True``)."""
    return input._inplace(fn) if inplace else fn(input)


# =============================================================== dropout


def _keep_mask(shape: tuple, p: float, like: Tensor) -> Tensor:
    """A ``1/(1-p)``-scaled keep mask of ``shape``, drawn from the default generator, in
    ``like``'s memory order when it has ``like``'s shape."""
    order = memory_order(like._data) if shape == like.shape else list(range(len(shape)))
    keep = backend.rng(None).random(tuple(shape[axis] for axis in order), dtype=np.float32) >= p
    keep = keep.transpose(np.argsort(order))
    scaled = keep.astype(like.dtype) * np.asarray(1.0 / (1.0 - p), dtype=like.dtype)
    return Tensor._make(backend.move(scaled, like.device))


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only)."""
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _maybe_inplace(lambda x: x * 0.0, input, inplace)
    mask = _keep_mask(input.shape, p, input)
    return _maybe_inplace(lambda x: x * mask, input, inplace)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero whole channels of ``(N, C, H, W)`` (or ``(C, H, W)``) with probability ``p``."""
    _check_p(p)
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3D or 4D input, got {input.ndim}D")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _maybe_inplace(lambda x: x * 0.0, input, inplace)
    mask_shape = input.shape[:-2] + (1, 1)
    mask = _keep_mask(mask_shape, p, input)
    return _maybe_inplace(lambda x: x * mask, input, inplace)
