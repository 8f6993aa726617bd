"""CPU threads: the ceiling a program sets (``set_num_threads``) and, on request, the count that
fits a busy machine.

BLAS threads that find their core taken by another process wait for it: a threaded matrix product
is as slow as its slowest thread, and OpenBLAS's idle threads spin while they wait. On the 2-core
machine this project is built on, with both cores held by other busy processes, a character-LSTM
training step took 3.9x its quiet time with two BLAS threads. With ``DLTOOL_ADAPTIVE_THREADS=1``
dltool looks, when ``backward`` runs and at most every ``CHECK_INTERVAL`` seconds, at how many
threads of other processes are ready to run (``/proc/loadavg`` less this process's own running
threads) and runs its BLAS on the cores those leave free: never fewer than one thread, never more
than the ceiling.

It is off by default because OpenBLAS's float32 products differ in their last bits between one
and two threads (for every layer shape of the shipped models that was tried), so a count that
follows the machine's load would make two runs of the same seed, and a resumed run against an
uninterrupted one, differ. dltool's own co-tenants get a fixed share instead: DataLoader workers
run one thread, data-parallel ranks an equal share of the cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

from threadpoolctl import ThreadpoolController, threadpool_limits

# The variables that size the thread pools of the BLAS libraries numpy may be built on.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Seconds between looks at the machine's load: a look costs about 0.4 ms.
CHECK_INTERVAL = 0.5
# Weight of the newest look in the running estimate of the other processes' load, so that one
# process briefly ready to run does not halve the threads.
_SMOOTHING = 0.5


@dataclasses.dataclass
class _State:
    ceiling: int | None = None  # set by set_num_threads; None: from the environment
    in_use: int | None = None  # the BLAS thread count dltool set last
    others: float = 0.0  # running estimate of other processes' threads ready to run
    next_check: float = 0.0
    blas: list | None = None  # threadpoolctl's controllers of the loaded BLAS libraries
    started: int = 1  # the BLAS thread count when dltool first looked


_state = _State()


def set_num_threads(num: int) -> None:
    """Set the threads that CPU matrix products use (the most, with ``DLTOOL_ADAPTIVE_THREADS=1``).

    numpy's BLAS reads its thread count when it loads, so this limits the BLAS already loaded
    through ``threadpoolctl``, and sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` for processes started later (DataLoader workers, say).

    Raises:
        RuntimeError: ``num`` is not a positive integer.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    _state.ceiling = num
    for name in THREAD_VARIABLES:
        os.environ[name] = str(num)
    threadpool_limits(limits=num, user_api="blas")
    _state.in_use = num
    _state.next_check = 0.0


def get_num_threads() -> int:
    """The thread count last set, else ``OMP_NUM_THREADS``, else the CPUs this process may use."""
    if _state.ceiling is not None:
        return _state.ceiling
    variable = os.environ.get("OMP_NUM_THREADS", "")
    if variable.isdigit() and int(variable) > 0:
        return int(variable)
    return _usable_cpus()


def adapt() -> None:
    """With ``DLTOOL_ADAPTIVE_THREADS=1``, fit the BLAS threads to the cores other processes leave
    free; cheap between looks."""
    now = time.monotonic()
    if now < _state.next_check:
        return
    _state.next_check = now + CHECK_INTERVAL
    if os.environ.get("DLTOOL_ADAPTIVE_THREADS") != "1":
        return
    ceiling = _blas_ceiling()
    if ceiling <= 1:
        return
    ready = _others_ready()
    if ready is None:
        return
    _state.others += _SMOOTHING * (ready - _state.others)
    free = _usable_cpus() - round(_state.others)
    wanted = max(1, min(ceiling, free))
    if wanted != _state.in_use:
        for controller in _state.blas:
            controller.set_num_threads(wanted)
        _state.in_use = wanted


def blas_threads() -> int:
    """The threads numpy's BLAS runs on now (whoever set them: dltool, threadpoolctl, the environment)."""
    _blas_ceiling()
    return max((controller.num_threads or 1 for controller in _state.blas), default=1)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the BLAS at one thread inside the block, and at the count it had after it."""
    _blas_ceiling()
    counts = [(controller, controller.num_threads) for controller in _state.blas]
    for controller, count in counts:
        if count != 1:
            controller.set_num_threads(1)
    try:
        yield
    finally:
        for controller, count in counts:
            if count != 1:
                controller.set_num_threads(count)


def _blas_ceiling() -> int:
    """The most BLAS threads: the set ceiling, else what the BLAS started with (read once)."""
    if _state.blas is None:
        _state.blas = ThreadpoolController().select(user_api="blas").lib_controllers
        _state.started = max((c.num_threads or 1 for c in _state.blas), default=1)
        if _state.in_use is None:
            _state.in_use = _state.started
    return _state.ceiling if _state.ceiling is not None else _state.started


def _others_ready() -> int | None:
    """Threads of other processes that run or wait for a CPU now; None where the system cannot tell."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].partition("/")[0])
        own = sum(_is_running(stat) for stat in Path("/proc/self/task").glob("*/stat"))
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def _is_running(stat: Path) -> bool:
    try:
        text = stat.read_text()
    except OSError:  # the thread ended between the listing and the read
        return False
    return text[text.rindex(")") + 2] == "R"


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
