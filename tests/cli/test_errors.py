"""Every kind of bad input: one clear line on stderr, a non-zero exit, no traceback, and nothing
already saved is lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import dltool.engine as dl
from dltool.engine.backend import cuda_is_available
from tests.cli.conftest import TINY, cli_env


def _one_line_error(result, command: str = "train") -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dltool {command}: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trainer.foo=1"], "Could not override 'trainer.foo'"),
        (["model=nope"], "Could not find 'model/nope'. Available options in 'model': cnn, dcgan, gru_lm, lenet"),
        (["trainer.epochs=abc"], "trainer.epochs: expected int, got 'abc'"),
        (["trainer.batch_size=0"], "trainer.batch_size: must be >= 1, got 0"),
        (["optimizer.lr=-0.1"], "optimizer (dltool.engine.optim.Adam): Invalid learning rate: -0.1"),
        (["optimizer.lr=abc"], "optimizer.lr: expected a number, got 'abc'"),
        (
            ["+model.width=3"],
            "model (dltool.models.mlp.MLP): MLP.__init__() got an unexpected keyword argument",
        ),
        (["model._target_=mypkg.Net"], "model (mypkg.Net): No module named 'mypkg'"),
        (
            ["trainer.monitor=val/mae"],
            "trainer.monitor: 'val/mae' is not a metric of this classification run",
        ),
        (["trainer.epochs=[1,"], "cannot parse override 'trainer.epochs=[1,': no viable alternative"),
        (["resume=missing.ckpt"], "checkpoint not found: missing.ckpt"),
        (
            ["loss=mse"],
            "loss (MSELoss) does not fit this model and dataset (model output (2, 10) "
            "float32, targets (2,) int64)",
        ),
        (["model.num_classes=5"], "model: its output does not match the dataset's 10 classes"),
        (["trainer.divergence_factor=1"], "trainer.divergence_factor: must be > 1 (or null), got 1"),
    ],
)
def test_bad_train_input(dltool: Callable, tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in _one_line_error(dltool("train", *args, "hydra.run.dir=runs/bad"))
    assert not (tmp_path / "runs" / "bad").exists()  # a run that never started leaves no directory


def test_an_exploding_loss_stops_the_run(dltool: Callable, tmp_path: Path) -> None:
    message = _one_line_error(dltool("train", *TINY, "optimizer.lr=1e10", "hydra.run.dir=runs/big"))
    assert "over 1000 times the first step's" in message and "trainer.divergence_factor" in message
    assert json.loads((tmp_path / "runs/big/metrics.json").read_text())["status"] == "diverged"


def test_resume_from_a_directory_says_what_it_holds(
    dltool: Callable, trained_run: Path, tmp_path: Path
) -> None:
    message = _one_line_error(dltool("train", f"resume={trained_run}"))
    assert f"resume={trained_run} is a directory" in message
    assert f"it holds {trained_run / 'checkpoints' / 'last.ckpt'}" in message
    (tmp_path / "empty").mkdir()
    assert "it holds no checkpoints" in _one_line_error(dltool("train", "resume=empty"))


def test_a_full_disk_names_the_file(tmp_path: Path, data_root: Path) -> None:
    limit = 200_000  # below a checkpoint of the MLP: the first save fails
    script = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "from dltool.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "train", *TINY, "hydra.run.dir=runs/full"],
        cwd=tmp_path,
        env=cli_env(data_root),
        capture_output=True,
        text=True,
        timeout=180,
    )
    message = _one_line_error(result)
    assert "File too large: '" in message and message.endswith("runs/full/checkpoints/last.ckpt'")
    assert not list((tmp_path / "runs/full/checkpoints").glob(".*.tmp"))


def test_resume_auto_needs_the_run_dir(dltool: Callable) -> None:
    assert "resume=auto needs the run directory" in _one_line_error(dltool("train", "resume=auto"))


def test_missing_data_files_name_the_files_and_folder(dltool: Callable, tmp_path: Path) -> None:
    (tmp_path / "nodata").mkdir()
    message = _one_line_error(dltool("train", "dataset.root=nodata", "dataset.train.download=false"))
    assert "train-images-idx3-ubyte.gz" in message and "nodata/FashionMNIST/raw" in message


@pytest.mark.skipif(cuda_is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu(dltool: Callable) -> None:
    assert "CUDA is not available" in _one_line_error(dltool("train", "trainer.device=cuda"))


def _snapshot(run: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != "train.log"
    }


@pytest.mark.parametrize("kind", ["truncated", "foreign", "garbage", "other_model"])
def test_bad_checkpoints_lose_nothing(dltool: Callable, trained_run: Path, tmp_path: Path, kind: str) -> None:
    run = tmp_path / "runs" / "copy"
    shutil.copytree(trained_run, run)
    checkpoint = run / "checkpoints" / "last.ckpt"
    args = [f"resume={checkpoint}"]
    if kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    elif kind == "foreign":
        dl.save({"weights": dl.zeros(3)}, checkpoint)
    elif kind == "garbage":
        checkpoint.write_bytes(b"\x89PNG not a checkpoint")
    else:
        args.append("model.hidden_sizes=[64]")
    before = _snapshot(run)
    message = _one_line_error(dltool("train", *args))
    expected = {
        "truncated": "corrupted",
        "foreign": "is not a dltool checkpoint",
        "garbage": "corrupted",
        "other_model": "does not match the model MLP: shape mismatch",
    }[kind]
    assert expected in message and str(checkpoint) in message
    assert _snapshot(run) == before


def test_an_earlier_run_is_not_overwritten(dltool: Callable, trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "copy"
    shutil.copytree(trained_run, run)
    before = _snapshot(run)
    message = _one_line_error(dltool("train", "hydra.run.dir=runs/copy"))
    assert "already holds a run's checkpoints; continue it with resume=auto hydra.run.dir=" in message
    assert _snapshot(run) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "Missing mandatory value: checkpoint"),
        (["checkpoint=missing.ckpt"], "checkpoint not found: missing.ckpt"),
        (["checkpoint=CKPT", "split=train"], "split: must be 'test' or 'val', got 'train'"),
        (["checkpoint=CKPT", "bogus=1"], "Could not override 'bogus'"),
    ],
)
def test_bad_eval_input(dltool: Callable, trained_run: Path, args: list[str], expected: str | None) -> None:
    args = [a.replace("CKPT", str(trained_run / "checkpoints" / "best.ckpt")) for a in args]
    message = _one_line_error(dltool("eval", *args), "eval")
    assert expected is None or expected in message


def test_bad_predict_input(dltool: Callable, trained_run: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    message = _one_line_error(
        dltool("predict", f"checkpoint={checkpoint}", "inputs=[nothere.png]"), "predict"
    )
    assert "cannot read image nothere.png" in message
    message = _one_line_error(dltool("predict", f"checkpoint={checkpoint}", "inputs=[]"), "predict")
    assert "inputs: give at least one image" in message
