"""The iterators a DataLoader hands out: the shared bookkeeping, and the single-process one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dltool.engine import backend
from dltool.engine.utils.data._fetch import create_fetcher

if TYPE_CHECKING:
    from dltool.engine.utils.data.dataloader import DataLoader


@dataclass
class _Progress:
    """Where the epoch in progress stands: the seed its workers got and the batches handed out."""

    base_seed: int
    batches_yielded: int = 0
    finished: bool = False


class _BaseDataLoaderIter:
    """One pass over a loader; counts the batches it hands out in ``_progress``.

    It keeps no reference to the loader, so dropping the loader frees (and stops) the workers.
    """

    def __init__(self, loader: DataLoader, resume: dict[str, Any] | None) -> None:
        self._dataset = loader.dataset
        self._is_iterable = loader._is_iterable
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._collate_fn = loader.collate_fn
        self._num_workers = loader.num_workers
        self._timeout = loader.timeout
        if resume is not None:
            self._base_seed = int(resume["base_seed"])
        else:
            self._base_seed = int(backend.rng(loader.generator).integers(0, 2**63))

    def _start_epoch(self, resume: dict[str, Any] | None) -> int:
        """Begin an epoch, fast-forwarded when resuming; returns the iterable batches to drop."""
        skip = 0 if resume is None else int(resume["batches_yielded"])
        self._progress = _Progress(self._base_seed, skip)
        self._sampler_iter = iter(self._index_sampler)
        if self._is_iterable:
            return skip
        for _ in range(skip):
            next(self._sampler_iter, None)
        return 0

    def _next_index(self) -> Any:
        return next(self._sampler_iter)

    def _next_data(self) -> Any:
        raise NotImplementedError

    def __iter__(self) -> _BaseDataLoaderIter:
        return self

    def __next__(self) -> Any:
        try:
            data = self._next_data()
        except StopIteration:
            self._progress.finished = True
            raise
        self._progress.batches_yielded += 1
        return data


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader: DataLoader, resume: dict[str, Any] | None) -> None:
        super().__init__(loader, resume)
        drop = self._start_epoch(resume)
        self._fetcher = create_fetcher(
            self._is_iterable, self._dataset, self._auto_collation, self._collate_fn, self._drop_last
        )
        for _ in range(drop):
            self._next_data()

    def _next_data(self) -> Any:
        return self._fetcher.fetch(self._next_index())
