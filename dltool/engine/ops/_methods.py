"""Binds the op functions as ``Tensor`` methods, in-place twins and operators: the one table.

``x.exp()`` is ``elementwise.exp(x)`` and shares its docstring; ``x.exp_()`` runs the same function
through ``Tensor._inplace``; ``x + y`` is ``elementwise.add(x, y)``. So each op is written once, and
a new op becomes a method by adding its name here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dltool.engine import creation, dtypes
from dltool.engine.ops import (
    assemble,
    diagonal,
    elementwise,
    index,
    linalg,
    matrix,
    norm,
    piecewise,
    reduce,
    scan,
    scatter,
    select,
    shape,
    special,
    trig,
)

_METHODS = {
    elementwise: (
        "abs absolute add addcdiv addcmul allclose bitwise_not ceil clamp clamp_max clamp_min clip "
        "cos div divide eq equal exp expm1 float_power float_power_ floor ge greater greater_equal gt "
        "isclose isfinite isinf "
        "isnan le lerp less less_equal log log10 log1p log2 logical_and logical_not logical_or "
        "logical_xor lt masked_fill maximum minimum mul multiply ne neg negative not_equal pow "
        "reciprocal relu remainder round rsqrt sigmoid sign sin sqrt square sub subtract tanh "
        "true_divide trunc"
    ),
    reduce: (
        "all amax amin aminmax any argmax argmin count_nonzero log_softmax logsumexp max mean min "
        "nanmean nansum norm prod softmax std sum var"
    ),
    shape: (
        "broadcast_to chunk expand expand_as flatten flip fliplr flipud movedim narrow permute repeat "
        "reshape reshape_as roll rot90 split squeeze swapaxes swapdims t tile transpose unbind "
        "unflatten unsqueeze view view_as"
    ),
    index: "argsort gather index_select masked_select nonzero scatter_add sort take topk",
    linalg: "addbmm addmm addmv addr baddbmm bmm cross dot kron matmul mm outer trace",
    matrix: "cholesky det inverse logdet pinverse qr slogdet svd",
    norm: "dist",
    piecewise: "copysign fmod frac heaviside nan_to_num signbit",
    special: "erf erfc erfinv exp2 logaddexp logaddexp2 xlogy",
    trig: (
        "acos acosh arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh atan atan2 atanh "
        "cosh deg2rad hypot rad2deg sinc sinh tan"
    ),
    assemble: "repeat_interleave",
    diagonal: "diag diag_embed diagonal diagonal_scatter tril triu",
    scan: "cummax cummin cumprod cumsum diff logcumsumexp",
    scatter: "index_add index_copy index_fill scatter scatter_reduce",
    select: "bincount histc kthvalue median mode msort nanmedian unique unique_consecutive",
    creation: "new_empty new_full new_ones new_tensor new_zeros",
}

# Methods whose ``name_`` twin writes the result into the tensor (``x.add_(y)``).
_INPLACE = {
    elementwise: (
        "abs add addcdiv addcmul clamp clamp_max clamp_min clip div exp lerp log masked_fill maximum "
        "mul neg pow relu sigmoid sqrt sub tanh"
    ),
    index: "scatter_add",
    diagonal: "tril triu",
    scan: "cumprod cumsum",
    scatter: "index_add index_copy index_fill scatter scatter_reduce",
    linalg: "addbmm addmm addmv addr baddbmm",
    piecewise: "copysign fmod frac heaviside nan_to_num",
    special: "erf erfc erfinv exp2 xlogy",
    trig: (
        "acos acosh arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh atan atan2 atanh "
        "cosh deg2rad hypot rad2deg sinc sinh tan"
    ),
}


def _swapped(fn: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    return lambda self, other: fn(other, self)


def _invert(self: Any) -> Any:
    return elementwise.logical_not(self) if self.dtype == dtypes.bool else elementwise.bitwise_not(self)


_OPERATORS: dict[str, Callable[..., Any]] = {
    "__add__": elementwise.add,
    "__radd__": elementwise.add,
    "__sub__": elementwise.sub,
    "__rsub__": elementwise.rsub,
    "__mul__": elementwise.mul,
    "__rmul__": elementwise.mul,
    "__truediv__": elementwise.div,
    "__rtruediv__": lambda self, other: elementwise.reciprocal(self) * other,
    "__floordiv__": lambda self, other: elementwise.div(self, other, rounding_mode="floor"),
    "__rfloordiv__": lambda self, other: elementwise.div(other, self, rounding_mode="floor"),
    "__mod__": elementwise.remainder,
    "__rmod__": _swapped(elementwise.remainder),
    "__pow__": elementwise.pow,
    "__rpow__": _swapped(elementwise.pow),
    "__matmul__": linalg.matmul,
    "__rmatmul__": _swapped(linalg.matmul),
    "__neg__": elementwise.neg,
    "__pos__": lambda self: self,
    "__abs__": elementwise.abs,
    "__invert__": _invert,
    "__and__": elementwise.bitwise_and,
    "__rand__": elementwise.bitwise_and,
    "__or__": elementwise.bitwise_or,
    "__ror__": elementwise.bitwise_or,
    "__xor__": elementwise.bitwise_xor,
    "__rxor__": elementwise.bitwise_xor,
    "__eq__": elementwise.eq,
    "__ne__": elementwise.ne,
    "__lt__": elementwise.lt,
    "__le__": elementwise.le,
    "__gt__": elementwise.gt,
    "__ge__": elementwise.ge,
    "__iadd__": lambda self, other: self.add_(other),
    "__isub__": lambda self, other: self.sub_(other),
    "__imul__": lambda self, other: self.mul_(other),
    "__itruediv__": lambda self, other: self.div_(other),
    "__ipow__": lambda self, other: self.pow_(other),
}


def _inplace_method(fn: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._inplace(fn, *args, **kwargs)

    method.__name__ = f"{fn.__name__}_"
    method.__doc__ = f"In-place ``{fn.__name__}``: writes the result into this tensor.\n\n{fn.__doc__ or ''}"
    return method


def bind_methods(cls: type) -> None:
    """Set every op of the tables as a method, in-place method or operator of ``cls``."""
    for module, names in _METHODS.items():
        for name in names.split():
            setattr(cls, name, getattr(module, name))
    for module, names in _INPLACE.items():
        for name in names.split():
            setattr(cls, f"{name}_", _inplace_method(getattr(module, name)))
    for name, fn in _OPERATORS.items():
        setattr(cls, name, fn)
    cls.where = lambda self, condition, other: elementwise.where(condition, self, other)
    cls.__hash__ = object.__hash__  # __eq__ is elementwise; tensors hash by identity, as in PyTorch
