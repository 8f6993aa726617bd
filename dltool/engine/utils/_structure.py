"""Walking the nested outputs of a function: tuples, lists and dict values down to their leaves."""

from __future__ import annotations

from typing import Any


def leaves(item: Any, kind: type) -> list:
    """The instances of ``kind`` in ``item``, in order, through tuples, lists and dict values: the
    tensors of a module's output, or the values of a captured graph's."""
    if isinstance(item, kind):
        return [item]
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (tuple, list)):
        return [leaf for x in item for leaf in leaves(x, kind)]
    return []
