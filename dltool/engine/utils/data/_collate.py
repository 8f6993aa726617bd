"""``default_collate`` and ``default_convert``: samples to batched tensors, as PyTorch builds them."""

from __future__ import annotations

import collections.abc
import copy
from typing import Any

import numpy as np

from dltool.engine import dtypes
from dltool.engine.ops.shape import stack
from dltool.engine.tensor import Tensor
from dltool.engine.utils.data.dataset import BatchedSamples

_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _rebuild(elem: Any, values: list) -> Any:
    """A container of ``elem``'s type holding ``values`` (a list where the type can't be rebuilt)."""
    if isinstance(elem, tuple):
        return type(elem)(*values) if _is_namedtuple(elem) else values
    if isinstance(elem, collections.abc.MutableSequence):
        clone = copy.copy(elem)
        clone[:] = values
        return clone
    try:
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch: Any) -> Any:
    """Stack a list of samples into a batch, keeping their structure.

    Tensors and numpy arrays are stacked on a new first dimension; Python floats become a float64
    tensor and ints an int64 tensor; strings stay a list; dicts, lists, tuples (as lists) and
    namedtuples are collated field by field. A ``BatchedSamples`` is already collated.

    Example:
        >>> default_collate([(tensor([1.0]), 0), (tensor([2.0]), 1)])
        [tensor([[1.],
                [2.]]), tensor([0, 1])]
    """
    if isinstance(batch, BatchedSamples):
        return batch.collated
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch, 0)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OSUV":
            raise TypeError(_ERROR.format(elem.dtype))
        return stack([Tensor._make(x) for x in batch], 0)
    if isinstance(elem, (np.number, np.bool_)):
        return Tensor._make(np.asarray(batch, dtype=dtypes.to_dtype(elem.dtype)))
    if isinstance(elem, bool):
        return Tensor._make(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor._make(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor._make(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(collated)
        except TypeError:
            return collated
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return _rebuild(elem, [default_collate(list(field)) for field in zip(*batch, strict=True)])
    raise TypeError(_ERROR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """numpy arrays to tensors inside ``data``'s structure (the loader's ``batch_size=None`` path)."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSUV":
        return Tensor._make(data)
    if isinstance(data, (np.number, np.bool_)):
        return Tensor._make(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, (str, bytes)) or not isinstance(data, collections.abc.Sequence):
        return data
    return _rebuild(data, [default_convert(x) for x in data])
