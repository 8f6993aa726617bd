"""Elementwise ops: arithmetic with broadcasting, unary math, activations, comparisons, casts."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import type_name, write_out
from dltool.engine.ops._utils import as_tensor_like, backward_operands, unbroadcast
from dltool.engine.tensor import Tensor

_Number = (builtins.int, builtins.float, builtins.bool, np.generic)


def _scalar(value: Any, like: Tensor) -> Tensor:
    """A Python number as a 0-dim tensor of the dtype PyTorch would compute in."""
    dtype = like._data.dtype
    kind = type(value)
    # fast path: a Python float with a float tensor, or a Python int with a numeric one
    if not (kind is builtins.float and dtype.kind == "f" or kind is builtins.int and dtype.kind in "fiu"):
        if isinstance(value, np.generic):
            value = value.item()
        dtype = dtypes.result_type(dtype, dtypes.scalar_dtype(value), False, True)
    return Tensor._make(like._xp().asarray(value, dtype=dtype))


def _check_broadcast(x_shape: tuple, y_shape: tuple) -> None:
    """PyTorch's error for shapes that do not broadcast (numpy's ValueError reads differently)."""
    ndim = builtins.max(len(x_shape), len(y_shape))
    for i, (m, n) in enumerate(zip(reversed(x_shape), reversed(y_shape), strict=False)):
        if m != n and m != 1 and n != 1:
            raise RuntimeError(
                f"The size of tensor a ({m}) must match the size of tensor b ({n}) at "
                f"non-singleton dimension {ndim - 1 - i}"
            )


def _pair(x: Any, y: Any, broadcast: bool = True) -> tuple[Tensor, Tensor]:
    """Both operands as tensors of PyTorch's common dtype (Python numbers never widen a tensor).

    With ``broadcast``, shapes that cannot broadcast together raise PyTorch's error.
    """
    if not isinstance(x, Tensor):
        x = _scalar(x, y) if isinstance(x, _Number) else as_tensor_like(x, y)
    if not isinstance(y, Tensor):
        y = _scalar(y, x) if isinstance(y, _Number) else as_tensor_like(y, x)
    if broadcast and x._data.shape != y._data.shape and x._data.ndim and y._data.ndim:
        _check_broadcast(x._data.shape, y._data.shape)
    dx, dy = x._data.dtype, y._data.dtype
    if dx is not dy and dx != dy:
        target = dtypes.result_type(dx, dy, x.ndim == 0 < y.ndim, y.ndim == 0 < x.ndim)
        x = x if dx == target else cast(x, target)
        y = y if dy == target else cast(y, target)
    return x, y


# =============================================================== arithmetic


class Add(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.shapes = x.shape, y.shape
        return x._data + y._data

    @staticmethod
    def backward(ctx, grad_output):
        x_shape, y_shape = ctx.shapes
        x_grad = unbroadcast(grad_output, x_shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(grad_output, y_shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


class Sub(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.shapes = x.shape, y.shape
        return x._data - y._data

    @staticmethod
    def backward(ctx, grad_output):
        x_shape, y_shape = ctx.shapes
        x_grad = unbroadcast(grad_output, x_shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(-grad_output, y_shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


class Mul(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x._data * y._data

    @staticmethod
    def backward(ctx, grad_output):
        grad_output, x, y = backward_operands(grad_output, *ctx.saved_tensors)
        x_grad = unbroadcast(grad_output * y, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(grad_output * x, y.shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


class Div(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x._data / y._data

    @staticmethod
    def backward(ctx, grad_output):
        grad_output, x, y = backward_operands(grad_output, *ctx.saved_tensors)
        x_grad = unbroadcast(grad_output / y, x.shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(-grad_output * x / (y * y), y.shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


class Pow(Function):
    @staticmethod
    def forward(ctx, x, y):
        out = x._data**y._data
        ctx.save_for_backward(x, y, out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, y, out = ctx.saved_tensors
        x_grad = y_grad = None
        if ctx.needs_input_grad[0]:
            x_grad = unbroadcast(grad_output * y * x ** (y - 1), x.shape)
        if ctx.needs_input_grad[1]:
            # NOTE: d(x**y)/dy = x**y * log(x) is nan for x < 0; PyTorch masks x == 0 to 0 likewise
            log_x = where(x == 0, zeros_like_value(x), log(x))
            y_grad = unbroadcast(grad_output * out * log_x, y.shape)
        return x_grad, y_grad


# A float tensor with a Python int or float (not bool): the result keeps the tensor's dtype, so
# these nodes skip wrapping the number in a tensor, promotion and broadcasting checks.
_PLAIN_NUMBERS = (builtins.int, builtins.float)


def _with_number(x: Any, c: Any) -> bool:
    return type(c) in _PLAIN_NUMBERS and isinstance(x, Tensor) and x._data.dtype.kind == "f"


# NOTE: numpy 2 combines an array with a Python number about 0.4 us slower than with a 0-d array of
# the array's dtype (922 against 524 ns for ``a * 1.001`` on 8x8 float32 here): it works out the
# weak scalar's dtype (NEP 50) on every call. Both give the same bits, since numpy casts the number
# to the array's dtype either way, so the number goes to numpy as a cached 0-d array.
_OPERANDS: dict = {}
_OPERANDS_MAX = 1024  # distinct (number, dtype) pairs kept before the table starts again


def _operand(c: Any, array: Any) -> Any:
    """The number ``c`` as numpy combines it fastest with the float ``array``: a cached 0-d array
    of its dtype. ``c`` itself next to other arrays (cupy takes Python numbers as they are; an
    integer array would promote) and where a cache would differ: for zeros (``0.0 == -0.0`` would
    share an entry), NaN and numbers the dtype cannot hold (numpy warns on each call)."""
    if type(array) is not np.ndarray:
        return c
    key = (c, array.dtype)
    found = _OPERANDS.get(key)
    if found is None:
        if not c or c != c or array.dtype.kind != "f":
            return c
        try:
            with np.errstate(over="raise"):
                found = np.asarray(c, dtype=array.dtype)
        except (FloatingPointError, OverflowError):
            return c
        if len(_OPERANDS) >= _OPERANDS_MAX:
            _OPERANDS.clear()
        _OPERANDS[key] = found
    return found


class AddScalar(Function):
    node_name = "Add"
    array_gradients = True

    @staticmethod
    def forward(ctx, x, c):
        return x._data + _operand(c, x._data)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


class SubScalar(AddScalar):
    """``x - c``, computed as ``x + (-c)`` (the same IEEE result), under PyTorch's node name."""

    node_name = "Sub"


class MulScalar(Function):
    node_name = "Mul"
    array_gradients = True

    @staticmethod
    def forward(ctx, x, c):
        ctx.scalar = c
        return x._data * _operand(c, x._data)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * _operand(ctx.scalar, grad_output), None


class DivScalar(Function):
    node_name = "Div"
    array_gradients = True

    @staticmethod
    def forward(ctx, x, c):
        ctx.scalar = c
        return x._data / _operand(c, x._data)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output / _operand(ctx.scalar, grad_output), None


def zeros_like_value(x: Tensor) -> Tensor:
    return Tensor._make(x._xp().zeros((), dtype=x.dtype))


def add(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``input + alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    elif _with_number(input, other):
        return AddScalar.apply(input, other)
    return Add.apply(*_pair(input, other))


def sub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``input - alpha * other`` with broadcasting."""
    if alpha != 1:
        other = mul(other, alpha)
    elif _with_number(input, other):
        return SubScalar.apply(input, -other)
    return Sub.apply(*_pair(input, other))


subtract = sub


def rsub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``other - alpha * input``."""
    return sub(other, input, alpha=alpha)


def mul(input: Any, other: Any) -> Tensor:
    """Elementwise product with broadcasting."""
    if _with_number(input, other):
        return MulScalar.apply(input, other)
    return Mul.apply(*_pair(input, other))


multiply = mul


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """True division (integers give floats); ``rounding_mode`` 'floor' or 'trunc' rounds, without grad."""
    if rounding_mode is None and _with_number(input, other):
        return DivScalar.apply(input, other)
    x, y = _pair(input, other)
    if rounding_mode is not None:
        if rounding_mode not in ("floor", "trunc"):
            raise ValueError(
                f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'"
            )
        xp = x._xp()
        if x.dtype.kind in "iu":
            quotient = x._data // y._data if rounding_mode == "floor" else xp.trunc(x._data / y._data)
            return Tensor._make(quotient.astype(x.dtype))
        rounded = xp.floor if rounding_mode == "floor" else xp.trunc
        return Tensor._make(rounded(x._data / y._data))
    if x.dtype.kind != "f":
        x, y = cast(x, dtypes.get_default_dtype()), cast(y, dtypes.get_default_dtype())
    return Div.apply(x, y)


divide = true_divide = div


def reciprocal(input: Tensor) -> Tensor:
    return div(1.0, input)


def remainder(input: Any, other: Any) -> Tensor:
    """Python-style modulus (the sign follows the divisor); the gradient passes to ``input``."""
    x, y = _pair(input, other)
    return x - div(x, y, rounding_mode="floor") * y


def pow(input: Any, exponent: Any) -> Tensor:
    """``input ** exponent`` with broadcasting; either may be a number."""
    x, y = _pair(input, exponent)
    if x.dtype.kind in "iu" and y.dtype.kind in "iu" and (y._data < 0).any():
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return Pow.apply(x, y)


def float_power(input: Any, exponent: Any, *, out: Tensor | None = None) -> Tensor:
    """``input ** exponent`` computed in float64, whatever the operands' dtypes.

    Raises:
        RuntimeError: ``out`` is not float64.
    """
    x, y = (cast(v, dtypes.float64) if isinstance(v, Tensor) else float(v) for v in (input, exponent))
    if out is not None and out.dtype != dtypes.float64:
        raise RuntimeError(
            f"the output given to float_power has dtype {type_name(out.dtype)} but the operation's "
            "result requires dtype Double"
        )
    return write_out(out, pow(x, y), "float_power")


def float_power_(self: Tensor, exponent: Any) -> Tensor:
    """In-place ``float_power``; only a float64 tensor can hold its result."""
    if self.dtype != dtypes.float64:
        raise RuntimeError(
            f"the base given to float_power_ has dtype {type_name(self.dtype)} but the operation's "
            "result requires dtype Double"
        )
    return self._inplace(float_power, exponent)


def square(input: Tensor) -> Tensor:
    return mul(input, input)


def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
    """``input + value * tensor1 * tensor2``."""
    return add(input, mul(tensor1, tensor2), alpha=value)


def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
    """``input + value * tensor1 / tensor2``."""
    return add(input, div(tensor1, tensor2), alpha=value)


def lerp(input: Tensor, end: Tensor, weight: Any) -> Tensor:
    """``input + weight * (end - input)``."""
    return add(input, mul(sub(end, input), weight))


# =============================================================== unary math


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x._data

    @staticmethod
    def backward(ctx, grad_output):
        return -grad_output


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x._xp().abs(x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * sign(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = x._xp().exp(x._data)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        # NOTE: log(0) is -inf and log(-1) nan without a warning, as in PyTorch (`log(tril(ones))`
        # is a common mask idiom)
        with np.errstate(divide="ignore", invalid="ignore"):
            return x._xp().log(x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / x


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(divide="ignore", invalid="ignore"):  # as Log
            return x._xp().log1p(x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / (x + 1)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = x._xp().sqrt(x._data)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output / (y * 2)


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x._xp().sin(x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x._xp().cos(x._data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return -grad_output * sin(x)


class Tanh(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x):
        y = x._xp().tanh(x._data)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        if type(grad_output) is Tensor:
            return TanhBackward.apply(grad_output, y)
        return _tanh_grad(grad_output, y._data)


def _tanh_grad(grad: Any, y: Any) -> Any:
    return grad * (_operand(1, y) - y * y)


class TanhBackward(Function):
    """``grad * (1 - y*y)`` from tanh's output ``y``, as one node (PyTorch's tanh_backward)."""

    @staticmethod
    def forward(ctx, grad, y):
        ctx.save_for_backward(grad, y)
        return _tanh_grad(grad._data, y._data)

    @staticmethod
    def backward(ctx, grad_output):
        grad, y = ctx.saved_tensors
        grad_grad = TanhBackward.apply(grad_output, y) if ctx.needs_input_grad[0] else None
        y_grad = grad_output * grad * y * -2 if ctx.needs_input_grad[1] else None
        return grad_grad, y_grad


class Sigmoid(Function):
    # NOTE: written through tanh, which never overflows; 1 / (1 + exp(-x)) does for x << 0
    @staticmethod
    def forward(ctx, x):
        xp = x._xp()
        half = _operand(0.5, x._data)
        y = xp.tanh(x._data * half)
        y += _operand(1, y)
        y *= half
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return SigmoidBackward.apply(grad_output, y)


class SigmoidBackward(Function):
    """``grad * y * (1 - y)`` from sigmoid's output ``y``, as one node (PyTorch's sigmoid_backward)."""

    @staticmethod
    def forward(ctx, grad, y):
        ctx.save_for_backward(grad, y)
        return grad._data * y._data * (_operand(1, y._data) - y._data)

    @staticmethod
    def backward(ctx, grad_output):
        grad, y = ctx.saved_tensors
        grad_grad = SigmoidBackward.apply(grad_output, y) if ctx.needs_input_grad[0] else None
        y_grad = grad_output * grad * (1 - 2 * y) if ctx.needs_input_grad[1] else None
        return grad_grad, y_grad


def _keep(grad: Any, mask: Any) -> Any:
    """``grad`` (a Tensor or an array) where the bool array ``mask`` holds, zero elsewhere.

    NOTE: a multiply by the mask, which numpy runs about 7x faster than ``where`` on random masks;
    unlike ``where`` it turns an inf or nan gradient into nan at masked-out places.
    """
    mask = mask.astype(grad.dtype)
    return grad * (Tensor._make(mask) if type(grad) is Tensor else mask)


class Relu(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x):
        y = x._xp().maximum(x._data, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return _keep(grad_output, y._data > 0)


class Clamp(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x, low, high):
        ctx.save_for_backward(x)
        ctx.bounds = low, high
        return x._xp().clip(x._data, low, high)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        low, high = ctx.bounds
        inside = x._xp().ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x._data >= low
        if high is not None:
            inside &= x._data <= high
        return _keep(grad_output, inside), None, None


def neg(input: Tensor) -> Tensor:
    return Neg.apply(input)


negative = neg


def abs(input: Tensor) -> Tensor:
    return Abs.apply(input)


absolute = abs


def _float_input(x: Tensor) -> Tensor:
    """Integer inputs of float functions compute in the default float dtype, as in PyTorch."""
    return x if x._data.dtype.kind == "f" else cast(x, dtypes.get_default_dtype())


def exp(input: Tensor) -> Tensor:
    return Exp.apply(_float_input(input))


def log(input: Tensor) -> Tensor:
    return Log.apply(_float_input(input))


def log1p(input: Tensor) -> Tensor:
    return Log1p.apply(_float_input(input))


def expm1(input: Tensor) -> Tensor:
    return exp(input) - 1


def log2(input: Tensor) -> Tensor:
    return log(input) / float(np.log(2.0))


def log10(input: Tensor) -> Tensor:
    return log(input) / float(np.log(10.0))


def sqrt(input: Tensor) -> Tensor:
    return Sqrt.apply(_float_input(input))


def rsqrt(input: Tensor) -> Tensor:
    return pow(_float_input(input), -0.5)


def sin(input: Tensor) -> Tensor:
    return Sin.apply(_float_input(input))


def cos(input: Tensor) -> Tensor:
    return Cos.apply(_float_input(input))


def tanh(input: Tensor) -> Tensor:
    return Tanh.apply(_float_input(input))


def sigmoid(input: Tensor) -> Tensor:
    return Sigmoid.apply(_float_input(input))


def relu(input: Tensor) -> Tensor:
    return Relu.apply(input)


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit values to ``[min, max]``; the gradient passes where the input lies inside."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        result = input
        if min is not None:
            result = maximum(result, min)
        if max is not None:
            result = minimum(result, max)
        return result
    return Clamp.apply(input, min, max)


clip = clamp


def clamp_min(input: Tensor, min: Any) -> Tensor:
    return clamp(input, min, None)


def clamp_max(input: Tensor, max: Any) -> Tensor:
    return clamp(input, None, max)


def _rounding(name: str) -> Any:
    def op(input: Tensor) -> Tensor:
        xp = input._xp()
        return Tensor._make(getattr(xp, name)(input._data))

    op.__name__ = name
    op.__doc__ = f"Elementwise {name}; piecewise constant, so it records no gradient."
    return op


floor, ceil, trunc, sign = (_rounding(n) for n in ("floor", "ceil", "trunc", "sign"))


def round(input: Tensor, *, decimals: int = 0) -> Tensor:
    """Round half to even, as PyTorch does; records no gradient."""
    return Tensor._make(input._xp().round(input._data, decimals))


# =============================================================== selection


class Where(Function):
    @staticmethod
    def forward(ctx, condition, x, y):
        ctx.save_for_backward(condition)
        ctx.shapes = x.shape, y.shape
        return condition._xp().where(condition._data, x._data, y._data)

    @staticmethod
    def backward(ctx, grad_output):
        (condition,) = ctx.saved_tensors
        x_shape, y_shape = ctx.shapes
        zero = zeros_like_value(grad_output)
        x_grad = y_grad = None
        if ctx.needs_input_grad[1]:
            x_grad = unbroadcast(where(condition, grad_output, zero), x_shape)
        if ctx.needs_input_grad[2]:
            y_grad = unbroadcast(where(condition, zero, grad_output), y_shape)
        return None, x_grad, y_grad


class Maximum(Function):
    @staticmethod
    def forward(ctx, x, y):
        # NOTE: ties split the gradient evenly between the two inputs, as in PyTorch
        share = (x._data > y._data) + 0.5 * (x._data == y._data)
        ctx.save_for_backward(Tensor._make(share.astype(x.dtype)))
        ctx.shapes = x.shape, y.shape
        return x._xp().maximum(x._data, y._data)

    @staticmethod
    def backward(ctx, grad_output):
        (share,) = ctx.saved_tensors
        x_shape, y_shape = ctx.shapes
        x_grad = unbroadcast(grad_output * share, x_shape) if ctx.needs_input_grad[0] else None
        y_grad = unbroadcast(grad_output * (1 - share), y_shape) if ctx.needs_input_grad[1] else None
        return x_grad, y_grad


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """Pick ``input`` where ``condition`` holds, else ``other``; both may be numbers."""
    if not isinstance(condition, Tensor):
        condition = Tensor(np.asarray(condition))
    if condition.dtype != dtypes.bool:
        condition = Tensor._make(condition._data.astype(bool))
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = _scalar(input, Tensor._make(condition._xp().zeros((), dtypes.get_default_dtype())))
    x, y = _pair(input, other)
    return Where.apply(condition, x, y)


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """``value`` where ``mask`` is true, ``input`` elsewhere."""
    if mask.dtype != dtypes.bool:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {mask.dtype}")
    if isinstance(value, Tensor):
        value = value.to(input.dtype)
    return where(mask, _scalar(value, input) if not isinstance(value, Tensor) else value, input)


def maximum(input: Tensor, other: Any) -> Tensor:
    x, y = _pair(input, other)
    return Maximum.apply(x, y)


def minimum(input: Tensor, other: Any) -> Tensor:
    x, y = _pair(input, other)
    return -Maximum.apply(-x, -y)


def fmax(input: Tensor, other: Tensor) -> Tensor:
    """``maximum`` that ignores NaN: where one side is NaN the result is the other (numpy's ``fmax``).

    A tie's gradient goes to ``input``, as PyTorch's does.
    """
    return where(logical_or(isnan(other), ge(input, other)), input, other)


def fmin(input: Tensor, other: Tensor) -> Tensor:
    """``minimum`` that ignores NaN: where one side is NaN the result is the other; ties as ``fmax``."""
    return where(logical_or(isnan(other), le(input, other)), input, other)


# =============================================================== conversions


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x._data.astype(dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return cast(grad_output, ctx.dtype), None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.device = x.device
        return backend.move(x._data, device)

    @staticmethod
    def backward(ctx, grad_output):
        return to_device(grad_output, ctx.device), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x._data.copy()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def cast(input: Tensor, dtype: Any) -> Tensor:
    """``input`` converted to ``dtype``; gradients flow back in the input's dtype."""
    dtype = dtypes.to_dtype(dtype)
    if input._data.dtype == dtype:
        return input
    return Cast.apply(input, dtype)


def to_device(input: Tensor, device: Any) -> Tensor:
    device = backend.device(device)
    backend.module_for(device)
    return ToDevice.apply(input, device)


def clone(input: Tensor) -> Tensor:
    """A copy with its own storage; gradients flow through."""
    return Clone.apply(input)


def overwrite(input: Tensor, value: Any) -> Tensor:
    """``value`` broadcast to ``input``'s shape and dtype, linked to ``input`` with zero gradient.

    What ``copy_``, ``fill_`` and the random fills compute before writing in place.
    """
    xp = input._xp()
    value = value if isinstance(value, Tensor) else Tensor._make(xp.asarray(value, dtype=input.dtype))
    value = cast(to_device(value, input.device) if value.device != input.device else value, input.dtype)
    keep_old = Tensor._make(xp.zeros((), dtype=bool))
    return where(keep_old, input, value.expand(input.shape))


# =============================================================== comparisons and logic


def _compare(name: str) -> Any:
    def op(input: Any, other: Any) -> Tensor:
        x = input if isinstance(input, Tensor) else as_tensor_like(input, other)
        xp = x._xp()
        return Tensor._make(getattr(xp, name)(x._data, other._data if isinstance(other, Tensor) else other))

    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` with broadcasting; a bool tensor without gradient."
    return op


eq, ne, lt, le, gt, ge = (
    _compare(n) for n in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
)
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
logical_and, logical_or, logical_xor = (_compare(n) for n in ("logical_and", "logical_or", "logical_xor"))
bitwise_and, bitwise_or, bitwise_xor = (_compare(n) for n in ("bitwise_and", "bitwise_or", "bitwise_xor"))


def logical_not(input: Tensor) -> Tensor:
    return Tensor._make(input._xp().logical_not(input._data))


def bitwise_not(input: Tensor) -> Tensor:
    return Tensor._make(input._xp().invert(input._data))


def isfinite(input: Tensor) -> Tensor:
    return Tensor._make(input._xp().isfinite(input._data))


def isnan(input: Tensor) -> Tensor:
    return Tensor._make(input._xp().isnan(input._data))


def isinf(input: Tensor) -> Tensor:
    return Tensor._make(input._xp().isinf(input._data))


def isclose(
    input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` elementwise."""
    return Tensor._make(input._xp().isclose(input._data, other._data, rtol, atol, equal_nan))


def allclose(
    input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> builtins.bool:
    return builtins.bool(isclose(input, other, rtol, atol, equal_nan)._data.all())


def equal(input: Tensor, other: Tensor) -> builtins.bool:
    """True when both have the same shape and the same values."""
    return input.shape == other.shape and builtins.bool((input._data == other._data).all())
