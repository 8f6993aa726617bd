"""``Parameter``: the tensor type a ``Module`` registers as a learnable weight."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.creation import empty
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


# The slot that holds a tensor's array, reached past the guard that uninitialized tensors put on it.
_STORAGE = Tensor.__dict__["_data"]

_UNINITIALIZED_MESSAGE = (
    "Attempted to use an uninitialized parameter. This error happens when you are using a `LazyModule` "
    "or explicitly manipulating `torch.nn.parameter.{}` objects. When using LazyModules Call `forward` "
    "with a dummy batch to initialize the parameters before calling torch functions"
)


class UninitializedTensorMixin:
    """A tensor whose shape is not known yet: a lazy module's parameter or buffer before its first forward.

    Any use of its data raises ``ValueError``, as in PyTorch; its dtype and device can be read and
    changed (``Module.to`` works), and ``materialize`` gives it a shape and turns it into
    ``cls_to_become``.
    """

    __slots__ = ()
    cls_to_become: type

    @property
    def _data(self) -> Any:
        raise ValueError(_UNINITIALIZED_MESSAGE.format(type(self).__name__))

    @_data.setter
    def _data(self, value: Any) -> None:
        _STORAGE.__set__(self, value)

    def materialize(self, shape: tuple, device: Any = None, dtype: Any = None) -> None:
        """Become a ``cls_to_become`` of ``shape`` (zeros), on this tensor's device and dtype unless given."""
        storage = _STORAGE.__get__(self)
        device = backend.device_of(storage) if device is None else device
        array = empty(tuple(shape), device=device, dtype=storage.dtype if dtype is None else dtype)._data
        self.__class__ = self.cls_to_become
        self._data = array

    @property
    def shape(self) -> tuple[int, ...]:
        raise RuntimeError(
            "Can't access the shape of an uninitialized parameter or buffer. This error usually happens "
            "in `load_state_dict` when trying to load an uninitialized parameter into an initialized one. "
            "Call `forward` to initialize the parameters before accessing their attributes."
        )

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE.__get__(self).dtype

    @property
    def device(self) -> backend.device:
        return backend.device_of(_STORAGE.__get__(self))

    def is_floating_point(self) -> bool:
        return self.dtype.kind == "f"

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """A plain empty tensor of the converted dtype and device, as PyTorch returns for a parameter.

        ``Module.to`` moves its storage into the parameter, which stays uninitialized.
        """
        return Tensor._make(_STORAGE.__get__(self)).to(*args, **kwargs)

    def detach(self) -> Tensor:
        """A new uninitialized tensor of the same kind: what ``state_dict`` holds for it, as in PyTorch."""
        return type(self)(False, self.device, self.dtype)

    def __deepcopy__(self, memo: dict) -> Tensor:
        if id(self) not in memo:
            memo[id(self)] = type(self)(self.requires_grad, self.device, self.dtype)
        return memo[id(self)]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _empty_storage(requires_grad: bool, device: Any, dtype: Any) -> Tensor:
    """The zero-size storage of an uninitialized tensor, checked by Tensor's own ``requires_grad`` rules."""
    return empty(0, device=device, dtype=dtype).requires_grad_(requires_grad)


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """A parameter whose shape a lazy module infers at its first forward; see ``UninitializedTensorMixin``.

    Example:
        >>> p = UninitializedParameter()
        >>> p.materialize((2, 3))
        >>> type(p).__name__, tuple(p.shape)
        ('Parameter', (2, 3))
    """

    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(_empty_storage(requires_grad, device, dtype), requires_grad=False)
        self._requires_grad = requires_grad


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """A buffer (running statistics) whose shape a lazy module infers at its first forward."""

    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__(_empty_storage(requires_grad, device, dtype))
        self._requires_grad = requires_grad

    def to(self, *args: Any, **kwargs: Any) -> UninitializedBuffer:
        """Still uninitialized, with the converted dtype and device (``Module.to`` replaces buffers)."""
        converted = super().to(*args, **kwargs)
        return UninitializedBuffer(self.requires_grad, converted.device, converted.dtype)


def is_lazy(param: Any) -> bool:
    """Whether ``param`` is an ``UninitializedParameter`` or ``UninitializedBuffer``."""
    return isinstance(param, UninitializedTensorMixin)
