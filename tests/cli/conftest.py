"""Drive the real ``dltool`` command in a subprocess, in a temporary working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A few seconds per run: short epochs over slices of Fashion-MNIST.
TINY = [
    "trainer.epochs=2",
    "trainer.batch_size=32",
    "trainer.limit_train_batches=6",
    "trainer.eval_batch_size=200",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.log_every_n_steps=2",
]

# A GAN of small generator and discriminator on a few MNIST batches.
TINY_GAN = [
    "task=gan",
    "dataset=mnist",
    "trainer.epochs=2",
    "trainer.batch_size=16",
    "trainer.limit_train_batches=3",
    "model.generator.features=8",
    "model.discriminator.features=8",
    "task.samples=16",
]


def cli_env(data_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "COLUMNS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env["DLTOOL_DATA"] = str(data_root)
    return env


def run_dltool(cwd: Path, data_root: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m dltool.cli ARGS`` in ``cwd``; the result with text stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "dltool.cli", *args],
        cwd=cwd,
        env=cli_env(data_root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(result.args[3:])} exited {result.returncode}:\n{result.stderr}")
    return result


@pytest.fixture
def dltool(tmp_path: Path, data_root: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``dltool(*args)`` runs the command in ``tmp_path``."""
    return lambda *args, timeout=180: run_dltool(tmp_path, data_root, *args, timeout=timeout)


@pytest.fixture(scope="package")
def trained_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A finished tiny run, shared by the tests that only read it (eval, predict, resume errors)."""
    cwd = tmp_path_factory.mktemp("trained")
    ok(
        run_dltool(
            cwd, data_root, "train", *TINY, "trainer.checkpoint_every_n_epochs=1", "hydra.run.dir=runs/tiny"
        )
    )
    return cwd / "runs" / "tiny"
