"""Normalization: batch_norm, layer_norm, group_norm, instance_norm, rms_norm, local_response_norm.

``Normalize`` gives ``(x - mean) / sqrt(var + eps)`` over some axes in one pass; its backward uses
the saved output and ``1/std`` (or, under ``create_graph``, rebuilds both from the input so that
second derivatives are exact). Layer, group and instance norm add their affine ``weight``/``bias``
as plain broadcasts; ``BatchNorm`` takes its per-channel ones into the same node. RMS norm and
local response norm subtract no mean and are compositions of existing ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.ops.elementwise import rsqrt
from dltool.engine.ops.pool import avg_pool2d
from dltool.engine.ops.shape import pad
from dltool.engine.tensor import Tensor


def _standardize(x: Any, axes: tuple, eps: float) -> tuple[Any, Any, Any, Any]:
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` with the mean, biased variance and 1/std."""
    xp = backend.array_module(x)
    mean = x.mean(axis=axes, keepdims=True)
    y = x - mean
    var = xp.square(y).mean(axis=axes, keepdims=True)
    invstd = 1.0 / xp.sqrt(var + eps)
    y *= invstd
    return y, mean, var, invstd


def _rebuilt(x: Tensor, axes: tuple, eps: float) -> tuple[Tensor, Tensor]:
    """The normalized input and 1/std again, with engine ops, for exact higher derivatives."""
    centered = x - x.mean(dim=axes, keepdim=True)
    invstd = rsqrt((centered * centered).mean(dim=axes, keepdim=True) + eps)
    return centered * invstd, invstd


def _keep_for_backward(ctx: Any, invstd: Any, axes: tuple, eps: float, mean: Any, var: Any) -> None:
    """What both normalization nodes keep besides their saved tensors."""
    ctx.invstd, ctx.axes, ctx.eps = invstd, axes, eps
    ctx.mark_non_differentiable(mean, var)
    ctx.set_materialize_grads(False)


def _input_grad(ctx: Any, grad: Tensor, x: Tensor, y: Tensor, weight: Tensor | None = None) -> tuple:
    """The input's gradient through the standardization (and a per-channel ``weight``), with
    ``sum(grad)`` and ``sum(grad * y)`` over the normalized axes, which batch norm's bias and
    weight gradients are."""
    axes = ctx.axes
    if _grad_state.enabled:  # create_graph: rebuilt from x, so higher orders are exact
        y, invstd = _rebuilt(x, axes, ctx.eps)
    else:
        invstd = Tensor._make(ctx.invstd)
    count = math.prod(x.shape[axis] for axis in axes)
    sum_g = grad.sum(dim=axes, keepdim=True)
    sum_gy = (grad * y).sum(dim=axes, keepdim=True)
    scale = invstd if weight is None else invstd * weight.reshape(sum_g.shape)
    return (grad - sum_g / count - y * (sum_gy / count)) * scale, sum_g, sum_gy


class Normalize(Function):
    @staticmethod
    def forward(ctx, x, axes, eps):
        y, mean, var, invstd = _standardize(x._data, axes, eps)
        ctx.save_for_backward(x, y)
        _keep_for_backward(ctx, invstd, axes, eps, mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad_output, _mean, _var):
        x, y = ctx.saved_tensors
        return _input_grad(ctx, grad_output, x, y)[0], None, None


class BatchNorm(Function):
    """Batch normalization with its per-channel scale and shift as one node (PyTorch's
    native_batch_norm): the backward reuses the two sums that are also the weight's and the
    bias's gradients, 7 passes over the activations instead of 11."""

    @staticmethod
    def forward(ctx, x, weight, bias, axes, eps):
        y, mean, var, invstd = _standardize(x._data, axes, eps)
        out = y if weight is None else y * weight._data.reshape(mean.shape)
        if bias is not None and out is y:
            out = y + bias._data.reshape(mean.shape)
        elif bias is not None:
            out += bias._data.reshape(mean.shape)
        # y is the output itself without an affine part, else an array only this node holds
        ctx.save_for_backward(x, y if out is y else Tensor._make(y), weight)
        _keep_for_backward(ctx, invstd, axes, eps, mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad_output, _mean, _var):
        x, y, weight = ctx.saved_tensors
        x_grad, sum_g, sum_gy = _input_grad(ctx, grad_output, x, y, weight)
        _, needs_weight, needs_bias, *_ = ctx.needs_input_grad
        weight_grad = sum_gy.reshape(-1) if needs_weight else None
        bias_grad = sum_g.reshape(-1) if needs_bias else None
        return x_grad, weight_grad, bias_grad, None, None


def _channel_shape(input: Tensor) -> tuple:
    """``(1, C, 1, ...)``: how a per-channel vector broadcasts over ``input``."""
    return (1, input.shape[1]) + (1,) * (input.ndim - 2)


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple) -> Tensor:
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (dim 1) over the batch and spatial dims.

    In training the batch statistics are used and the running ones updated in place (the variance
    unbiased, as in PyTorch); otherwise the running ones are used.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (got {input.ndim}D input)")
    shape = _channel_shape(input)
    if not training:
        if running_mean is None or running_var is None:
            raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
        scale = rsqrt(running_var + eps).reshape(shape)
        return _affine((input - running_mean.reshape(shape)) * scale, weight, bias, shape)
    axes = (0,) + tuple(range(2, input.ndim))
    count = input.numel() // input.shape[1]
    if count <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {list(input.shape)}"
        )
    y, mean, var = BatchNorm.apply(input, weight, bias, axes, eps)
    _update_running_stats(running_mean, running_var, mean.reshape(-1), var.reshape(-1), count, momentum)
    return y


def _update_running_stats(
    running_mean: Tensor | None,
    running_var: Tensor | None,
    mean: Tensor,
    var: Tensor,
    count: int,
    momentum: float,
) -> None:
    """Move the running statistics toward ``mean`` and the unbiased ``var`` (of ``count`` values), in place."""
    if running_mean is not None:
        running_mean._inplace(lambda r: r * (1 - momentum) + mean * momentum)
    if running_var is not None:
        unbiased = var * (count / (count - 1))
        running_var._inplace(lambda r: r * (1 - momentum) + unbiased * momentum)


def _normalized_axes(input: Tensor, normalized_shape: Any, **affine: Tensor | None) -> tuple:
    """The trailing axes that ``normalized_shape`` names, after checking ``input`` and the affine
    tensors (``weight=``, ``bias=``) against it."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k > input.ndim or input.shape[input.ndim - k :] != shape:
        raise RuntimeError(
            f"Given normalized_shape={list(shape)}, expected input with shape "
            f"[*, {', '.join(map(str, shape))}], but got input of size{list(input.shape)}"
        )
    for name, tensor in affine.items():
        if tensor is not None and tensor.shape != shape:
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                f"{list(tensor.shape)} and normalized_shape = {list(shape)}"
            )
    return tuple(range(input.ndim - k, input.ndim))


def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` dims, then scale and shift elementwise."""
    axes = _normalized_axes(input, normalized_shape, weight=weight, bias=bias)
    y, _, _ = Normalize.apply(input, axes, eps)
    return _affine(y, weight, bias, input.shape[input.ndim - len(axes) :])


def rms_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """``x / sqrt(mean(x**2) + eps)`` over the last ``len(normalized_shape)`` dims, times ``weight``.

    ``eps=None`` is the machine epsilon of the dtype PyTorch computes in (float32 for float16 and
    float32 inputs, float64 for float64).
    """
    axes = _normalized_axes(input, normalized_shape, weight=weight)
    if eps is None:
        eps = float(np.finfo(np.promote_types(input.dtype, np.float32)).eps)
    y = input * rsqrt((input * input).mean(dim=axes, keepdim=True) + eps)
    return y if weight is None else y * weight


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each group of ``C // num_groups`` channels over those channels and space."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[:2]
    if c % num_groups:
        raise RuntimeError(
            f"Expected number of channels in input to be divisible by num_groups, but got input of shape {list(input.shape)} and num_groups={num_groups}"
        )
    y, _, _ = Normalize.apply(input.reshape(n, num_groups, -1), (2,), eps)
    return _affine(y.reshape(input.shape), weight, bias, _channel_shape(input))


def instance_norm(
    input: Tensor,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel of each sample over its spatial dims.

    With ``use_input_stats`` each sample's own statistics are used, and the running ones, when
    given, move in place toward their mean over the batch (the variance unbiased), as PyTorch's
    do; otherwise the running statistics normalize, as batch norm's do in eval mode.

    Raises:
        RuntimeError: without running statistics when ``use_input_stats`` is false.
        ValueError: with ``use_input_stats`` and a single spatial element per channel.
    """
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise RuntimeError(
                "Expected running_mean and running_var to be defined when use_input_stats is false"
            )
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    count = math.prod(input.shape[2:])
    if count == 1:
        raise ValueError(
            f"Expected more than 1 spatial element when training, got input size {list(input.shape)}"
        )
    y, mean, var = Normalize.apply(input, tuple(range(2, input.ndim)), eps)
    channels = input.shape[:2]
    _update_running_stats(
        running_mean,
        running_var,
        mean.reshape(channels).mean(0),
        var.reshape(channels).mean(0),
        count,
        momentum,
    )
    return _affine(y, weight, bias, _channel_shape(input))


def local_response_norm(
    input: Tensor,
    size: int,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
) -> Tensor:
    """Divide ``x`` by ``(k + alpha * a) ** beta``, where ``a`` is the mean of ``x**2`` over ``size``
    neighbouring channels (dim 1), zero-padded at the ends (AlexNet's LRN).

    Raises:
        ValueError: for an input of fewer than 3 dims.
    """
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if input.numel() == 0:
        return input
    # channels become the rows of a one-channel image, so a (size, 1) window averages across them
    squares = (input * input).reshape(input.shape[0], 1, input.shape[1], -1)
    squares = pad(squares, (0, 0, size // 2, (size - 1) // 2))
    mean = avg_pool2d(squares, (size, 1), stride=1).reshape(input.shape)
    return input / (mean * alpha + k) ** beta
