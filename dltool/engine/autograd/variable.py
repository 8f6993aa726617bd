"""``Variable``: the pre-0.4 wrapper that PyTorch merged into ``Tensor`` and still accepts."""

from __future__ import annotations

import warnings
from typing import Any


class _VariableMeta(type):
    def __instancecheck__(cls, obj: object) -> bool:
        from dltool.engine.tensor import Tensor  # tensor.py imports this package

        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """``Variable(tensor, requires_grad=False)`` returns a tensor, as in PyTorch since 0.4.

    The result shares ``tensor``'s storage, starts no history of its own (a leaf) and requires
    grad as asked. Every tensor is an instance of ``Variable``.

    Example:
        >>> w = Variable(zeros(3), requires_grad=True)
        >>> w.requires_grad, isinstance(w, Variable)
        (True, True)
    """

    def __new__(cls, data: Any = None, requires_grad: bool = False, volatile: bool = False) -> Any:
        from dltool.engine import creation
        from dltool.engine.tensor import Tensor

        if volatile:
            warnings.warn(
                "volatile was removed and now has no effect. Use `with torch.no_grad():` instead.",
                UserWarning,
                stacklevel=2,
            )
        if data is None:
            data = creation.empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        return data.detach().requires_grad_(requires_grad)
