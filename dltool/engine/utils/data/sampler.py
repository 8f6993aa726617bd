"""Samplers: the order in which a DataLoader visits a dataset, and how indices group into batches.

The built-in samplers draw a whole epoch's index array when iteration starts. The random ones keep
that array as their state (``state_dict`` / ``load_state_dict``, dltool's addition), so a resumed
run replays the interrupted epoch exactly. ``BatchSampler`` slices that array instead of walking it
one index at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from dltool.engine import backend
from dltool.engine.tensor import Tensor

T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class: ``__iter__`` yields dataset indices (or lists of them, for batch samplers)."""

    def __init__(self, data_source: Sized | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError


class _ArraySampler(Sampler[int]):
    """A sampler whose epoch is an index array drawn when iteration starts."""

    def _epoch_indices(self) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        return iter(self._epoch_indices().tolist())


class SequentialSampler(_ArraySampler):
    """``0, 1, ..., len(data_source) - 1``."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def _epoch_indices(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


class _RandomArraySampler(_ArraySampler):
    """A random epoch array that is kept as state, and replayed once after ``load_state_dict``."""

    generator: backend.Generator | None
    _current: np.ndarray | None = None
    _replay: np.ndarray | None = None

    def _draw(self) -> np.ndarray:
        raise NotImplementedError

    def _epoch_indices(self) -> np.ndarray:
        if self._replay is not None:
            self._current, self._replay = self._replay, None
        else:
            self._current = self._draw()
        return self._current

    def state_dict(self) -> dict[str, Any]:
        """The current epoch's indices and the explicit generator's state (dltool's addition)."""
        return {
            "indices": None if self._current is None else self._current.copy(),
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next iteration replay the saved epoch, and restore the generator."""
        indices = state_dict["indices"]
        self._replay = None if indices is None else np.asarray(indices, dtype=np.int64)
        if state_dict["generator"] is not None and self.generator is not None:
            self.generator.set_state(state_dict["generator"])


class RandomSampler(_RandomArraySampler):
    """A random permutation each epoch, or ``num_samples`` draws with replacement.

    Without ``generator`` each epoch seeds a fresh generator from the default one, as PyTorch
    does, so ``manual_seed`` fixes the order.
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: backend.Generator | None = None,
    ) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={self.num_samples}"
            )

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _draw(self) -> np.ndarray:
        if self.generator is None:
            seed = int(backend.rng(None).integers(0, 2**63))
            rng = np.random.Generator(np.random.PCG64(seed))
        else:
            rng = self.generator.numpy
        n = len(self.data_source)
        if self.replacement:
            return rng.integers(0, n, self.num_samples, dtype=np.int64)
        rounds = [rng.permutation(n) for _ in range(-(-self.num_samples // n))]
        return np.concatenate(rounds)[: self.num_samples]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_RandomArraySampler):
    """The given indices in a random order, without replacement."""

    def __init__(self, indices: Sequence[int], generator: backend.Generator | None = None) -> None:
        self.indices = indices
        self.generator = generator

    def _draw(self) -> np.ndarray:
        order = backend.rng(self.generator).permutation(len(self.indices))
        return np.asarray(self.indices, dtype=np.int64)[order]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_RandomArraySampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``."""

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int,
        replacement: bool = True,
        generator: backend.Generator | None = None,
    ) -> None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={num_samples}"
            )
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        array = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {array.shape}")
        if not replacement and num_samples > len(array):
            raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
        self.weights = Tensor._make(array)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def _draw(self) -> np.ndarray:
        p = self.weights._data / self.weights._data.sum()
        rng = backend.rng(self.generator)
        return rng.choice(len(p), self.num_samples, replace=self.replacement, p=p).astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list[int]]):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    Example:
        >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(
                f"batch_size should be a positive integer value, but got batch_size={batch_size}"
            )
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        # NOTE: the epoch is drawn here, not at the first next(), so a loader's state taken before
        # its first batch already holds the epoch's order.
        if isinstance(self.sampler, _ArraySampler):
            return self._slices(self.sampler._epoch_indices())
        return self._chunks(iter(self.sampler))

    def _slices(self, indices: np.ndarray) -> Iterator[list[int]]:
        stop = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
        for start in range(0, stop, self.batch_size):
            yield indices[start : start + self.batch_size].tolist()

    def _chunks(self, indices: Iterator[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        for idx in indices:
            batch.append(idx)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size  # type: ignore[arg-type]
        return -(-len(self.sampler) // self.batch_size)  # type: ignore[arg-type]
