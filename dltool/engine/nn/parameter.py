"""``Parameter``: the tensor type a ``Module`` registers as a learnable weight."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad and that modules register when assigned as an attribute.

    ``Parameter(t)`` shares ``t``'s storage. Ops on a parameter return plain tensors.

    Example:
        >>> p = Parameter(zeros(2))
        >>> p.requires_grad, p.is_leaf
        (True, True)
    """

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        if data is None:
            data = Tensor._make(np.zeros(0, dtype=np.float32))
        if isinstance(data, Tensor):
            super().__init__(data._data, requires_grad=requires_grad)
            self._version_counter = data._version_counter
        else:
            super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        result = Parameter(Tensor._make(self._data.copy()), self.requires_grad)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild_parameter, (backend.move(self._data, backend.CPU), self.requires_grad))


def _rebuild_parameter(array: Any, requires_grad: bool) -> Parameter:
    return Parameter(Tensor._make(array), requires_grad)
