"""The benchmark entry point runs end to end at a tiny size (timings are not checked: see README)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_run_writes_every_workload(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("DLTOOL_DATA", str(data_root))
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--repeat", "1", "--warmup", "0", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"overhead", "mlp", "lenet", "conv", "data_loader", "trainer", "memory"}
    for name, workload in report["results"].items():
        assert workload["median"]["dltool"] > 0, name
        assert all(ratio > 0 for ratio in workload["ratios"].values()), name
    assert "threads" in report["environment"]
    assert "workload" in result.stdout  # the table
