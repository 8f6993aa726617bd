"""Reductions (sum, mean, var, max, logsumexp, norm, ...) and the softmax family."""

from __future__ import annotations

import builtins
from collections import namedtuple
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import numpy_aliases, type_name, with_out
from dltool.engine.ops._utils import normalize_dims, row_reduce
from dltool.engine.ops.elementwise import _float_input, cast, exp, isnan, sqrt, where
from dltool.engine.tensor import Tensor, _wrap_dim

values_indices = namedtuple("values_indices", ["values", "indices"])


def _restore_dims(grad: Tensor, axes: tuple, keepdim: bool) -> Tensor:
    """Put the reduced axes back as size-1 dims so that ``grad`` broadcasts over the input."""
    if keepdim or not axes:
        return grad
    shape = list(grad.shape)
    for axis in axes:
        shape.insert(axis, 1)
    return grad.reshape(tuple(shape))


# =============================================================== sums and products


class Sum(Function):
    array_gradients = True

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x._data.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        grad = _restore_dims(grad_output, ctx.axes, ctx.keepdim)
        if type(grad_output) is Tensor:
            return grad.expand(ctx.shape), None, None
        return backend.array_module(grad).broadcast_to(grad, ctx.shape), None, None


class Prod(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.save_for_backward(x)
        ctx.axes, ctx.keepdim = axes, keepdim
        return x._data.prod(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        axes = ctx.axes
        grad = _restore_dims(grad_output, axes, ctx.keepdim)
        is_zero = x == 0
        nonzero_product = where(is_zero, 1.0, x).prod(dim=axes, keepdim=True)
        zero_count = is_zero.sum(dim=axes, keepdim=True)
        return grad * product_of_others(x, nonzero_product, zero_count), None, None


def product_of_others(x: Tensor, nonzero_product: Tensor, zero_count: Tensor) -> Tensor:
    """For each factor ``x`` of a product, the product of the other factors: its derivative.

    ``nonzero_product`` is the product of the nonzero factors and ``zero_count`` the number of zero
    ones (both broadcast against ``x``). NOTE: ``product / x`` fails at zeros, so the product of
    the others is rebuilt there: nonzero for the one zero factor of a product with a single zero.
    """
    is_zero = x == 0
    at_zero = where(zero_count == 1, nonzero_product, 0.0)
    elsewhere = where(zero_count == 0, nonzero_product / where(is_zero, 1.0, x), 0.0)
    return where(is_zero, at_zero, elsewhere)


@numpy_aliases
def sum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or all dims); bools and ints sum as int64."""
    if dtype is not None:
        input = cast(input, dtype)
    elif input._data.dtype.kind in "biu":  # no gradient: one pass, no int64 copy, no graph node
        axes = normalize_dims(dim, input.ndim)
        return Tensor._make(input._data.sum(axis=axes, keepdims=keepdim, dtype=dtypes.int64))
    return Sum.apply(input, normalize_dims(dim, input.ndim), keepdim)


@numpy_aliases
def prod(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    if dtype is not None:
        input = cast(input, dtype)
    return Prod.apply(input, normalize_dims(dim, input.ndim), keepdim)


def _count(input: Tensor, axes: tuple) -> int:
    n = 1
    for axis in axes:
        n *= input.shape[axis]
    return n


@numpy_aliases
def mean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Average over ``dim``; integer inputs are an error, as in PyTorch."""
    if dtype is not None:
        input = cast(input, dtype)
    if input.dtype.kind != "f":
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
            f"complex dtype. Got: {input.dtype}"
        )
    axes = normalize_dims(dim, input.ndim)
    return sum(input, axes, keepdim) / builtins.max(_count(input, axes), 1)


def _correction(dim: Any, unbiased: bool | None, correction: float | None) -> tuple[Any, float]:
    """``dim`` and the correction from PyTorch's overloads: ``var(x, unbiased)``, ``var(x, dim, unbiased)``."""
    if isinstance(dim, builtins.bool):
        dim, unbiased = None, dim
    if correction is None:
        correction = 0 if unbiased is False else 1
    return dim, correction


@numpy_aliases
def var(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> Tensor:
    """Variance with Bessel's ``correction`` (1 by default, as in PyTorch)."""
    dim, correction = _correction(dim, unbiased, correction)
    axes = normalize_dims(dim, input.ndim)
    centered = input - mean(input, axes, keepdim=True)
    n = _count(input, axes)
    return sum(centered * centered, axes, keepdim) / builtins.max(n - correction, 0)


@numpy_aliases
def std(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> Tensor:
    """Standard deviation with Bessel's ``correction`` (1 by default)."""
    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


@numpy_aliases
@with_out
def var_mean(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> tuple[Tensor, Tensor]:
    """``(var, mean)`` over ``dim``."""
    dim, correction = _correction(dim, unbiased, correction)
    return var(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


@numpy_aliases
@with_out
def std_mean(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> tuple[Tensor, Tensor]:
    """``(std, mean)`` over ``dim``."""
    variance, average = var_mean(input, dim, unbiased, keepdim, correction=correction)
    return sqrt(variance), average


@numpy_aliases
@with_out
def nansum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """``sum`` with NaNs counted as zero (they get no gradient).

    Example:
        >>> nansum(tensor([1.0, float("nan"), 2.0])).item()
        3.0
    """
    if input.dtype.kind == "f":
        input = where(isnan(input), 0.0, input)
    return sum(input, dim, keepdim, dtype=dtype)


@numpy_aliases
@with_out
def nanmean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """``mean`` of the elements that are not NaN (NaN where there are none)."""
    if dtype is not None:
        input = cast(input, dtype)
    if input.dtype.kind != "f":
        raise RuntimeError(
            f"nanmean(): expected input to have floating point or complex dtype but got {type_name(input.dtype)}"
        )
    present = sum(~isnan(input), dim, keepdim)
    total = nansum(input, dim, keepdim)
    # NOTE: 0 / 0 is NaN for an all-NaN slice, as in PyTorch; numpy's warning about it is noise
    with np.errstate(invalid="ignore"):
        return total / present


# =============================================================== extremes


class Amax(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        y = x._data.max(axis=axes, keepdims=True)
        ctx.save_for_backward(x, Tensor._make(y))
        ctx.axes, ctx.keepdim = axes, keepdim
        return y if keepdim else y.squeeze(axes)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        # NOTE: ties share the gradient evenly, as PyTorch's amax does
        hits = cast(x == y, x.dtype)
        grad = _restore_dims(grad_output, ctx.axes, ctx.keepdim)
        return grad * hits / hits.sum(dim=ctx.axes, keepdim=True), None, None


def _check_reducible(input: Tensor, axes: tuple, dim_given: bool, name: str) -> None:
    """PyTorch's errors for reducing nothing with an op that has no identity (max, min)."""
    if input.numel():
        return
    if not dim_given:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
    for axis in axes:
        if input.shape[axis] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {axis} to have non-zero size.")


def _extreme_axes(input: Tensor, dim: Any, name: str) -> tuple:
    axes = normalize_dims(dim if dim != () else None, input.ndim)
    _check_reducible(input, axes, dim is not None and dim != (), name)
    return axes


@numpy_aliases
def amax(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """Largest values over ``dim`` (all dims when empty)."""
    return Amax.apply(input, _extreme_axes(input, dim, "amax"), keepdim)


@numpy_aliases
def amin(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """Smallest values over ``dim`` (all dims when empty)."""
    return -Amax.apply(-input, _extreme_axes(input, dim, "amin"), keepdim)


aminmax_result = namedtuple("aminmax", ["min", "max"])


@numpy_aliases
@with_out
def aminmax(input: Tensor, *, dim: int | None = None, keepdim: bool = False) -> aminmax_result:
    """``(min, max)`` over ``dim`` (all dims when None), as ``amin`` and ``amax``."""
    if dim is None and input.numel() == 0:
        raise RuntimeError(
            "aminmax(): cannot compute aminmax over an empty dimension as the operation has no identity."
        )
    dim = () if dim is None else dim
    return aminmax_result(amin(input, dim, keepdim), amax(input, dim, keepdim))


@numpy_aliases
def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (over the flattened tensor when ``dim`` is None)."""
    if dim is None:
        return Tensor._make(input._data.argmax().astype(dtypes.int64))
    dim = _wrap_dim(dim, input.ndim)
    return Tensor._make(input._data.argmax(axis=dim, keepdims=keepdim).astype(dtypes.int64))


@numpy_aliases
def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    if dim is None:
        return Tensor._make(input._data.argmin().astype(dtypes.int64))
    dim = _wrap_dim(dim, input.ndim)
    return Tensor._make(input._data.argmin(axis=dim, keepdims=keepdim).astype(dtypes.int64))


def _extreme(input: Tensor, dim: Any, keepdim: bool, other: Any, largest: bool) -> Any:
    from dltool.engine.ops.elementwise import maximum, minimum
    from dltool.engine.ops.index import gather

    if isinstance(dim, Tensor):
        return maximum(input, dim) if largest else minimum(input, dim)
    if other is not None:
        return maximum(input, other) if largest else minimum(input, other)
    if dim is None:
        return amax(input) if largest else amin(input)
    dim = _wrap_dim(dim, input.ndim)
    _check_reducible(input, (dim,), True, "max" if largest else "min")
    indices = (argmax if largest else argmin)(input, dim, keepdim=True)
    values = gather(input, dim, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return values_indices(values, indices)


@numpy_aliases
def max(input: Tensor, dim: Any = None, keepdim: bool = False, *, other: Any = None) -> Any:
    """The largest value; with ``dim``, a ``(values, indices)`` pair; with a tensor, ``maximum``."""
    return _extreme(input, dim, keepdim, other, largest=True)


@numpy_aliases
def min(input: Tensor, dim: Any = None, keepdim: bool = False, *, other: Any = None) -> Any:
    """The smallest value; with ``dim``, a ``(values, indices)`` pair; with a tensor, ``minimum``."""
    return _extreme(input, dim, keepdim, other, largest=False)


@numpy_aliases
def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    axes = normalize_dims(dim, input.ndim)
    return Tensor._make(input._data.all(axis=axes, keepdims=keepdim))


@numpy_aliases
def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    axes = normalize_dims(dim, input.ndim)
    return Tensor._make(input._data.any(axis=axes, keepdims=keepdim))


@numpy_aliases
def count_nonzero(input: Tensor, dim: Any = None) -> Tensor:
    return sum(input != 0, dim)


# =============================================================== log-sum-exp and softmax


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = x._xp()
        peak = x._data.max(axis=axes, keepdims=True)
        # NOTE: an all -inf slice would give nan through inf - inf; shift by 0 there
        peak = xp.where(xp.isfinite(peak), peak, 0)
        with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for an all -inf slice
            out = xp.log(xp.exp(x._data - peak).sum(axis=axes, keepdims=True)) + peak
        y = out if keepdim else out.squeeze(axes)
        # the output itself is saved, so that under create_graph its own gradient flows too
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        grad = _restore_dims(grad_output, ctx.axes, ctx.keepdim)
        return grad * exp(x - _restore_dims(y, ctx.axes, ctx.keepdim)), None, None


@numpy_aliases
def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(input)))`` over ``dim``, computed without overflow."""
    return LogSumExp.apply(_float_input(input), normalize_dims(dim, input.ndim), keepdim)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        xp = x._xp()
        y = x._data - row_reduce(xp.maximum, x._data, dim)
        xp.exp(y, out=y)
        y /= row_reduce(xp.add, y, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return y * (grad_output - (grad_output * y).sum(dim=ctx.dim, keepdim=True)), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        xp = x._xp()
        shifted = x._data - row_reduce(xp.maximum, x._data, dim)
        y = shifted - xp.log(row_reduce(xp.add, xp.exp(shifted), dim))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output - exp(y) * grad_output.sum(dim=ctx.dim, keepdim=True), None


def _softmax_dim(input: Tensor, dim: int | None) -> int:
    if dim is None:
        # NOTE: PyTorch's implicit-dim rule, kept for compatibility (it warns there)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return _wrap_dim(dim, input.ndim)


@numpy_aliases
def softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the max for stability."""
    if dtype is not None:
        input = cast(input, dtype)
    return Softmax.apply(_float_input(input), _softmax_dim(input, dim))


@numpy_aliases
def log_softmax(input: Tensor, dim: int | None = None, dtype: Any = None) -> Tensor:
    """``log(softmax(x))`` computed in one stable pass."""
    if dtype is not None:
        input = cast(input, dtype)
    return LogSoftmax.apply(_float_input(input), _softmax_dim(input, dim))


def norm(input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """The vector p-norm over ``dim`` (2 and 'fro' alike; also inf, -inf, 0, 1 and any float)."""
    if dtype is not None:
        input = cast(input, dtype)
    if p in ("fro", 2, 2.0, None):
        return sqrt(sum(input * input, dim, keepdim))
    if p == "nuc":
        raise NotImplementedError("the nuclear norm is not supported")
    magnitude = abs(input)
    if p == float("inf"):
        return amax(magnitude, dim if dim is not None else (), keepdim)
    if p == float("-inf"):
        return amin(magnitude, dim if dim is not None else (), keepdim)
    if p == 0:
        return sum(cast(input != 0, input.dtype), dim, keepdim)
    if p == 1:
        return sum(magnitude, dim, keepdim)
    return sum(magnitude**p, dim, keepdim) ** (1.0 / p)
