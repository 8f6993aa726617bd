"""kill -9 at random moments, once during a checkpoint save, with loader workers: every checkpoint
left behind loads, ``resume=auto`` finishes bit for bit as a run that was never killed, and no
temporary file or shared-memory batch is left."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dltool.training.checkpoint import load_checkpoint
from tests.cli.conftest import cli_env, ok, run_dltool

# A wide MLP, so that a checkpoint (70 MB with Adam's state) takes long enough to write to be
# caught in the act; two workers, so that batches travel through /dev/shm.
ARGS = [
    "model.hidden_sizes=[2048,2048]",
    "trainer.epochs=4",
    "trainer.batch_size=64",
    "trainer.limit_train_batches=30",
    "trainer.num_workers=2",
    "trainer.eval_batch_size=500",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=1",
]
KILLS = 5
SAVE_KILL = 2  # this kill comes while a checkpoint is being written
STEPS = 4 * 30  # the run's optimizer steps


def _start(cwd: Path, data_root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dltool.cli", "train", "resume=auto", "hydra.run.dir=runs/killed", *ARGS],
        cwd=cwd,
        env=cli_env(data_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> bool:
    """SIGKILL ``process`` once ``ready()``; False if it ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.kill()
            process.wait()
            return True
    process.wait(timeout=timeout)
    return False


def _saving(folder: Path) -> Callable[[], bool]:
    return lambda: any(folder.glob(".last.ckpt.*.tmp"))


def _at_step(run: Path, step: int) -> Callable[[], bool]:
    """True once this process's part of the run log shows training ``step`` (machine speed aside:
    a kill -9 saves nothing, so each resume starts from the last epoch's end again)."""
    log = run / "train.log"
    start = log.stat().st_size if log.exists() else 0

    def ready() -> bool:
        if not log.exists():
            return False
        with log.open() as file:
            file.seek(start)
            return f" step {step}:" in file.read()

    return ready


def _steps_done(folder: Path) -> int:
    last = folder / "last.ckpt"
    return load_checkpoint(last)["loop"]["step"] if last.exists() else 0


def _scores(run: Path) -> dict[str, float]:
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    return {tag: value for tag, value in metrics.items() if not tag.startswith("time/")}


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_is_exact(tmp_path: Path, data_root: Path) -> None:
    rng = random.Random(21)
    run = tmp_path / "runs" / "killed"
    folder = run / "checkpoints"
    killed_pids = []
    for kill in range(KILLS):
        target = min(_steps_done(folder) + rng.randint(1, 45), STEPS - 1)  # within the next epoch and a half
        ready = _saving(folder) if kill == SAVE_KILL else _at_step(run, target)
        process = _start(tmp_path, data_root)
        assert _kill_when(process, ready), f"run {kill} ended before it could be killed"
        killed_pids.append(process.pid)
        for checkpoint in folder.glob("*.ckpt"):
            load_checkpoint(checkpoint)  # raises if a kill left a broken file
    ok(run_dltool(tmp_path, data_root, "train", "resume=auto", "hydra.run.dir=runs/killed", *ARGS))
    ok(run_dltool(tmp_path, data_root, "train", *ARGS, "hydra.run.dir=runs/straight"))

    straight = load_checkpoint(tmp_path / "runs/straight/checkpoints/last.ckpt")["model"]
    resumed = load_checkpoint(folder / "last.ckpt")["model"]
    for key, value in straight.items():
        np.testing.assert_array_equal(resumed[key].numpy(), value.numpy())
    assert _scores(run) == _scores(tmp_path / "runs/straight")
    assert not list(folder.glob(".*.tmp"))
    shared = os.listdir("/dev/shm")
    assert not [name for name in shared for pid in killed_pids if name.startswith(f"dltool-{pid}-")]
