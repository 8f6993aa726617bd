"""``dltool train`` end to end: the run directory's files, the TensorBoard tags, plain console
output off a terminal, and resume that reproduces an uninterrupted run bit for bit."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dltool.engine as dl
from dltool.training.checkpoint import load_checkpoint
from tests.cli.conftest import TINY, cli_env, ok

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")


def same_state(a: Path, b: Path) -> None:
    """The model and optimizer states and the loop counters of two checkpoints are identical."""
    x, y = load_checkpoint(a), load_checkpoint(b)
    assert x["model"].keys() == y["model"].keys()
    for key in x["model"]:
        np.testing.assert_array_equal(x["model"][key].numpy(), y["model"][key].numpy(), err_msg=key)
    assert len(x["optimizers"]) == len(y["optimizers"])
    for mine, theirs in zip(x["optimizers"], y["optimizers"], strict=True):
        for index, state in mine["state"].items():
            for name, value in state.items():
                other = theirs["state"][index][name]
                np.testing.assert_array_equal(np.asarray(value), np.asarray(other), err_msg=f"{index}.{name}")
    assert x["schedulers"] == y["schedulers"]
    assert {k: v for k, v in x["loop"].items() if k != "last_metrics"} == {
        k: v for k, v in y["loop"].items() if k != "last_metrics"
    }


def test_train_writes_the_run_directory(trained_run: Path) -> None:
    files = {str(p.relative_to(trained_run)) for p in trained_run.rglob("*") if p.is_file()}
    expected = {
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "checkpoints/epoch-1.ckpt",
        "checkpoints/epoch-2.ckpt",
        "train.log",
        "metrics.csv",
        "metrics.json",
    }
    assert expected <= files
    assert len([f for f in files if f.startswith("events.out.tfevents.")]) == 1
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["monitor"] == "val/acc" and metrics["epochs"] == 2
    assert metrics["steps"] == 12 and 0.0 <= metrics["metrics"]["test/acc"] <= 1.0
    checkpoint = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    assert checkpoint["config"]["trainer"]["limit_train_batches"] == 6
    assert checkpoint["meta"]["classes"][0] == "T-shirt/top"
    log = (trained_run / "train.log").read_text()
    assert "epoch 2/2" in log and "done: test/loss" in log


def test_event_file_holds_the_expected_tags(trained_run: Path) -> None:
    accumulator = event_accumulator.EventAccumulator(str(trained_run), size_guidance={"tensors": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {
        "train/loss_step",
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "lr",
        "time/epoch_s",
        "time/samples_per_s",
        "test/loss",
        "test/acc",
        "best/val/acc",
    } <= tags
    # step indices from 0: the first step's loss and learning rate, then every 2 steps; epochs of 6
    assert [e.step for e in accumulator.Scalars("train/loss_step")] == [0, 2, 4, 6, 8, 10]
    assert [e.step for e in accumulator.Scalars("lr")] == [0, 2, 4, 6, 8, 10]
    assert [e.step for e in accumulator.Scalars("val/acc")] == [5, 11]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert accumulator.Scalars("train/loss")[-1].value == pytest.approx(metrics["metrics"]["train/loss"])
    assert accumulator.Scalars("best/val/acc")[-1].value == pytest.approx(metrics["best"])
    hparams_content = accumulator.PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in hparams_content  # a run's own: TensorBoard derives the columns
    session = plugin_data_pb2.HParamsPluginData.FromString(hparams_content["_hparams_/session_start_info"])
    hparams = session.session_start_info.hparams
    assert {"trainer.epochs", "trainer.batch_size", "trainer.limit_train_batches"} <= set(hparams)  # overrides
    assert "optimizer.betas" not in hparams  # the rest of the config is in the Text tab
    assert hparams["trainer.batch_size"].number_value == 32 and hparams["model"].string_value == "mlp"
    assert hparams["dataset"].string_value == "fashion_mnist" and hparams["task"].string_value == "classification"
    (config,) = accumulator.Tensors("config/text_summary")
    assert "limit_train_batches: 6" in config.tensor_proto.string_val[0].decode()
    assert [p for p in trained_run.iterdir() if p.is_dir() and p.name not in (".hydra", "checkpoints")] == []


def test_event_file_holds_the_validation_pictures(trained_run: Path) -> None:
    accumulator = event_accumulator.EventAccumulator(str(trained_run), size_guidance={"images": 0})
    accumulator.Reload()
    assert {"val/confusion_matrix", "val/misclassified"} <= set(accumulator.Tags()["images"])
    matrices = accumulator.Images("val/confusion_matrix")
    assert [e.step for e in matrices] == [5, 11]  # each validation epoch, at the step of its scalars
    with Image.open(io.BytesIO(matrices[-1].encoded_image_string)) as picture:
        assert picture.format == "PNG" and picture.size == (matrices[-1].width, matrices[-1].height)


def test_console_is_plain_off_a_terminal(dltool: Callable) -> None:
    result = ok(dltool("train", *TINY, "hydra.run.dir=runs/plain"))
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "train/loss" in lines[0] and "samples/s" in lines[0]


def test_progress_bar_on_a_terminal(tmp_path: Path, data_root: Path) -> None:
    env = {**cli_env(data_root), "FORCE_COLOR": "1"}  # rich then draws as on a terminal
    result = subprocess.run(
        [sys.executable, "-m", "dltool.cli", "train", *TINY, "hydra.run.dir=runs/tty"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[" in result.stdout and "6/6" in result.stdout and "samples/s" in result.stdout
    assert result.stdout.count("epoch 2/2  train/loss") == 1  # one summary line per epoch


def test_resume_after_max_steps_is_bit_for_bit(dltool: Callable, tmp_path: Path) -> None:
    common = [*TINY, "trainer.epochs=3", "trainer.checkpoint_every_n_epochs=1"]
    ok(dltool("train", *common, "hydra.run.dir=runs/straight"))
    ok(dltool("train", *common, "trainer.max_steps=9", "hydra.run.dir=runs/split"))  # stops mid-epoch 2
    assert load_checkpoint(tmp_path / "runs/split/checkpoints/last.ckpt")["loop"]["batch"] == 3
    ok(dltool("train", "resume=runs/split/checkpoints/last.ckpt", "trainer.max_steps=null"))
    for name in ("last", "best", "epoch-3"):
        same_state(
            tmp_path / f"runs/straight/checkpoints/{name}.ckpt",
            tmp_path / f"runs/split/checkpoints/{name}.ckpt",
        )
    straight = json.loads((tmp_path / "runs/straight/metrics.json").read_text())
    split = json.loads((tmp_path / "runs/split/metrics.json").read_text())
    assert split["metrics"]["test/acc"] == straight["metrics"]["test/acc"]
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "runs/split"))
    accumulator.Reload()
    steps = [e.step for e in accumulator.Scalars("train/loss_step")]
    assert steps == sorted(set(steps)) == [0, 2, 4, 6, 8, 10, 12, 14, 16]  # continued, no duplicates
    expected = event_accumulator.EventAccumulator(str(tmp_path / "runs/straight")).Reload()
    values = [e.value for e in accumulator.Scalars("train/loss_step")]
    assert values == [e.value for e in expected.Scalars("train/loss_step")]  # the smoothing window resumed too
    assert [e.step for e in accumulator.Scalars("val/acc")] == [5, 11, 17]


def test_a_run_saved_before_an_option_existed_resumes_with_its_default(dltool: Callable, tmp_path: Path) -> None:
    ok(dltool("train", *TINY, "trainer.epochs=1", "hydra.run.dir=runs/old"))
    path = tmp_path / "runs/old/checkpoints/last.ckpt"
    checkpoint = dl.load(path)
    for key in ("compile", "num_processes"):  # options newer than the run
        del checkpoint["config"]["trainer"][key]
    dl.save(checkpoint, path)
    ok(dltool("train", f"resume={path}", "trainer.epochs=2"))
    resumed = load_checkpoint(path)
    assert resumed["loop"]["epoch"] == 2
    assert resumed["config"]["trainer"]["compile"] is False and resumed["config"]["trainer"]["num_processes"] == 1


def test_sigterm_mid_epoch_saves_a_resumable_checkpoint(
    tmp_path: Path, data_root: Path, dltool: Callable
) -> None:
    common = [
        "trainer.epochs=2",
        "trainer.batch_size=32",
        "trainer.limit_train_batches=100",
        "trainer.eval_batch_size=200",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.log_every_n_steps=1",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "dltool.cli", "train", *common, "hydra.run.dir=runs/stopped"],
        cwd=tmp_path,
        env=cli_env(data_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "runs/stopped/train.log"  # written line by line, unlike the event and CSV files
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if log.exists() and "epoch 1 step 5:" in log.read_text():
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "resume=runs/stopped/checkpoints/last.ckpt" in stderr
    assert "Traceback" not in stderr
    stopped = load_checkpoint(tmp_path / "runs/stopped/checkpoints/last.ckpt")["loop"]
    assert 5 <= stopped["step"] < 200
    assert json.loads((tmp_path / "runs/stopped/metrics.json").read_text())["status"] == "interrupted"
    ok(dltool("train", "resume=runs/stopped/checkpoints/last.ckpt"))
    ok(dltool("train", *common, "hydra.run.dir=runs/straight"))
    same_state(
        tmp_path / "runs/straight/checkpoints/last.ckpt", tmp_path / "runs/stopped/checkpoints/last.ckpt"
    )


def test_resume_auto_continues_the_given_run_dir(dltool: Callable, tmp_path: Path) -> None:
    ok(dltool("train", *TINY, "trainer.max_steps=4", "hydra.run.dir=runs/auto"))
    config = (tmp_path / "runs/auto/.hydra/config.yaml").read_text()
    result = ok(dltool("train", "resume=auto", "hydra.run.dir=runs/auto", "trainer.max_steps=null"))
    assert "resumed from" in result.stdout
    assert (tmp_path / "runs/auto/.hydra/config.yaml").read_text() == config  # the original config is kept
    assert load_checkpoint(tmp_path / "runs/auto/checkpoints/last.ckpt")["loop"]["step"] == 12
