"""Loggers: TensorBoard's own reader sees the scalars and hparams in the run's one directory,
and a resumed logger (purge_step) leaves no duplicate steps in the event files or the CSV."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dltool.training.loggers import CSVLogger, TensorBoardLogger
from dltool.training.trainer import train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")

_torch_installed = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed: nothing to keep out"
)


@_torch_installed
@pytest.mark.parametrize(
    "script, printed",
    [
        # tensorboardX would import torch into every run (1-2 s, ~190 MiB); it still imports later
        (
            "import sys; import dltool.training.loggers; print('torch' in sys.modules); "
            "import torch; print(torch.__name__)",
            ["False", "torch"],
        ),
        # a torch that the process imported before stays, and tensorboardX sees it
        (
            "import sys, torch; import dltool.training.loggers; import tensorboardX.writer as w; "
            "print(sys.modules['torch'] is torch, w.numpy_compatible is torch.Tensor)",
            ["True", "True"],
        ),
    ],
)
def test_the_loggers_import_torch_only_where_it_is_imported_already(script: str, printed: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == printed


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = event_accumulator.EventAccumulator(str(run_dir))
    accumulator.Reload()
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def test_tensorboard_scalars_and_hparams_in_the_run_dir(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    for step in (1, 2, 3):
        logger.log_metrics({"train/loss": 1.0 / step, "lr": 0.1}, step)
    logger.log_metrics({"test/acc": 0.9}, 3)
    logger.log_hparams({"optimizer.lr": 0.1, "model": "MLP", "trainer.epochs": 2}, ["test/acc"])
    logger.log_text("config", "```yaml\nmodel: mlp\n```", 0)
    logger.flush()  # readable before close, as after each epoch
    assert [s for s, _ in _scalars(tmp_path, "train/loss")] == [1, 2, 3]
    logger.close()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # no hparams sub-run
    accumulator = event_accumulator.EventAccumulator(str(tmp_path))
    accumulator.Reload()
    plugins = accumulator.PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in plugins  # the columns are the sweep's, or derived from all runs
    assert {"_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(plugins)
    assert "config/text_summary" in accumulator.PluginTagToContent("text")


def test_an_experiment_names_the_columns_in_order(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_experiment({"optimizer.lr": 0.1, "model": "mlp"}, ["best/val/acc", "val/acc"], ["optimizer.lr"])
    logger.close()
    accumulator = event_accumulator.EventAccumulator(str(tmp_path))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    assert [(h.name, h.differs) for h in experiment.hparam_infos] == [("optimizer.lr", True), ("model", False)]
    assert [m.name.tag for m in experiment.metric_infos] == ["best/val/acc", "val/acc"]


def test_tensorboard_purge_step_drops_steps_after_the_checkpoint(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path)
    for step in range(1, 7):
        first.log_metrics({"train/loss": float(step)}, step)
    first.close()
    resumed = TensorBoardLogger(tmp_path, purge_step=5)  # the checkpoint was taken at step 4
    for step in range(5, 9):
        resumed.log_metrics({"train/loss": 10.0 + step}, step)
    resumed.close()
    assert _scalars(tmp_path, "train/loss") == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 4.0),
        (5, 15.0),
        (6, 16.0),
        (7, 17.0),
        (8, 18.0),
    ]


def test_csv_mirror_and_purge(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path)
    for step in range(1, 7):
        first.log_metrics({"train/loss": float(step), "lr": 0.5}, step)
    first.close()
    resumed = CSVLogger(tmp_path, purge_step=5)
    resumed.log_metrics({"train/loss": 50.0}, 5)
    resumed.close()
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["wall_time", "step", "tag", "value"]
    assert [(int(r["step"]), r["tag"], float(r["value"])) for r in rows if r["tag"] == "train/loss"] == [
        (1, "train/loss", 1.0),
        (2, "train/loss", 2.0),
        (3, "train/loss", 3.0),
        (4, "train/loss", 4.0),
        (5, "train/loss", 50.0),
    ]


@pytest.mark.parametrize("filename", ["../metrics.csv", "/tmp/metrics.csv", "sub/metrics.csv"])
def test_csv_stays_in_the_run_dir(tmp_path: Path, filename: str) -> None:
    with pytest.raises(ValueError, match="must be a file name in the run directory"):
        CSVLogger(tmp_path / "run", filename=filename)
    assert not (tmp_path / "metrics.csv").exists()


def test_tensorboard_pictures_are_png_images_in_the_event_file(tmp_path: Path) -> None:
    from PIL import Image

    accumulator_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logger = TensorBoardLogger(tmp_path)
    logger.log_images({"val/picture": Image.new("L", (30, 20), 128)}, step=7)
    logger.close()
    accumulator = accumulator_module.EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    accumulator.Reload()
    (event,) = accumulator.Images("val/picture")
    assert (event.step, event.width, event.height) == (7, 30, 20)
    assert event.encoded_image_string.startswith(b"\x89PNG")


def test_the_trainer_draws_pictures_only_for_a_logger_that_wants_them(
    fashion: Callable, tmp_path: Path
) -> None:
    accumulator_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train(fashion("logger=tensorboard", "logger.tensorboard.images=false", "trainer.epochs=1"), tmp_path)
    accumulator = accumulator_module.EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    accumulator.Reload()
    assert accumulator.Tags()["images"] == [] and "val/acc" in accumulator.Tags()["scalars"]
