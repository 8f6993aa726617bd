"""Worker processes: the loop each worker runs, and the main-process iterator that feeds them.

The main process sends ``(task index, batch indices)`` to the workers round-robin, keeps
``prefetch_factor`` batches per worker in flight, and reorders the results so batches arrive in the
sampler's order. Tensors travel pickled as numpy arrays (``Tensor.__reduce_ex__``).
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
import queue
import random
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dltool.engine import _threads, backend
from dltool.engine.utils.data._fetch import create_fetcher
from dltool.engine.utils.data._iter import _BaseDataLoaderIter
from dltool.engine.utils.data._shared import discard, discard_stale, new_prefix, pack, unpack

if TYPE_CHECKING:
    from dltool.engine.utils.data.dataloader import DataLoader

# How often a blocked worker checks that its parent lives, and the main process that workers do.
MP_STATUS_CHECK_INTERVAL = 1.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker: its id, the worker count, its seed."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """This worker's ``WorkerInfo``, or None in the main process."""
    return _worker_info


class _KeyErrorMessage(str):
    """KeyError shows its argument's repr; this keeps the traceback's line breaks readable."""

    def __repr__(self) -> str:
        return self


class ExceptionWrapper:
    """An exception caught in a worker, carried to the main process with its traceback text."""

    def __init__(self, where: str) -> None:
        exc_type, exc, tb = sys.exc_info()
        self.exc_type = exc_type
        self.exc_msg = "".join(traceback.format_exception(exc_type, exc, tb))
        self.where = where

    def reraise(self) -> None:
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if self.exc_type is KeyError:
            msg = _KeyErrorMessage(msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            raise RuntimeError(msg) from None
        raise exception


class _ResumeIteration:
    """Sent to persistent workers at each new epoch; they answer once they are ready."""


@dataclass
class _IterableDatasetStopIteration:
    worker_id: int


def _seed_worker_rngs(base_seed: int, worker_id: int) -> int:
    """Seed the engine, numpy and ``random`` in a worker as PyTorch does; returns the engine seed."""
    seed = base_seed + worker_id
    random.seed(seed)
    backend.manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    return seed


def _watch_parent(parent_pid: int | None) -> int:
    """The pid whose exit ends this worker; on Linux the kernel then SIGKILLs it at once.

    A worker blocked in a dataset's ``__getitem__`` can't poll, and one that outlives the main
    process writes batches nobody unpacks.

    Args:
        parent_pid: The main process's pid, recorded before the fork, or None where the kill can't
            be tied to it; then the worker only polls the parent it finds.

    Returns:
        The pid ``os.getppid()`` must keep returning; it differs already if the parent died before
        the kill was armed.
    """
    if parent_pid is None:
        return os.getppid()
    if sys.platform.startswith("linux"):
        # NOTE: prctl is variadic and reads an unsigned long; should it fail (a seccomp sandbox),
        # the polling in _worker_loop still ends the worker
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))
    return parent_pid


def _answer(fetcher: Any, index: Any, is_iterable: bool, worker_id: int, shm_prefix: str) -> tuple[Any, bool]:
    """The reply to one task, and whether an iterable dataset has run out."""
    try:
        return pack(fetcher.fetch(index), shm_prefix), False
    except StopIteration:
        if is_iterable:
            return _IterableDatasetStopIteration(worker_id), True
        return ExceptionWrapper(f"in DataLoader worker process {worker_id}"), False
    except Exception:
        return ExceptionWrapper(f"in DataLoader worker process {worker_id}"), False


def _worker_loop(
    is_iterable: bool,
    dataset: Any,
    index_queue: Any,
    data_queue: Any,
    done_event: Any,
    auto_collation: bool,
    collate_fn: Callable,
    drop_last: bool,
    base_seed: int,
    init_fn: Callable[[int], None] | None,
    worker_id: int,
    num_workers: int,
    shm_prefix: str,
    parent_pid: int | None,
) -> None:
    """Answer ``(task index, batch indices)`` from ``index_queue`` until told to stop or orphaned."""
    global _worker_info
    parent = _watch_parent(parent_pid)
    if os.getppid() != parent:  # orphaned while starting up
        return
    _worker_info = WorkerInfo(worker_id, num_workers, _seed_worker_rngs(base_seed, worker_id), dataset)
    _threads.set_num_threads(1)  # as PyTorch's workers: the cores belong to the training process
    init_error = fetcher = None
    try:
        if init_fn is not None:
            init_fn(worker_id)
        fetcher = create_fetcher(is_iterable, dataset, auto_collation, collate_fn, drop_last)
    except Exception:
        init_error = ExceptionWrapper(f"in DataLoader worker process {worker_id}")
    iteration_end = False
    while os.getppid() == parent:
        try:
            task = index_queue.get(timeout=MP_STATUS_CHECK_INTERVAL)
        except queue.Empty:
            continue
        if task is None:
            break
        if isinstance(task, _ResumeIteration):
            data_queue.put((task, None))
            iteration_end = False
            fetcher = create_fetcher(is_iterable, dataset, auto_collation, collate_fn, drop_last)
        elif init_error is not None:
            data_queue.put((task[0], init_error))
            init_error = None
        elif not (done_event.is_set() or iteration_end):
            data, iteration_end = _answer(fetcher, task[1], is_iterable, worker_id, shm_prefix)
            data_queue.put((task[0], data))
            del data
        del task
    if done_event.is_set():
        # NOTE: the main process reads no more; don't block exit on flushing to the pipe
        data_queue.cancel_join_thread()
        data_queue.close()


def _parent_to_die_with(context: Any) -> int | None:
    """This process's pid, for workers to die with; None where the kernel's kill would misfire.

    PR_SET_PDEATHSIG fires when the *thread* that started the worker exits, so only workers started
    from the main thread may use it; a fork server's workers have the server as their parent.
    """
    if context.get_start_method() == "forkserver":
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    return os.getpid()


def _default_context() -> Any:
    """fork on Linux: workers start at once and share the dataset's arrays; spawn elsewhere."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader: DataLoader, resume: dict[str, Any] | None) -> None:
        super().__init__(loader, resume)
        self._prefetch_factor = loader.prefetch_factor or 0
        self._persistent_workers = loader.persistent_workers
        context = loader.multiprocessing_context or _default_context()
        self._data_queue = context.Queue()
        self._workers_done_event = context.Event()
        self._index_queues: list[Any] = []
        self._workers: list[Any] = []
        self._shm_prefix = new_prefix()
        self._shutdown = False
        discard_stale()
        try:
            for worker_id in range(self._num_workers):
                self._start_worker(context, loader, worker_id)
        except BaseException:
            self._shutdown_workers()
            raise
        self._reset(resume, first_iter=True)

    def _start_worker(self, context: Any, loader: DataLoader, worker_id: int) -> None:
        index_queue = context.Queue()
        index_queue.cancel_join_thread()
        worker = context.Process(
            target=_worker_loop,
            args=(
                self._is_iterable,
                self._dataset,
                index_queue,
                self._data_queue,
                self._workers_done_event,
                self._auto_collation,
                self._collate_fn,
                self._drop_last,
                self._base_seed,
                loader.worker_init_fn,
                worker_id,
                self._num_workers,
                self._shm_prefix,
                _parent_to_die_with(context),
            ),
            daemon=True,
        )
        with warnings.catch_warnings():
            # NOTE: Python 3.12+ warns on every fork of a threaded process (BLAS pools count); the
            # worker only runs _worker_loop, as PyTorch's forked workers do.
            warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks")
            worker.start()
        self._index_queues.append(index_queue)
        self._workers.append(worker)

    def _reset(self, resume: dict[str, Any] | None, first_iter: bool = False) -> None:
        drop = self._start_epoch(resume)
        self._send_idx = self._rcvd_idx = self._tasks_outstanding = 0
        self._task_info: dict[int, tuple] = {}
        self._workers_status = [True] * self._num_workers
        self._worker_queue_idx_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            for index_queue in self._index_queues:
                index_queue.put(_ResumeIteration())
            acks = 0
            while acks < self._num_workers:  # batches of an epoch that ended early are dropped
                idx, data = self._get_data()
                acks += isinstance(idx, _ResumeIteration)
                unpack(data)
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()
        for _ in range(drop):
            self._next_data()

    def _try_put_index(self) -> None:
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):
            worker_id = next(self._worker_queue_idx_cycle)
            if self._workers_status[worker_id]:
                break
        else:
            return
        self._index_queues[worker_id].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_id,)
        self._tasks_outstanding += 1
        self._send_idx += 1

    def _try_get_data(self, timeout: float) -> tuple[bool, Any]:
        try:
            return True, self._data_queue.get(timeout=timeout)
        except queue.Empty:
            dead = [w for w in self._workers if not w.is_alive()]
            if dead:
                self._shutdown_workers()
                pids = ", ".join(str(w.pid) for w in dead)
                raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly") from None
            return False, None

    def _get_data(self) -> Any:
        if self._timeout > 0:
            ok, data = self._try_get_data(self._timeout)
            if not ok:
                self._shutdown_workers()
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
            return data
        while True:
            ok, data = self._try_get_data(MP_STATUS_CHECK_INTERVAL)
            if ok:
                return data

    def _next_data(self) -> Any:
        while not self._shutdown:
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._workers_status[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration
            if len(self._task_info[self._rcvd_idx]) == 2:
                return self._process_data(self._task_info.pop(self._rcvd_idx)[1])
            idx, data = self._get_data()
            self._tasks_outstanding -= 1
            if isinstance(data, _IterableDatasetStopIteration):
                self._workers_status[data.worker_id] = False
                self._try_put_index()
            elif idx != self._rcvd_idx:
                self._task_info[idx] += (data,)
            else:
                del self._task_info[idx]
                return self._process_data(data)
        raise StopIteration

    def _process_data(self, data: Any) -> Any:
        self._rcvd_idx += 1
        if isinstance(data, ExceptionWrapper):
            self._shutdown_workers()
            data.reraise()
        self._try_put_index()
        return unpack(data)

    def _shutdown_workers(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        self._workers_done_event.set()
        for index_queue in self._index_queues:
            index_queue.put(None)
        for worker in self._workers:
            worker.join(timeout=MP_STATUS_CHECK_INTERVAL)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for index_queue in self._index_queues:
            index_queue.close()
        self._data_queue.cancel_join_thread()
        self._data_queue.close()
        discard(self._shm_prefix)

    def __del__(self) -> None:
        if hasattr(self, "_shutdown"):
            self._shutdown_workers()
