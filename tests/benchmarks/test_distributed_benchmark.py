"""The data-parallel benchmark runs end to end in its quick mode on two ranks (timings are not
checked: see benchmarks/README.md)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_measures_both_models_on_two_ranks(tmp_path):
    pytest.importorskip("mpi4py")
    from dltool.training.distributed import find_mpiexec

    if find_mpiexec() is None:
        pytest.skip("no mpiexec")
    out = tmp_path / "distributed.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.distributed", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for name in ("mlp", "cnn"):
        ranks = report["ranks"][name]
        assert ranks["bare_allreduce_s"] > 0 and ranks["averaged_allreduce_s"] > 0, name
        assert all(math.isfinite(ranks[f"sync_{v}_s"]) for v in ("copied", "views", "views_zeroed")), name
        assert ranks["step_ddp_s"] > 0 and report["single"][name]["step_s"] > 0, name
    assert "bare Allreduce" in result.stdout and "2 ranks x 1 thread" in result.stdout  # the tables
