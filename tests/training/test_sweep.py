"""The sweep summary from job directories: sorted by the monitored metric, failures last."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dltool.training.sweep import SweepSummary, collect


def _job(sweep: Path, num: int, overrides: list[str], result: dict | None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    if result is not None:
        (job / "metrics.json").write_text(json.dumps(result))


def _done(best: float, mode: str = "max") -> dict:
    return {
        "status": "completed",
        "monitor": "val/acc",
        "mode": mode,
        "best": best,
        "metrics": {"val/acc": best, "test/acc": best - 0.01},
    }


def test_rows_sorted_by_monitor_with_failures_last(tmp_path: Path) -> None:
    _job(tmp_path, 0, ["optimizer.lr=0.1"], _done(0.80))
    _job(tmp_path, 1, ["optimizer.lr=-1"], {"status": "failed", "error": "optimizer: Invalid learning rate"})
    _job(tmp_path, 2, ["optimizer.lr=0.01"], _done(0.90))
    _job(tmp_path, 10, ["optimizer.lr=0.001"], None)  # killed before writing anything
    rows = collect(tmp_path)
    assert [(r["job"], r["status"]) for r in rows] == [
        ("2", "completed"),
        ("0", "completed"),
        ("1", "failed"),
        ("10", "failed"),
    ]
    assert rows[0]["overrides"] == "optimizer.lr=0.01" and rows[0]["test/acc"] == pytest.approx(0.89)
    assert rows[2]["error"] == "optimizer: Invalid learning rate"


def test_min_mode_sorts_ascending(tmp_path: Path) -> None:
    _job(tmp_path, 0, ["a=1"], _done(0.5, "min"))
    _job(tmp_path, 1, ["a=2"], _done(0.2, "min"))
    assert [r["job"] for r in collect(tmp_path)] == ["1", "0"]


def test_callback_writes_summary_csv_and_exits_nonzero_on_failures(tmp_path: Path, capsys) -> None:
    _job(tmp_path, 0, ["optimizer.lr=0.1"], _done(0.8))
    _job(tmp_path, 1, ["optimizer.lr=-1"], {"status": "failed", "error": "bad lr"})
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    with pytest.raises(SystemExit, match="1 of 2 sweep jobs did not complete"):
        SweepSummary().on_multirun_end(config=config)
    with open(tmp_path / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"], r["best"]) for r in rows] == [
        ("0", "completed", "0.8"),
        ("1", "failed", ""),
    ]
    assert "optimizer.lr=0.1" in capsys.readouterr().out
