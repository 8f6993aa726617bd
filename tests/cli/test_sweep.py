"""``dltool train -m``: one directory per job, the summary table and summary.csv, failed jobs that
do not stop the others, and a sweeper plugin that receives the metric each job returns."""

from __future__ import annotations

import csv
import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import TINY, ok, run_dltool

SHORT = [*TINY, "trainer.epochs=1", "trainer.limit_train_batches=3"]


def _summary(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_2x2_sweep_writes_four_jobs_and_a_sorted_summary(dltool: Callable, tmp_path: Path) -> None:
    result = ok(
        dltool(
            "train",
            "-m",
            *SHORT,
            "optimizer=glob(adam*)",
            "trainer.seed=range(1,3)",
            "hydra.sweep.dir=runs/sweep",
        )
    )
    sweep = tmp_path / "runs" / "sweep"
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_optimizer=adam,seed=1", "1_optimizer=adam,seed=2", "2_optimizer=adamw,seed=1", "3_optimizer=adamw,seed=2"]
    for job in jobs:
        assert (sweep / job / "checkpoints" / "best.ckpt").exists() and (
            sweep / job / "metrics.json"
        ).exists()
    rows = _summary(sweep)
    assert sorted(r["job"] for r in rows) == jobs and all(r["status"] == "completed" for r in rows)
    best = [float(r["best"]) for r in rows]
    assert best == sorted(best, reverse=True)  # val/acc: the best job first
    assert {r["overrides"].split()[-2] for r in rows} == {"optimizer=adam", "optimizer=adamw"}
    assert "best val/acc" in result.stdout and "optimizer=adam trainer.seed=2" in result.stdout


def test_a_failing_job_does_not_stop_the_sweep(dltool: Callable, tmp_path: Path) -> None:
    result = dltool("train", "-m", *SHORT, "optimizer.lr=-1,0.001", "hydra.sweep.dir=runs/sweep")
    assert result.returncode == 1
    assert (
        "job 0 (" in result.stderr
        and "optimizer.lr=-1) failed: optimizer (dltool.engine.optim.Adam): Invalid learning rate: -1"
        in result.stderr
        and "runs/sweep/0_lr=-1/train.log" in result.stderr
    )
    assert "1 of 2 sweep jobs did not complete (jobs 0_lr=-1)" in result.stderr
    rows = _summary(tmp_path / "runs" / "sweep")
    assert [(r["job"], r["status"]) for r in rows] == [("1_lr=0.001", "completed"), ("0_lr=-1", "failed")]
    assert [r["optimizer.lr"] for r in rows] == ["0.001", "-1"]  # the swept value, beside the final_lr
    markdown = (tmp_path / "runs/sweep/summary.md").read_text().splitlines()
    assert markdown[4].startswith("|  | job | status | overrides | best val/acc |")
    assert markdown[6].startswith("| best | 1_lr=0.001 | completed | optimizer.lr=0.001 |")
    assert markdown[7].startswith("|  | 0_lr=-1 | failed |")
    assert "Invalid learning rate" in rows[1]["error"]
    experiment = _experiment(tmp_path / "runs/sweep")  # shared by the jobs: the columns in order
    assert [h.name for h in experiment.hparam_infos][:2] == ["optimizer.lr", "trainer.epochs"]
    assert [m.name.tag for m in experiment.metric_infos] == ["best/val/acc", "val/acc", "test/loss", "test/acc"]


def _experiment(sweep: Path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
    accumulator = event_accumulator.EventAccumulator(str(sweep))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/experiment"]
    return plugin_data_pb2.HParamsPluginData.FromString(content).experiment


_SWEEPER = textwrap.dedent('''
    """A minimal sweeper plugin: runs the grid, records what each job returned."""
    import itertools, json
    from dataclasses import dataclass
    from pathlib import Path
    from hydra.core.config_store import ConfigStore
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    @dataclass
    class RecordingSweeperConf:
        _target_: str = "hydra_plugins.recording_sweeper.RecordingSweeper"

    ConfigStore.instance().store(group="hydra/sweeper", name="recording", node=RecordingSweeperConf)

    class RecordingSweeper(Sweeper):
        def setup(self, *, hydra_context, task_function, config):
            self.config = config
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=task_function, config=config)

        def sweep(self, arguments):
            choices = []
            for override in OverridesParser.create().parse_overrides(arguments):
                key = override.get_key_element()
                values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.get_value_element_as_str()]
                choices.append([f"{key}={value}" for value in values])
            jobs = [list(job) for job in itertools.product(*choices)]
            returns = self.launcher.launch(jobs, initial_job_idx=0)
            record = {" ".join(job): r.return_value for job, r in zip(jobs, returns)}
            Path(self.config.hydra.sweep.dir, "returned.json").write_text(json.dumps(record))
            return returns
''')


@pytest.mark.slow
def test_a_sweeper_plugin_receives_each_jobs_metric(tmp_path: Path, data_root: Path, monkeypatch) -> None:
    plugin = tmp_path / "plugins" / "hydra_plugins" / "recording_sweeper"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text(_SWEEPER)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path / "plugins"), os.environ.get("PYTHONPATH", "")])
    )
    ok(
        run_dltool(
            tmp_path,
            data_root,
            "train",
            "-m",
            "hydra/sweeper=recording",
            *SHORT,
            "optimizer.lr=0.01,0.001",
            "hydra.sweep.dir=runs/sweep",
        )
    )
    sweep = tmp_path / "runs" / "sweep"
    returned = {
        overrides.split()[-1]: value
        for overrides, value in json.loads((sweep / "returned.json").read_text()).items()
    }
    for job, lr in (("0_lr=0.01", "optimizer.lr=0.01"), ("1_lr=0.001", "optimizer.lr=0.001")):
        assert returned[lr] == json.loads((sweep / job / "metrics.json").read_text())["best"]
    assert len(_summary(sweep)) == 2
