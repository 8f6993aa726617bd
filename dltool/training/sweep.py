"""A sweep's shared pieces: job names, TensorBoard's experiment, and the end-of-sweep summary.

``SweepSummary`` is a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``), so it runs
with any sweeper or launcher plugin. At the start it writes the HParams experiment into the sweep
directory (the swept keys as the first columns); at the end it reads each job directory's
``metrics.json`` and ``.hydra/overrides.yaml``, prints a table with the best job marked and
writes it as ``summary.csv`` and ``summary.md``. ``job_name`` names job directories after their
overrides (``3_lr=0.01,model=lenet``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from dltool.training.console import console
from dltool.training.hparams import compared_metrics, sweep_hparams
from dltool.training.loggers import TensorBoardLogger

# The longest job name after its number: directory names stay short enough to read and to type.
_NAME_LENGTH = 60


def job_name(override_dirname: str) -> str:
    """A job directory's name after its number: the overrides with each key's last part and the
    values made safe for a file name (Hydra's ``override_dirname`` is ``optimizer.lr=0.01,...``).

    Example:
        >>> job_name("model=lenet,optimizer.lr=0.01,dataset.path=/data/a b.txt")
        'model=lenet,lr=0.01,path=_data_a_b.txt'
    """
    items = []
    for item in override_dirname.split(","):
        key, sep, value = item.partition("=")
        items.append(key.rsplit(".", 1)[-1].lstrip("+~") + sep + _short_number(value))
    name = re.sub(r"[^\w.,=+-]", "_", ",".join(items))
    return name[:_NAME_LENGTH] or "job"


def _short_number(value: str) -> str:
    """A long float (a sampled one) to 4 significant digits: ``0.0031622776601683794`` is ``0.003162``."""
    return f"{float(value):.4g}" if re.fullmatch(r"-?\d*\.\d{7,}(e[-+]?\d+)?", value) else value


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
                **_values(list(overrides)),
                **{("final_lr" if k == "lr" else k): v for k, v in result.get("metrics", {}).items()},
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
    """``(3,)`` for job ``3_lr=0.01`` (and ``3``): the number Hydra gave it."""
    return tuple(int(m[0]) if (m := re.match(r"\d+", p)) else 0 for p in Path(row["job"]).parts)


def _values(overrides: list[str]) -> dict[str, Any]:
    """Each ``key=value`` override as a column (the value a job ran with, as the sweep gave it)."""
    pairs = (o.partition("=") for o in overrides)
    return {key.lstrip("+"): value for key, sep, value in pairs if sep and not key.startswith(("~", "hydra"))}


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


def summary_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The summary's header and rows: the best job marked, only the overrides that differ."""
    monitor = next((r["monitor"] for r in rows if r["monitor"]), None)
    common = set.intersection(*(set(r["overrides"].split()) for r in rows))
    tests = sorted({k for r in rows for k in r if k.startswith("test/")})
    header = ["", "job", "status", "overrides", f"best {monitor}" if monitor else "best", *tests]
    best = rows[0] if rows[0]["status"] == "completed" and rows[0]["best"] is not None else None
    body = [
        [
            "best" if row is best else "",
            row["job"],
            row["status"],
            " ".join(o for o in row["overrides"].split() if o not in common),
            *(_fmt(row.get(k)) for k in ("best", *tests)),
        ]
        for row in rows
    ]
    return header, body


def print_summary(rows: list[dict[str, Any]], sweep_dir: Path) -> None:
    """The summary as a table on the console."""
    header, body = summary_table(rows)
    table = Table(title=f"sweep {sweep_dir} ({len(rows)} jobs, {header[4]} first)")
    for column in header:
        table.add_column(column, justify="right" if "/" in column else "left")
    for line in body:
        table.add_row(*line)
    console().print(table)


def write_markdown(rows: list[dict[str, Any]], path: Path, sweep_dir: Path) -> None:
    """``summary.md``: the same table as Markdown, the best job marked."""
    header, body = summary_table(rows)
    lines = [f"# sweep {sweep_dir.name}", "", f"{len(rows)} jobs, {header[4]} first.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]
    path.write_text("\n".join(lines) + "\n")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


class SweepSummary(Callback):
    """At the start of a multirun, TensorBoard's shared experiment; at the end, the summary table,
    summary.csv and summary.md, and a non-zero exit when a job failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "tensorboard" not in (config.get("logger") or {}):
            return
        monitor = config.trainer.get("monitor")
        tests = ["test/loss", f"test/{monitor.partition('/')[2]}"] if monitor else []
        searched = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]  # a sweeper's YAML
        overrides = searched + list(config.hydra.overrides.task)
        hparams, swept = sweep_hparams(overrides, dict(config.hydra.runtime.choices))
        logger = TensorBoardLogger(config.hydra.sweep.dir)
        try:
            logger.log_experiment(hparams, compared_metrics(monitor, list(dict.fromkeys(tests))), swept)
        finally:
            logger.close()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir)
        if not rows:
            return
        write_summary(rows, sweep_dir / "summary.csv")
        write_markdown(rows, sweep_dir / "summary.md", sweep_dir)
        print_summary(rows, sweep_dir)
        failed = [r["job"] for r in rows if r["status"] not in ("completed", "pruned")]
        if failed:
            # NOTE: Hydra turns a callback's Exception into a warning; SystemExit reaches the command,
            # which prints the message and exits 1.
            raise SystemExit(
                f"{len(failed)} of {len(rows)} sweep jobs did not complete (jobs {', '.join(failed)}); "
                f"see {sweep_dir / 'summary.csv'}"
            )
