"""dtypes under PyTorch's names, the default float dtype, and PyTorch's type promotion.

A dtype is a numpy dtype, so ``x.dtype == dltool.engine.float32`` and ``np.float32`` mix freely.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
uint8 = np.dtype("uint8")
int8 = np.dtype("int8")
int16 = short = np.dtype("int16")
int32 = int = np.dtype("int32")
int64 = long = np.dtype("int64")
bool = np.dtype("bool")

_default_float = float32


def get_default_dtype() -> np.dtype:
    """The dtype of tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype of tensors made from Python floats; only floating dtypes are allowed."""
    global _default_float
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"only floating-point types are supported as the default type, got {dtype}")
    _default_float = dtype


def to_dtype(dtype: Any) -> np.dtype:
    """Normalize a dtype given as a numpy dtype, a string or a Python type."""
    if dtype is builtins.float:
        return _default_float
    if dtype is builtins.int:
        return int64
    if dtype is builtins.bool:
        return bool
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unsupported dtype: {dtype!r}") from None
    if result.kind not in "fiub":
        raise TypeError(f"unsupported dtype: {result}")
    return result


def infer_dtype(data: Any) -> np.dtype:
    """The dtype PyTorch gives a tensor built from ``data``.

    numpy arrays and numpy scalars keep their dtype; Python floats become the default float dtype
    and Python ints int64.
    """
    if isinstance(data, (np.ndarray, np.generic)):
        return to_dtype(data.dtype)
    kind = np.asarray(data).dtype.kind
    if kind == "f":
        return _default_float
    if kind in "iu":
        return int64
    if kind == "b":
        return bool
    raise TypeError(f"can't convert {type(data).__name__} to a tensor (only numbers and nested lists)")


def _category(dtype: np.dtype) -> builtins.int:
    return 2 if dtype.kind == "f" else (0 if dtype.kind == "b" else 1)


def scalar_dtype(value: Any) -> np.dtype:
    if isinstance(value, builtins.bool):
        return bool
    if isinstance(value, builtins.int):
        return int64
    return _default_float


def result_type(a: np.dtype, b: np.dtype, a_scalar: builtins.bool, b_scalar: builtins.bool) -> np.dtype:
    """PyTorch's promotion: a higher category wins; a scalar or 0-dim operand never widens its peer.

    ``a_scalar`` marks a Python number or a 0-dim tensor beside a dimensioned one.
    """
    if a is b:
        return a
    cat_a, cat_b = _category(a), _category(b)
    if a_scalar != b_scalar:
        tensor, scalar = (b, a) if a_scalar else (a, b)
        if _category(scalar) > _category(tensor):
            return scalar
        return tensor
    if cat_a != cat_b:
        return a if cat_a > cat_b else b
    return np.promote_types(a, b)
