"""Run a worker script as 2 MPI ranks; each rank writes which of its checks passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")

from dltool.training.distributed import find_mpiexec

ROOT = Path(__file__).resolve().parents[3]
RANKS = 2


def mpi_env() -> dict[str, str]:
    """The environment for ranks sharing two cores: one BLAS thread each (spinning threads stall)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"
    return env


def run_ranks(
    script: Path, out: Path, *args: str, ranks: int = RANKS, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``mpiexec -n RANKS python script out args...``, killed after ``timeout`` seconds."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec")
    command = [mpiexec, "-n", str(ranks), sys.executable, str(script), str(out), *args]
    return subprocess.run(command, env=mpi_env(), capture_output=True, text=True, timeout=timeout)


def rank_results(script: Path, tmp_path: Path, *args: str, ranks: int = RANKS) -> list[dict[str, str]]:
    """Run ``script`` on ``ranks`` ranks; each rank's ``{check: "ok" or the failure}``."""
    result = run_ranks(script, tmp_path, *args, ranks=ranks)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(ranks)]


def assert_passed(results: list[dict[str, str]], check: str) -> None:
    for rank, checks in enumerate(results):
        assert checks.get(check) == "ok", f"rank {rank}, {check}: {checks.get(check, 'did not run')}"


def check_names(worker: Path) -> list[str]:
    """The ``check_*`` functions a worker script defines, for parametrizing its test."""
    lines = worker.read_text().splitlines()
    return sorted(line.split("(")[0].removeprefix("def ") for line in lines if line.startswith("def check_"))
