"""Datasets: the map-style and iterable protocols, tensor datasets, subsets, concatenation, splits.

A map-style dataset may define ``__getitems__(indices)``, as PyTorch 2.x lets it, to fetch a whole
batch at once. Datasets that hold whole arrays return a ``BatchedSamples`` from it: the batch is
made by fancy-indexing each array once, and ``default_collate`` hands it on without a per-sample
collate (the loader's fast path).
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from dltool.engine import backend
from dltool.engine.tensor import Tensor

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """A map from keys (usually ``0 .. len - 1``) to samples; subclasses define ``__getitem__``."""

    def __getitem__(self, index: Any) -> T_co:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset[T_co]) -> ConcatDataset[T_co]:
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A stream of samples; subclasses define ``__iter__``.

    With ``num_workers > 0`` every worker iterates its own copy, so split the stream in
    ``__iter__`` with ``get_worker_info()`` to avoid duplicates, as in PyTorch.
    """

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")

    def __add__(self, other: Dataset[T_co]) -> ChainDataset:  # type: ignore[override]
        return ChainDataset([self, other])


class BatchedSamples(Sequence):
    """A batch that is already collated, as ``__getitems__`` of an in-memory dataset returns it.

    It still reads as a sequence of samples (``batch[i]`` is the tuple of the ``i``-th rows), so a
    custom ``collate_fn`` sees what PyTorch's contract promises; ``default_collate`` returns
    ``collated`` as it is. dltool's own addition: PyTorch has no such type.

    Args:
        collated: one batched tensor per sample field, as ``default_collate`` would build them.
    """

    def __init__(self, collated: list[Tensor]) -> None:
        self.collated = collated

    def __len__(self) -> int:
        return len(self.collated[0])

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return tuple(field[index] for field in self.collated)


class TensorDataset(Dataset[tuple[Tensor, ...]]):
    """Samples are the ``index``-th rows of each tensor (first dimension shared).

    Example:
        >>> ds = TensorDataset(arange(6).reshape(3, 2), tensor([0, 1, 0]))
        >>> ds[1]
        (tensor([2, 3]), tensor(1))
    """

    def __init__(self, *tensors: Tensor) -> None:
        if any(t.size(0) != tensors[0].size(0) for t in tensors):
            raise ValueError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> BatchedSamples:
        index = np.asarray(indices, dtype=np.int64)
        return BatchedSamples([t[index] for t in self.tensors])

    def __len__(self) -> int:
        return self.tensors[0].size(0)


class ConcatDataset(Dataset[T_co]):
    """The datasets one after another."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> T_co:
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx - (self.cumulative_sizes[dataset_idx - 1] if dataset_idx else 0)
        return self.datasets[dataset_idx][sample_idx]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = datasets

    def __iter__(self) -> Iterator:
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError("ChainDataset only supports IterableDataset")
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)  # type: ignore[arg-type]


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order.

    A batch of positions is mapped to the parent's indices in one numpy gather (with a Python
    loop, a 54,000-image training split took 0.043 s per loader epoch instead of 0.028 s). The
    gather reads a copy of ``indices`` made when they are assigned: assign a new sequence to
    ``indices`` to change the subset, rather than editing the old one in place.
    """

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    @property
    def indices(self) -> Sequence[int]:
        return self._indices

    @indices.setter
    def indices(self, indices: Sequence[int]) -> None:
        self._indices = indices
        self._index_array = np.asarray(indices, dtype=np.int64)

    def _parent_indices(self, positions: Sequence[int]) -> list[int]:
        return self._index_array[np.asarray(positions, dtype=np.int64)].tolist()

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, list):
            return self.dataset[self._parent_indices(idx)]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        parent_indices = self._parent_indices(indices)
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(parent_indices)  # type: ignore[attr-defined]
        return [self.dataset[i] for i in parent_indices]

    def __len__(self) -> int:
        return len(self.indices)


def _split_lengths(lengths: Sequence[int | float], total: int) -> list[int]:
    """Fractions summing to 1 become counts, the remainder spread round-robin (PyTorch's rule)."""
    if not (math.isclose(sum(lengths), 1) and sum(lengths) <= 1):
        return [int(n) for n in lengths]
    counts = []
    for i, frac in enumerate(lengths):
        if frac < 0 or frac > 1:
            raise ValueError(f"Fraction at index {i} is not between 0 and 1")
        counts.append(int(math.floor(total * frac)))
    for i in range(total - sum(counts)):
        counts[i % len(counts)] += 1
    for i, n in enumerate(counts):
        if n == 0:
            warnings.warn(
                f"Length of split at index {i} is 0. This might result in an empty dataset.",
                stacklevel=3,
            )
    return counts


def random_split(
    dataset: Dataset[T_co],
    lengths: Sequence[int | float],
    generator: backend.Generator | None = backend.default_generator,
) -> list[Subset[T_co]]:
    """Split ``dataset`` at random into non-overlapping subsets of the given lengths or fractions.

    Example:
        >>> train, val = random_split(range(10), [0.8, 0.2], generator=Generator().manual_seed(0))
        >>> len(train), len(val)
        (8, 2)
    """
    total = len(dataset)  # type: ignore[arg-type]
    counts = _split_lengths(lengths, total)
    if sum(counts) != total:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    indices = backend.rng(generator).permutation(total).tolist()
    bounds = np.cumsum([0, *counts]).tolist()
    return [Subset(dataset, indices[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
