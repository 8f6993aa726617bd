"""numpy's argument names, which PyTorch accepts beside its own: ``axis=`` and ``keepdims=``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

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
