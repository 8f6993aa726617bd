"""The pieces of one CPU op run at once, each at one BLAS thread, on a small pool of workers.

A matrix product split between BLAS threads ends only when every thread has had its core. On a
machine whose cores other processes hold, each of a convolution's band-sized products waited for
a core that way, and a 3x3 convolution's forward and backward step took 3.4x its quiet time
beside two busy processes (PyTorch's: 2.5x). Here each piece (a band's copy and product) runs at
one BLAS thread on whichever worker is free, so a worker that loses its core holds up only the
piece it is on, and the other takes the rest: that step took 1.9-2.0x its quiet time.

The bits do not depend on the workers: each piece is one single-thread product, so its result is the
same whichever worker runs it and however many there are; pieces that add into shared memory run
in groups that do not overlap, one group after another.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from dltool.engine import _threads

Piece = TypeVar("Piece")

# Fewer pieces run here: on a quiet machine a pool of 2 lost to two-thread products with LeNet's
# and the CNN's first convolutions (2-6 bands), whose pieces are too few to share out evenly.
MIN_PIECES = 8

_executor: ThreadPoolExecutor | None = None
_executor_workers = 0


def run_in_groups(task: Callable[[Piece], None], groups: Sequence[Sequence[Piece]], xp: Any) -> None:
    """Run ``task(piece)`` for every piece, the groups in order and a group's pieces at once.

    ``MIN_PIECES`` or more pieces of numpy arrays run at one BLAS thread each, on as many workers
    as there are BLAS threads in use. Fewer run here at the BLAS threads in use, as any product
    would, and so do the pieces of other array modules (cupy queues them on its stream).
    """
    pooled = xp is np and sum(len(group) for group in groups) >= MIN_PIECES
    workers = _threads.blas_threads() if pooled else 1
    with _threads.one_blas_thread() if pooled else contextlib.nullcontext():
        for group in groups:
            if workers > 1 and len(group) > 1:
                # list() returns once every piece is done, or raises here the error of a piece
                list(_pool(workers).map(task, group))
            else:
                for piece in group:
                    task(piece)


def _pool(workers: int) -> ThreadPoolExecutor:
    global _executor, _executor_workers
    if _executor is None or _executor_workers != workers:
        if _executor is not None:
            _executor.shutdown(wait=False)
        _executor = ThreadPoolExecutor(workers, thread_name_prefix="dltool-blas")
        _executor_workers = workers
    return _executor


def _forget_pool() -> None:
    """In a forked child the pool's threads are gone: make a new pool when one is needed."""
    global _executor, _executor_workers
    _executor, _executor_workers = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
