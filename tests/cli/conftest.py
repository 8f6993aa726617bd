"""Drive the real ``dltool`` command in a subprocess, in a temporary working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A few seconds per run: two short epochs over slices of Fashion-MNIST.
TINY = [
    "trainer.epochs=2", "trainer.batch_size=32", "trainer.limit_train_batches=6", "trainer.eval_batch_size=200",
    "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "trainer.log_every_n_steps=2",
]


def cli_env(data_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "COLUMNS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env["DLTOOL_DATA"] = str(data_root)
    return env


@pytest.fixture
def dltool(tmp_path: Path, data_root: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``dltool(*args)`` runs ``python -m dltool.cli ARGS`` in ``tmp_path`` and returns the result."""

    def run(*args: str, timeout: float = 180, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "dltool.cli", *args], cwd=tmp_path, env=cli_env(data_root),
            capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"dltool {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run
