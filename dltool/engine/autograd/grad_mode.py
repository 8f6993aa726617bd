"""Switches for gradient recording: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``.

The flag is process-global (PyTorch's is per thread); dltool runs its data workers as processes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _GradState:
    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = True


state = _GradState()


def is_grad_enabled() -> bool:
    """True when new operations are recorded for backward."""
    return state.enabled


class _GradModeContext:
    """A context manager that is also a decorator, like PyTorch's grad-mode classes."""

    _mode: bool = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and callable(args[0]):  # bare ``@no_grad``
            return cls()(args[0])
        return super().__new__(cls)

    def __enter__(self) -> None:
        self._previous = state.enabled
        state.enabled = self._mode

    def __exit__(self, *exc: object) -> None:
        state.enabled = self._previous

    def __call__(self, fn: F) -> F:
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous, state.enabled = state.enabled, mode
            try:
                return fn(*args, **kwargs)
            finally:
                state.enabled = previous

        return wrapper  # type: ignore[return-value]


class no_grad(_GradModeContext):
    """Run without recording operations: results do not require grad and cost no graph.

    Example:
        >>> x = tensor([1.0], requires_grad=True)
        >>> with no_grad():
        ...     y = x * 2
        >>> y.requires_grad
        False
    """

    _mode = False


class enable_grad(_GradModeContext):
    """Record operations again inside a ``no_grad`` block."""

    _mode = True


class inference_mode(_GradModeContext):
    """Like ``no_grad``; dltool has no separate inference tensors, so the two behave the same."""

    def __init__(self, mode: bool = True) -> None:
        self._mode = not mode


class set_grad_enabled(_GradModeContext):
    """Turn recording on or off; works as a function call, a context manager or a decorator."""

    def __init__(self, mode: bool) -> None:
        self._mode = bool(mode)
        self._previous = state.enabled
        state.enabled = self._mode

    def __enter__(self) -> None:
        pass

    def __call__(self, fn: F) -> F:
        state.enabled = self._previous  # as a decorator it must not switch the mode right away
        return super().__call__(fn)
