"""Activations beyond relu/sigmoid/tanh (those live in elementwise), and dropout masks.

Most are compositions of existing ops. ``Elu`` (also behind selu and celu) and ``Softplus`` (also
behind logsigmoid) get their own ``Function`` because the composed forms overflow (``exp`` of a
large input on the branch ``where`` discards still poisons the gradient with ``inf * 0``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.ops._utils import memory_order
from dltool.engine.ops.elementwise import _float_input, clamp, neg, sigmoid, tanh, where
from dltool.engine.ops.reduce import softmax
from dltool.engine.ops.special import erf, erfc  # noqa: F401 - erf lived here; kept importable
from dltool.engine.tensor import Tensor, _wrap_dim

# =============================================================== activations


class Elu(Function):
    """``scale * x`` for ``x > 0``, else ``scale * alpha * (exp(input_scale * x) - 1)``."""

    @staticmethod
    def forward(ctx, x, alpha, scale, input_scale):
        xp = x._xp()
        negative = xp.minimum(x._data, 0)
        if input_scale != 1.0:
            negative *= input_scale
        negative = xp.expm1(negative) * (alpha * scale)
        y = xp.where(x._data > 0, x._data * scale, negative)
        ctx.save_for_backward(x, y)
        ctx.constants = alpha, scale, input_scale
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        alpha, scale, input_scale = ctx.constants
        # on the negative side d/dx (scale*alpha*(e^(s*x) - 1)) = s * (y + scale*alpha)
        negative = (y + alpha * scale) if input_scale == 1.0 else (y + alpha * scale) * input_scale
        return where(x > 0, grad_output * scale, grad_output * negative), None, None, None


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _maybe_inplace(lambda x: Elu.apply(x, alpha, 1.0, 1.0), input, inplace)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """Scaled ELU with the self-normalizing constants of Klambauer et al."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return _maybe_inplace(lambda x: Elu.apply(x, alpha, scale, 1.0), input, inplace)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, else ``alpha * (exp(x / alpha) - 1)``.

    Raises:
        RuntimeError: if ``alpha`` is 0.
    """
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(lambda x: Elu.apply(x, alpha, 1.0, 1.0 / alpha), input, inplace)


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


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, linear where ``beta * x > threshold``."""
    return Softplus.apply(_float_input(input), beta, threshold)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x))``, as ``-softplus(-x)`` with no linear cut-off, so it is stable for all ``x``."""
    return neg(Softplus.apply(neg(_float_input(input)), 1.0, math.inf))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    return _maybe_inplace(lambda x: where(x > 0, x, x * negative_slope), input, inplace)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``x`` for ``x > 0``, else ``weight * x``, with one weight or one per channel (dim 1).

    Raises:
        RuntimeError: if ``weight`` is not 0-D or 1-D, or its size is neither 1 nor the channels.
    """
    if weight.ndim > 1:
        raise RuntimeError(
            f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.ndim}"
        )
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.numel() not in (1, channels):
        raise RuntimeError(
            "Mismatch of parameter numbers and input channel size. Found parameter numbers = "
            f"{weight.numel()} and channel size = {channels}."
        )
    slope = weight.reshape((-1,) + (1,) * (input.ndim - 2) if input.ndim >= 2 else ())
    return where(input > 0, input, input * slope)


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
) -> Tensor:
    """Leaky ReLU whose negative slope is drawn from ``U(lower, upper)`` for every element in
    training (from the default generator), and is ``(lower + upper) / 2`` otherwise.

    Raises:
        RuntimeError: if ``lower > upper``.
    """
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)
    draws = backend.rng(None).uniform(lower, upper, input.shape).astype(input.dtype)
    slope = Tensor._make(backend.move(draws, input.device))
    return _maybe_inplace(lambda x: where(x > 0, x, x * slope), input, inplace)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``."""
    return _maybe_inplace(lambda x: where(x > threshold, x, value), input, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` clamped to ``[min_val, max_val]``."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(lambda x: clamp(x, min_val, max_val), input, inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (swish)."""
    return _maybe_inplace(lambda x: x * sigmoid(x), input, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return _maybe_inplace(lambda x: x * tanh(softplus(x)), input, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``: 0 below -3, 1 above 3, linear between."""
    return _maybe_inplace(lambda x: clamp(x + 3.0, 0.0, 6.0) / 6.0, input, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6`` (MobileNetV3)."""
    return _maybe_inplace(lambda x: x * clamp(x + 3.0, 0.0, 6.0) / 6.0, input, inplace)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return input / (input.abs() + 1)


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``."""
    return input - tanh(input)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` moved ``lambd`` toward 0, and 0 within ``[-lambd, lambd]``.

    Raises:
        RuntimeError: if ``lambd`` is negative.
    """
    if lambd < 0:
        limit = np.finfo(input.dtype).max if input.is_floating_point() else math.inf
        raise RuntimeError(
            f"lambda must be in range [0, {limit:g}] for input dtype {input.dtype}, but found {lambd:g}"
        )
    return input - clamp(input, -lambd, lambd)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` outside ``[-lambd, lambd]``, 0 inside."""
    return where((input >= -lambd) & (input <= lambd), 0.0, input)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """``softmax(-x)`` along ``dim``."""
    return softmax(neg(input), dim, dtype)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """The gated linear unit ``a * sigmoid(b)`` of the two halves ``a, b`` of ``input`` along ``dim``.

    Raises:
        RuntimeError: for a 0-D input or an odd size along ``dim``.
    """
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    dim = _wrap_dim(dim, input.ndim)
    if input.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}")
    a, b = input.chunk(2, dim)
    return a * sigmoid(b)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Φ(x)``; ``approximate='tanh'`` uses the tanh formula of Hendrycks and Gimpel."""
    if approximate == "none":
        return input * erfc(input * -math.sqrt(0.5)) * 0.5
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * (tanh(inner) + 1.0) * 0.5
    raise RuntimeError(f"approximate argument must be either none or tanh, got '{approximate}'")


def _maybe_inplace(fn: Callable[[Tensor], Tensor], input: Tensor, inplace: bool) -> Tensor:
    """``fn(input)``, written into ``input`` when ``inplace`` (as PyTorch's ``inplace=True``)."""
    return input._inplace(fn) if inplace else fn(input)


# =============================================================== dropout


def _keep_mask(shape: tuple, p: float, like: Tensor) -> Tensor:
    """A ``1/(1-p)``-scaled keep mask of ``shape``, drawn from the default generator, in
    ``like``'s memory order when it has ``like``'s shape."""
    order = memory_order(like._data) if shape == like.shape else list(range(len(shape)))
    return KeepMask.apply(tuple(shape), p, tuple(order), like.dtype, like.device)


class KeepMask(Function):
    """Dropout's mask: a node of its own (with no tensor inputs, so no gradient), so that a trace
    records the draw and its replay draws a new mask each call, as eager mode does."""

    @staticmethod
    def forward(ctx, shape, p, order, dtype, device):
        keep = backend.rng(None).random(tuple(shape[axis] for axis in order), dtype=np.float32) >= p
        keep = keep.transpose(np.argsort(order))
        scaled = keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)
        return backend.move(scaled, device)


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _dropout(input: Tensor, p: float, training: bool, inplace: bool, channelwise: bool) -> Tensor:
    """Dropout of single elements, or of whole channels ``input[n, c]`` when ``channelwise``."""
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _maybe_inplace(lambda x: x * 0.0, input, inplace)
    if channelwise and input.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    shape = input.shape[:2] + (1,) * (input.ndim - 2) if channelwise else input.shape
    mask = _keep_mask(shape, p, input)
    return _maybe_inplace(lambda x: x * mask, input, inplace)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only)."""
    _check_p(p)
    return _dropout(input, p, training, inplace, channelwise=False)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels ``input[n, c]`` of ``(N, C, H, W)`` with probability ``p``.

    As in PyTorch, any other rank gets a ``UserWarning`` (and elementwise dropout for ``(N, C)``),
    and a 3-D input is taken, with a warning, as ``(N, C, L)`` rather than an unbatched image.
    """
    _check_p(p)
    if input.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will "
            "result in an error in a future release. To retain the behavior and silence this warning, "
            "please use dropout instead. Note that dropout2d exists to provide channel-wise dropout on "
            "inputs with 2 spatial dimensions, a channel dimension, and an optional batch dimension "
            "(i.e. 3D or 4D inputs).",
            stacklevel=2,
        )
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
            "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
            "dim. This behavior will change in a future release to interpret the input as one without "
            "a batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
            "please switch to using dropout1d instead.",
            stacklevel=2,
        )
    return _dropout(input, p, training, inplace, channelwise=True)
