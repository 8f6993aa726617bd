"""The end-of-sweep summary: every job's final metrics, sorted by the monitored metric.

``SweepSummary`` is a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``), so it runs
with any sweeper or launcher plugin: it reads each job directory's ``metrics.json`` and
``.hydra/overrides.yaml`` and writes ``summary.csv`` into the sweep directory.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from dltool.training.console import console


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory under ``sweep_dir``: job, status, overrides, best and metrics."""
    rows = []
    for hydra_dir in sorted(sweep_dir.glob("**/.hydra")):
        job_dir = hydra_dir.parent
        overrides = (
            OmegaConf.load(hydra_dir / "overrides.yaml") if (hydra_dir / "overrides.yaml").exists() else []
        )
        metrics_file = job_dir / "metrics.json"
        result = json.loads(metrics_file.read_text()) if metrics_file.exists() else {"status": "failed"}
        rows.append(
            {
                "job": str(job_dir.relative_to(sweep_dir)),
                "status": result.get("status", "failed"),
                "overrides": " ".join(overrides),
                "monitor": result.get("monitor", ""),
                "best": result.get("best"),
                **result.get("metrics", {}),
                "error": result.get("error", ""),
                "dir": str(job_dir),
                "_mode": result.get("mode", "max"),
            }
        )
    return sorted(rows, key=_rank)


def _rank(row: dict[str, Any]) -> tuple:
    best = row["best"]
    if row["status"] != "completed" or best is None or math.isnan(best):
        return (1, 0.0, _job_number(row))
    return (0, -best if row["_mode"] == "max" else best, _job_number(row))


def _job_number(row: dict[str, Any]) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in Path(row["job"]).parts)


def write_summary(rows: list[dict[str, Any]], path: Path) -> None:
    """``summary.csv``: the rows, with every metric any job reported as a column."""
    columns = ["job", "status", "overrides", "monitor", "best"]
    tail = ["error", "dir"]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in tail and not k.startswith("_")]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns + tail, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def print_summary(rows: list[dict[str, Any]], sweep_dir: Path) -> None:
    """A table of the jobs; the overrides column shows only what differs between jobs."""
    monitor = next((r["monitor"] for r in rows if r["monitor"]), "best")
    common = set.intersection(*(set(r["overrides"].split()) for r in rows))
    tests = sorted({k for r in rows for k in r if k.startswith("test/")})
    table = Table(title=f"sweep {sweep_dir} ({len(rows)} jobs, best {monitor} first)")
    for column in ("job", "status", "overrides", f"best {monitor}", *tests):
        table.add_column(column, justify="right" if "/" in column else "left")
    for row in rows:
        swept = " ".join(o for o in row["overrides"].split() if o not in common)
        table.add_row(row["job"], row["status"], swept, *(_fmt(row.get(k)) for k in ("best", *tests)))
    console().print(table)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


class SweepSummary(Callback):
    """At the end of a multirun: print the summary table, write summary.csv, report failures."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir)
        if not rows:
            return
        write_summary(rows, sweep_dir / "summary.csv")
        print_summary(rows, sweep_dir)
        failed = [r["job"] for r in rows if r["status"] != "completed"]
        if failed:
            # NOTE: Hydra turns a callback's Exception into a warning; SystemExit reaches the command,
            # which prints the message and exits 1.
            raise SystemExit(
                f"{len(failed)} of {len(rows)} sweep jobs did not complete (jobs {', '.join(failed)}); "
                f"see {sweep_dir / 'summary.csv'}"
            )
