"""PyTorch's tensor type names: the layout, the legacy typed constructors and the type strings.

``FloatTensor(2, 3)``, ``LongTensor([1, 2])``, ``isinstance(x, FloatTensor)``, ``x.type()`` and
``x.type("torch.DoubleTensor")`` work as in PyTorch. The type strings are PyTorch's own
(``"torch.FloatTensor"``, ``"torch.cuda.LongTensor"``), so code that compares them runs unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import backend, creation, dtypes
from dltool.engine.tensor import Tensor


class layout:
    """How a tensor's elements lie in memory. dltool has one layout, ``strided`` (dense)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


strided = layout("strided")

# ---------------------------------------------------------------- legacy typed constructors

_BY_NAME: dict[str, _TensorType] = {}  # "torch.FloatTensor", "torch.cuda.FloatTensor", ... -> type
_PREFIXES: dict[np.dtype, str] = {}  # float32 -> "Float"


class _TensorType(type):
    """The metaclass of ``FloatTensor`` and its kin: a constructor and an ``isinstance`` test."""

    dtype: np.dtype
    is_cuda: bool

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.is_cuda == cls.is_cuda

    def __call__(cls, *args: Any, device: Any = None) -> Tensor:  # type: ignore[override]
        expected = "cuda" if cls.is_cuda else "cpu"
        target = backend.device(expected if device is None else device)
        if target.type != expected:
            raise RuntimeError(
                f"legacy constructor expects device type: {expected} but device type: {target.type} was passed"
            )
        if len(args) == 1 and isinstance(args[0], Tensor):
            return cls._alias(args[0])
        sizes = _sizes(args)
        if sizes is not None:
            return creation.empty(*sizes, dtype=cls.dtype, device=target)
        if len(args) != 1:
            raise TypeError(f"new(): argument 'size' must be a tuple of ints, but got {args!r}")
        if isinstance(args[0], (int, float, bool, np.generic)):
            raise TypeError(f"new(): data must be a sequence (got {type(args[0]).__name__})")
        return creation.tensor(args[0], dtype=cls.dtype, device=target)

    def _alias(cls, tensor: Tensor) -> Tensor:
        if not isinstance(tensor, cls):
            raise TypeError(f"expected {_name(cls.dtype, cls.is_cuda)} (got {type_name(tensor)})")
        return tensor


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _sizes(args: tuple) -> tuple[int, ...] | None:
    """The shape that constructor arguments name, or None when they are data.

    Ints name a shape, and so does one tuple of ints: dltool's ``size()`` is a plain tuple where
    PyTorch's is a ``torch.Size``, and ``FloatTensor(x.size())`` must mean a shape.
    NOTE: PyTorch reads a literal tuple such as ``FloatTensor((2, 3))`` as data; a list works in both.
    """
    if len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    if not all(_is_int(n) for n in args):
        return None
    for n in args:
        if n < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {n}: {list(args)}")
    return tuple(int(n) for n in args) if args else (0,)


def _name(dtype: np.dtype, is_cuda: bool) -> str:
    return f"torch.{'cuda.' if is_cuda else ''}{_PREFIXES[dtype]}Tensor"


def _legacy_type(prefix: str, dtype: np.dtype) -> _TensorType:
    """Make ``<prefix>Tensor`` for the CPU and for CUDA; return the CPU one (``cuda_type`` finds the other)."""
    _PREFIXES[dtype] = prefix
    for is_cuda, module in ((False, "dltool.engine"), (True, "dltool.engine.cuda")):
        device = "a GPU" if is_cuda else "the CPU"
        doc = (
            f"``{prefix}Tensor(*sizes)`` or ``{prefix}Tensor(data)``: a {dtype} tensor on {device}, as "
            f"PyTorch's legacy constructor; ``isinstance(x, {prefix}Tensor)`` tests dtype and device."
        )
        namespace = {"dtype": dtype, "is_cuda": is_cuda, "__module__": module, "__doc__": doc}
        _BY_NAME[_name(dtype, is_cuda)] = _TensorType(f"{prefix}Tensor", (), namespace)
    return _BY_NAME[_name(dtype, False)]


def cuda_type(cpu_type: _TensorType) -> _TensorType:
    """The CUDA twin of a legacy CPU type (``cuda.FloatTensor`` for ``FloatTensor``)."""
    return _BY_NAME[_name(cpu_type.dtype, True)]


FloatTensor = _legacy_type("Float", dtypes.float32)
DoubleTensor = _legacy_type("Double", dtypes.float64)
HalfTensor = _legacy_type("Half", dtypes.float16)
LongTensor = _legacy_type("Long", dtypes.int64)
IntTensor = _legacy_type("Int", dtypes.int32)
ShortTensor = _legacy_type("Short", dtypes.int16)
CharTensor = _legacy_type("Char", dtypes.int8)
ByteTensor = _legacy_type("Byte", dtypes.uint8)
BoolTensor = _legacy_type("Bool", dtypes.bool)

# ---------------------------------------------------------------- Tensor.type


def type_name(tensor: Tensor) -> str:
    """PyTorch's type string of ``tensor``: ``"torch.FloatTensor"``, ``"torch.cuda.LongTensor"``, ..."""
    return _name(tensor.dtype, tensor.is_cuda)


def cast(tensor: Tensor, target: Any) -> Tensor:
    """``tensor`` as the type a type string, a legacy type or a dtype names (itself if it is one).

    Raises:
        ValueError: ``target`` is a string that names no type.
    """
    if isinstance(target, str):
        if target not in _BY_NAME:
            raise ValueError(f"invalid type: {target!r}")
        target = _BY_NAME[target]
    if not isinstance(target, _TensorType):
        return tensor.to(dtypes.to_dtype(target))
    device = tensor.device if tensor.is_cuda == target.is_cuda else "cuda" if target.is_cuda else "cpu"
    return tensor.to(device, target.dtype)
