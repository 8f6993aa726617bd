"""Batch files in /dev/shm: none outlive their run, even one killed with SIGKILL."""

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dltool.engine as dl
from dltool.engine.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[4]

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and os.path.isdir("/dev/shm")), reason="needs Linux /dev/shm"
)

_KILLED_RUN = textwrap.dedent("""
    import multiprocessing, os, sys, time
    import dltool.engine as dl
    from dltool.engine.utils.data import DataLoader, TensorDataset

    class Stalling(TensorDataset):
        def __getitems__(self, indices):
            if max(indices) >= 16:  # a worker stuck here can't poll for its parent
                time.sleep(60)
            return super().__getitems__(indices)

    # 256 KiB batches; after the first, batches 1-3 wait in /dev/shm and worker 0 stalls on batch 4
    batches = iter(DataLoader(Stalling(dl.zeros(32, 128, 128)), batch_size=4, num_workers=2))
    next(batches)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(" ".join(str(p.pid) for p in multiprocessing.active_children()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(60)
""")


def _files(pid: int) -> list[str]:
    return glob.glob(f"/dev/shm/dltool-{pid}-*")


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie nobody reaped yet does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _first_batch_from_a_worker() -> None:
    """One batch of 128 KiB, which travels through /dev/shm."""
    next(iter(DataLoader(TensorDataset(dl.zeros(4, 128, 128)), batch_size=2, num_workers=1)))


def test_a_new_loader_removes_the_files_of_dead_runs_only():
    dead = _dead_pid()
    stale = Path(f"/dev/shm/dltool-{dead}-abcd1234-1-0")
    kept = [
        Path(f"/dev/shm/dltool-{os.getpid()}-abcd1234-1-0"),  # a live run's batch in flight
        Path(f"/dev/shm/dltool-{dead}-abcd1234-1-0.keep"),  # not a name dltool makes
        Path(f"/dev/shm/dltool-{dead}-notes"),
    ]
    for path in [stale, *kept]:
        path.write_bytes(b"x")
    try:
        _first_batch_from_a_worker()
        assert not stale.exists()
        assert all(path.exists() for path in kept)
    finally:
        for path in [stale, *kept]:
            path.unlink(missing_ok=True)


def test_workers_die_with_a_killed_run_and_the_next_loader_frees_its_batches(tmp_path: Path):
    pids = tmp_path / "workers"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(pids)], env=env)
    workers: list[int] = []
    try:
        _wait_for(lambda: pids.exists() or process.poll() is not None, 30)
        assert pids.exists(), f"the run never started its workers (exit code {process.returncode})"
        workers = [int(pid) for pid in pids.read_text().split()]
        assert len(workers) == 2
        assert _wait_for(lambda: len(_files(process.pid)) == 3, 10), "batches 1-3 never reached /dev/shm"
        process.kill()
        process.wait()
        assert _wait_for(lambda: not any(map(_running, workers)), 3), "workers outlived the main process"
        _first_batch_from_a_worker()
        assert _files(process.pid) == []
    finally:
        process.kill()
        process.wait()
        for pid in filter(_running, workers):
            os.kill(pid, signal.SIGKILL)
        for path in _files(process.pid):
            os.unlink(path)
