"""``DataLoader``: batches from a dataset, in the main process or in worker processes.

dltool's addition to PyTorch's loader is its state: ``state_dict()`` holds the current epoch's
order and how many batches were handed out, and ``load_state_dict()`` makes the next iteration
continue from there, so a resumed run sees exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

from dltool.engine import backend
from dltool.engine.utils.data._collate import default_collate, default_convert
from dltool.engine.utils.data._fetch import _InfiniteConstantSampler
from dltool.engine.utils.data._iter import _Progress, _SingleProcessDataLoaderIter
from dltool.engine.utils.data._workers import _MultiProcessingDataLoaderIter
from dltool.engine.utils.data.dataset import Dataset, IterableDataset
from dltool.engine.utils.data.sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

_STATE_KEYS = ("batches_yielded", "base_seed", "sampler", "generator")
_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Iterate over ``dataset`` in batches, with PyTorch's arguments and semantics.

    ``pin_memory`` is accepted and ignored (numpy memory is never pinned). With ``num_workers > 0``
    workers are forked on Linux (spawned elsewhere, or as ``multiprocessing_context`` says); batches
    arrive in order, and an error in a worker is raised here with the worker's traceback and ends
    the epoch. Datasets with ``__getitems__`` fetch a whole batch per call (the fast path).

    Example:
        >>> from dltool.engine.utils.data import TensorDataset
        >>> loader = DataLoader(TensorDataset(arange(10)), batch_size=4, shuffle=True)
        >>> [len(x) for (x,) in loader]
        [4, 4, 2]
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: backend.Generator | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
    ) -> None:
        if num_workers < 0:
            raise ValueError(
                "num_workers option should be non-negative; use num_workers=0 to disable multiprocessing."
            )
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing."
                "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None."
            )
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        sampler, batch_sampler, batch_size, drop_last = _resolve_samplers(
            dataset, batch_size, shuffle, sampler, batch_sampler, drop_last, generator
        )
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.collate_fn = collate_fn or (default_collate if batch_sampler is not None else default_convert)
        self.persistent_workers = persistent_workers
        self._iterator: Any = None
        self._progress: _Progress | None = None
        self._pending: dict[str, Any] | None = None
        self._initialized = True

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_initialized") and name in _FROZEN:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def multiprocessing_context(self) -> Any:
        return self._multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, context: Any) -> None:
        if context is not None and self.num_workers == 0:
            raise ValueError(
                "multiprocessing_context can only be used with multi-process loading "
                f"(num_workers > 0), but got num_workers={self.num_workers}"
            )
        if isinstance(context, str):
            methods = multiprocessing.get_all_start_methods()
            if context not in methods:
                raise ValueError(
                    "multiprocessing_context option should specify a valid start method in "
                    f"{methods!r}, but got multiprocessing_context={context!r}"
                )
            context = multiprocessing.get_context(context)
        self._multiprocessing_context = context

    @property
    def _is_iterable(self) -> bool:
        return isinstance(self.dataset, IterableDataset)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Any:
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self) -> int:
        if not self._is_iterable:
            return len(self._index_sampler)
        length = len(self.dataset)  # type: ignore[arg-type]
        if self.batch_size is None:
            return length
        return length // self.batch_size if self.drop_last else -(-length // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        resume, self._pending = self._pending, None
        iterator: Any
        if self.num_workers == 0:
            iterator = _SingleProcessDataLoaderIter(self, resume)
        elif not self.persistent_workers:
            iterator = _MultiProcessingDataLoaderIter(self, resume)
        elif self._iterator is None or self._iterator._shutdown:
            iterator = self._iterator = _MultiProcessingDataLoaderIter(self, resume)
        else:
            iterator = self._iterator
            iterator._reset(resume)
        self._progress = iterator._progress
        return iterator

    # ------------------------------------------------------------ state

    def _stateful_sampler(self) -> Any:
        sampler = self.batch_sampler.sampler if isinstance(self.batch_sampler, BatchSampler) else self.sampler
        return sampler if callable(getattr(sampler, "state_dict", None)) else None

    def state_dict(self) -> dict[str, Any]:
        """Where the epoch in progress stands, so ``load_state_dict`` can continue it exactly.

        Holds ``batches_yielded`` and ``base_seed`` of the epoch in progress (0 and None between
        epochs), the sampler's state (its epoch order, for the built-in random samplers) and the
        explicit generator's state. A custom sampler without ``state_dict`` is replayed from its
        start and fast-forwarded, which is exact only when its order is deterministic; so is an
        ``IterableDataset``, whose skipped batches are fetched and dropped.
        """
        if self._pending is not None:
            return dict(self._pending)
        progress = None if self._progress is None or self._progress.finished else self._progress
        sampler = self._stateful_sampler()
        sampler_state = None if sampler is None else sampler.state_dict()
        if sampler_state is not None and progress is None:
            sampler_state["indices"] = None
        return {
            "batches_yielded": 0 if progress is None else progress.batches_yielded,
            "base_seed": None if progress is None else progress.base_seed,
            "sampler": sampler_state,
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from ``state_dict``; the next iteration continues that epoch."""
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise KeyError(f"DataLoader state_dict is missing keys {missing}")
        if state_dict["generator"] is not None and self.generator is not None:
            self.generator.set_state(state_dict["generator"])
        sampler = self._stateful_sampler()
        if sampler is not None and state_dict["sampler"] is not None:
            sampler.load_state_dict(state_dict["sampler"])
        self._progress = None
        self._pending = dict(state_dict) if state_dict["base_seed"] is not None else None


def _resolve_samplers(
    dataset: Dataset,
    batch_size: int | None,
    shuffle: bool | None,
    sampler: Sampler | None,
    batch_sampler: Sampler | None,
    drop_last: bool,
    generator: backend.Generator | None,
) -> tuple[Sampler, Sampler | None, int | None, bool]:
    """PyTorch's rules for which samplers a loader uses, with its errors for conflicting options."""
    if isinstance(dataset, IterableDataset):
        for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value is not None and value is not False:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified {name} option, but got {name}={value}"
                )
        sampler = _InfiniteConstantSampler()
    shuffle = bool(shuffle)
    if sampler is not None and shuffle:
        raise ValueError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
            )
        batch_size, drop_last = None, False
    elif batch_size is None and drop_last:
        raise ValueError(
            "batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
        )
    if sampler is None:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)  # type: ignore[arg-type]
    if batch_size is not None and batch_sampler is None:
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    return sampler, batch_sampler, batch_size, drop_last
