"""``train(cfg, run_dir)`` called directly: tasks, schedules, debug switches, early stopping,
a diverging loss, a user's own model class, and an image folder dataset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dltool.engine as dl
from dltool.datasets.synthetic import SyntheticRegression
from dltool.training.checkpoint import load_checkpoint
from dltool.training.errors import ConfigError, TrainingDiverged
from dltool.training.predict import predict
from dltool.training.trainer import train
from tests.training.conftest import compose_config

nn = dl.nn


def test_linear_regression_recovers_the_weights(tmp_path: Path) -> None:
    result = train(compose_config("experiment=linreg", "logger=none"), tmp_path)
    assert result["monitor"] == "val/loss" and result["metrics"]["test/loss"] < 0.02  # noise variance 0.01
    model = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")["model"]
    truth = SyntheticRegression(num_features=8)
    np.testing.assert_allclose(model["model.linear.weight"].numpy(), truth.weight.numpy().T, atol=0.02)
    np.testing.assert_allclose(model["model.linear.bias"].numpy(), truth.bias.numpy(), atol=0.02)


def test_eval_of_a_regression_checkpoint(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from dltool.training.evaluation import evaluate_checkpoint

    train(compose_config("experiment=linreg", "trainer.epochs=2", "logger=none"), tmp_path)
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    cfg = OmegaConf.create(
        {
            "checkpoint": str(checkpoint),
            "split": "val",
            "batch_size": None,
            "device": None,
            "num_workers": 0,
            "output": None,
            "trust_checkpoint_code": False,
        }
    )
    report = evaluate_checkpoint(cfg)
    assert set(report) == {"checkpoint", "split", "samples", "loss", "mae"} and report["samples"] == 102
    assert json.loads((tmp_path / "checkpoints" / "last.val.json").read_text()) == report


def test_an_mlp_as_a_regressor(tmp_path: Path) -> None:
    cfg = compose_config(
        "task=regression",
        "dataset=synthetic_regression",
        "loss=mse",
        "trainer.monitor=val/mae",
        "trainer.mode=min",
        "trainer.epochs=3",
        "logger=none",
    )
    result = train(cfg, tmp_path)
    assert set(result["metrics"]) >= {"train/mae", "val/mae", "test/mae"} and result["best"] > 0


@pytest.mark.parametrize("scheduler", ["none", "step", "onecycle", "plateau"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "rmsprop"])
def test_every_optimizer_and_scheduler_trains(tmp_path: Path, optimizer: str, scheduler: str) -> None:
    cfg = compose_config(
        "experiment=linreg",
        f"optimizer={optimizer}",
        f"scheduler={scheduler}",
        "optimizer.lr=0.01",
        "trainer.epochs=2",
        "trainer.grad_clip=1.0",
        "logger=none",
    )
    result = train(cfg, tmp_path)
    assert result["status"] == "completed" and np.isfinite(result["best"])
    state = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["schedulers"][0]
    assert (state is None) == (scheduler == "none")


def test_fast_dev_run_runs_one_batch_and_saves_nothing(fashion: Callable, tmp_path: Path) -> None:
    result = train(fashion("debug=fast_dev_run", "trainer.epochs=5"), tmp_path)
    assert (result["epochs"], result["steps"]) == (1, 1)
    assert not (tmp_path / "checkpoints").exists() and result["test_checkpoint"] == "last weights"


def test_overfit_batches_memorizes_one_batch(fashion: Callable, tmp_path: Path) -> None:
    cfg = fashion("debug=overfit", "trainer.epochs=40", "trainer.batch_size=16", "logger=none")
    result = train(cfg, tmp_path)
    assert result["metrics"]["train/acc"] == 1.0 and result["metrics"]["val/acc"] == 1.0


def test_early_stopping(fashion: Callable, tmp_path: Path) -> None:
    cfg = fashion("trainer.epochs=6", "trainer.patience=1", "trainer.min_delta=2.0", "logger=none")
    result = train(cfg, tmp_path)  # only the first epoch can "improve" by more than 2.0
    assert result["epochs"] == 2 and result["best_epoch"] == 1


def test_no_validation_split_needs_a_train_monitor(fashion: Callable, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a validation split"):
        train(fashion("trainer.val_split=0"), tmp_path / "a")
    result = train(
        fashion("trainer.val_split=0", "trainer.monitor=train/loss", "trainer.mode=min"), tmp_path / "b"
    )
    assert "val/acc" not in result["metrics"] and result["monitor"] == "train/loss"


class Exploding(nn.Module):
    """A user's own model class: fine for ``steps`` forward passes in training, then NaN."""

    def __init__(self, input_shape: list[int], num_classes: int, steps: int = 5) -> None:
        super().__init__()
        self.linear = nn.Linear(int(np.prod(input_shape)), num_classes)
        self.steps, self.calls = steps, 0

    def forward(self, x: dl.Tensor) -> dl.Tensor:
        self.calls += self.training
        y = self.linear(x.flatten(1))
        return y * float("nan") if self.training and self.calls > self.steps else y


def test_a_user_model_class_and_a_nan_loss(fashion: Callable, tmp_path: Path) -> None:
    cfg = fashion(
        f"model._target_={__name__}.Exploding", "~model.hidden_sizes", "~model.dropout", "+model.steps=5"
    )
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2, step 6.*last good checkpoint is"):
        train(cfg, tmp_path)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert last["loop"]["epoch"] == 1 and last["config"]["model"]["_target_"].endswith(".Exploding")
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


def test_image_folder_train_and_predict(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for name, color in (("blue", (0, 0, 255)), ("red", (255, 0, 0))):
            folder = tmp_path / "images" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(np.array(color) + rng.integers(-40, 40, (10, 12, 3)), 0, 255).astype(
                    np.uint8
                )
                Image.fromarray(pixels).save(folder / f"{i}.png")
    cfg = compose_config(
        "dataset=image_folder",
        f"dataset.root={tmp_path / 'images'}",
        "dataset.image_size=8",
        "model=logreg",
        "trainer.batch_size=4",
        "trainer.val_split=4",
        "trainer.epochs=8",
        "optimizer.lr=0.05",
        "logger=none",
    )
    result = train(cfg, tmp_path / "run")
    assert result["metrics"]["test/acc"] == 1.0
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert load_checkpoint(checkpoint)["meta"]["classes"] == ["blue", "red"]
    image = tmp_path / "images" / "test" / "red" / "0.png"
    top = predict(compose_predict(checkpoint, [image]))[0]["top"]
    assert top[0]["class"] == "red" and top[0]["prob"] > 0.5 and len(top) == 2


def compose_predict(checkpoint: Path, inputs: list[Path]) -> object:
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "checkpoint": str(checkpoint),
            "inputs": [str(p) for p in inputs],
            "topk": 3,
            "device": None,
            "trust_checkpoint_code": False,
        }
    )


def test_a_used_run_dir_is_refused(tmp_path: Path) -> None:
    cfg = compose_config("experiment=linreg", "trainer.epochs=1", "logger=none")
    train(cfg, tmp_path)
    before = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run's checkpoints"):
        train(cfg, tmp_path)
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == before


def test_the_start_line_counts_the_samples_a_pass_uses(fashion: Callable, tmp_path: Path) -> None:
    train(fashion("trainer.epochs=1", "logger=none"), tmp_path)
    first = (tmp_path / "train.log").read_text().splitlines()[0]
    assert "128 of 54,000 train, 200 of 6,000 val, 200 of 10,000 test samples" in first


def test_weight_and_gradient_histograms_every_n_steps(fashion: Callable, tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train(fashion("logger.tensorboard.histograms=3"), tmp_path)  # 8 steps: indices 0-7
    events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"histograms": 0}).Reload()
    weights = events.Histograms("weights/model.layers.1.weight")
    assert [e.step for e in weights] == [0, 3, 6]
    final = load_checkpoint(tmp_path / "checkpoints/last.ckpt")["model"]["model.layers.1.weight"].numpy()
    assert weights[0].histogram_value.num == final.size
    assert "grads/model.layers.1.bias" in events.Tags()["histograms"]
