"""What ops do at their boundary as PyTorch does: argument errors, numpy's ``axis=``/``keepdims=``
spellings, and results written to ``out=``."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.tensor import Tensor


def write_out(out: Any, result: Any, name: str) -> Any:
    """``result`` written into ``out`` as PyTorch's ``out=`` does; ``result`` itself when ``out`` is None.

    ``out`` of another shape is resized (with PyTorch's warning unless it was empty); its dtype is
    kept, and a tuple result goes into a tuple of tensors.

    Raises:
        RuntimeError: a gradient would be needed, the devices differ, or a float result meets an
            integer ``out``.
    """
    if out is None:
        return result
    if isinstance(result, tuple):
        if not isinstance(out, (tuple, list)) or len(out) != len(result):
            raise TypeError(f"{name}(): argument 'out' must be a tuple of {len(result)} Tensors")
        written = tuple(write_out(o, r, name) for o, r in zip(out, result, strict=True))
        return type(result)(*written) if hasattr(result, "_fields") else written
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if _grad_state.enabled and (result.requires_grad or out.requires_grad):
        raise RuntimeError(
            f"{name}(): functions with out=... arguments don't support automatic differentiation, "
            "but one of the arguments requires grad."
        )
    if out.device != result.device:
        raise RuntimeError(
            f"Expected out tensor to have device {result.device}, but got {out.device} instead"
        )
    if out.shape != result.shape:
        _resize(out, result.shape)
    out._write(result)
    return out


def _resize(out: Tensor, shape: tuple) -> None:
    """Give ``out`` new storage of ``shape``, warning as PyTorch does unless it was empty."""
    if out.numel():
        warnings.warn(
            f"An output with one or more elements was resized since it had shape {list(out.shape)}, "
            f"which does not match the required output shape {list(shape)}. This behavior is "
            "deprecated, and in a future PyTorch release outputs will not be resized unless they have "
            "zero elements. You can explicitly reuse an out tensor t by resizing it, inplace, to zero "
            "elements with t.resize_(0).",
            UserWarning,
            stacklevel=4,
        )
    out.data = out._xp().empty(shape, dtype=out.dtype)


def with_out(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with PyTorch's keyword-only ``out=``, handled by ``write_out``."""

    @functools.wraps(fn)
    def op(*args: Any, out: Any = None, **kwargs: Any) -> Any:
        return write_out(out, fn(*args, **kwargs), fn.__name__)

    signature = inspect.signature(fn)
    keyword = inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None)
    op.__signature__ = signature.replace(parameters=[*signature.parameters.values(), keyword])  # type: ignore[attr-defined]
    return op


_TYPE_NAMES = {
    "bool": "Bool", "uint8": "Byte", "int8": "Char", "int16": "Short", "int32": "Int",
    "int64": "Long", "float16": "Half", "float32": "Float", "float64": "Double",
}  # fmt: skip


def type_name(dtype: Any) -> str:
    """PyTorch's name of a dtype in messages (``Float``, ``Long``)."""
    return _TYPE_NAMES.get(str(dtype), str(dtype))


def require_float(name: str, input: Tensor) -> None:
    """PyTorch's error for an op that has no kernel for integer or bool tensors."""
    if input.dtype.kind != "f":
        raise NotImplementedError(f"\"{name}_cpu\" not implemented for '{type_name(input.dtype)}'")


def tensor_arg(value: Any, name: str, argument: str, position: int) -> Tensor:
    """``value``, which must be a tensor (PyTorch's TypeError for a number)."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name}(): argument '{argument}' (position {position}) must be Tensor, not {type(value).__name__}"
        )
    return value


# numpy's argument names, which PyTorch accepts beside its own
_ALIASES = (("axis", "dim"), ("keepdims", "keepdim"))


def numpy_aliases(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` taking ``axis=`` for ``dim=`` and ``keepdims=`` for ``keepdim=``, as PyTorch's ops do.

    Example:
        >>> import dltool.engine as torch
        >>> torch.ones(2, 3).sum(axis=1, keepdims=True).shape
        (2, 1)
    """

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            for alias, name in _ALIASES:
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}() got an unexpected keyword argument '{alias}'")
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)

    return op
