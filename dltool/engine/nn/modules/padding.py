"""Padding layers over ``F.pad``: ``ZeroPad``, ``ConstantPad``, ``ReflectionPad``, ``ReplicationPad``
and ``CircularPad`` in 1, 2 and 3 dims. An int ``padding`` pads every side by that much."""

from __future__ import annotations

from collections.abc import Sequence

from dltool.engine.nn import functional as F
from dltool.engine.nn.modules.module import Module
from dltool.engine.tensor import Tensor


def _sides(padding: int | Sequence[int], dims: int) -> tuple[int, ...]:
    """``padding`` as ``(left, right, top, bottom, ...)`` for ``dims`` padded dims."""
    return (padding,) * (2 * dims) if isinstance(padding, int) else tuple(padding)


class _PadNd(Module):
    """Pads the last ``_dims`` dims by ``padding`` with ``F.pad``'s ``_mode``."""

    _dims = 1
    _mode = "constant"

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__()
        self.padding = _sides(padding, self._dims)

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dim of ``(C, W)`` or ``(N, C, W)`` with ``value``."""


class ConstantPad2d(_ConstantPadNd):
    """Pads the last two dims of ``(C, H, W)`` or ``(N, C, H, W)`` with ``value``."""

    _dims = 2


class ConstantPad3d(_ConstantPadNd):
    _dims = 3


class _Zeros(_ConstantPadNd):
    """Makes a constant pad of zeros, shown by its padding alone (``ZeroPad2d`` is, as in
    PyTorch, a ``ConstantPad2d``)."""

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad1d(_Zeros, ConstantPad1d):
    """Pads the last dim with zeros."""


class ZeroPad2d(_Zeros, ConstantPad2d):
    """Pads the last two dims with zeros."""


class ZeroPad3d(_Zeros, ConstantPad3d):
    pass


class _ReflectionPadNd(_PadNd):
    _mode = "reflect"


class ReflectionPad1d(_ReflectionPadNd):
    """Pads the last dim by its reflection about the edge (the edge not repeated)."""


class ReflectionPad2d(_ReflectionPadNd):
    """Pads the last two dims by their reflection about the edges (the edges not repeated)."""

    _dims = 2


class ReflectionPad3d(_ReflectionPadNd):
    _dims = 3


class _ReplicationPadNd(_PadNd):
    _mode = "replicate"


class ReplicationPad1d(_ReplicationPadNd):
    """Pads the last dim by repeating its edge values."""


class ReplicationPad2d(_ReplicationPadNd):
    """Pads the last two dims by repeating their edge values."""

    _dims = 2


class ReplicationPad3d(_ReplicationPadNd):
    _dims = 3


class _CircularPadNd(_PadNd):
    _mode = "circular"

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (self._dims + 1, self._dims + 2):
            raise ValueError(
                f"expected {self._dims + 1}D or {self._dims + 2}D input (got {input.ndim}D input)"
            )
        return super().forward(input)


class CircularPad1d(_CircularPadNd):
    """Pads the last dim by wrapping around: the left pad comes from the right end and back."""


class CircularPad2d(_CircularPadNd):
    """Pads the last two dims by wrapping around (a torus)."""

    _dims = 2


class CircularPad3d(_CircularPadNd):
    _dims = 3
