"""Each task end to end through the command: gan, language_model, and a user's own task."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.cli.conftest import TINY, TINY_GAN, ok
from tests.cli.test_train import same_state

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

GAN = [*TINY_GAN, "trainer.log_every_n_steps=1"]


def _error(result) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_gan_trains_draws_samples_and_resumes_bit_for_bit(dltool: Callable, tmp_path: Path) -> None:
    ok(dltool("train", *GAN, "hydra.run.dir=runs/straight"))
    straight = tmp_path / "runs/straight"
    with Image.open(straight / "samples/epoch-2.png") as grid:
        assert grid.size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2) and grid.mode == "L"
    events = event_accumulator.EventAccumulator(str(straight), size_guidance={"images": 0}).Reload()
    assert events.Tags()["images"] == ["samples"] and len(events.Images("samples")) == 2
    assert {"train/loss_d_step", "train/loss_g_step", "train/loss_d", "train/d_x", "train/d_g_z"} <= set(
        events.Tags()["scalars"]
    )

    ok(dltool("train", *GAN, "trainer.max_steps=4", "hydra.run.dir=runs/stopped"))  # mid-epoch 2
    ok(dltool("train", "resume=runs/stopped/checkpoints/last.ckpt", "trainer.max_steps=null"))
    stopped = tmp_path / "runs/stopped"
    same_state(straight / "checkpoints/last.ckpt", stopped / "checkpoints/last.ckpt")
    assert (straight / "samples/epoch-2.png").read_bytes() == (stopped / "samples/epoch-2.png").read_bytes()

    ok(dltool("sample", "checkpoint=runs/straight/checkpoints/last.ckpt", "n=9", "output=grid.png"))
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)
    assert "needs a language_model checkpoint" in _error(
        dltool("generate", "checkpoint=runs/straight/checkpoints/last.ckpt")
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text("to be, or not to be, that is the question.\n" * 60)
    return path


def lm(corpus: Path, *more: str) -> list[str]:
    dataset = [m for m in more if m.startswith("dataset=")]
    return [
        "task=language_model",
        *dataset,
        f"dataset.path={corpus}",
        "dataset.seq_len=16",
        "trainer.batch_size=4",
        "trainer.eval_batch_size=4",
        "model.embedding_dim=16",
        "model.hidden_size=32",
        "trainer.epochs=2",
        "optimizer.lr=0.01",
        *(m for m in more if m not in dataset),
    ]


def test_a_language_model_trains_evaluates_and_generates(
    dltool: Callable, tmp_path: Path, corpus: Path
) -> None:
    ok(dltool("train", *lm(corpus), "hydra.run.dir=runs/lm"))
    metrics = json.loads((tmp_path / "runs/lm/metrics.json").read_text())
    assert metrics["monitor"] == "val/ppl" and metrics["best"] < 16  # of 17 characters
    assert metrics["metrics"]["test/ppl"] == pytest.approx(metrics["best"], rel=1e-6)  # test is the val split

    ok(dltool("eval", "checkpoint=runs/lm/checkpoints/best.ckpt"))
    report = json.loads((tmp_path / "runs/lm/checkpoints/best.test.json").read_text())
    assert report["ppl"] == pytest.approx(metrics["best"], rel=1e-6)

    result = ok(dltool("generate", "checkpoint=runs/lm/checkpoints/best.ckpt", "prompt=to be", "length=30"))
    text = result.stdout.rstrip("\n")
    assert text.startswith("to be") and len(text) == len("to be") + 30
    assert set(text) <= set("to be, or not to be, that is the question.\n")
    again = ok(dltool("generate", "checkpoint=runs/lm/checkpoints/best.ckpt", "prompt=to be", "length=30"))
    assert again.stdout == result.stdout  # the seed decides
    ok(dltool("train", *lm(corpus), "trainer.max_steps=45", "hydra.run.dir=runs/stopped"))  # 37 a epoch
    ok(dltool("train", "resume=runs/stopped/checkpoints/last.ckpt", "trainer.max_steps=null"))
    same_state(tmp_path / "runs/lm/checkpoints/last.ckpt", tmp_path / "runs/stopped/checkpoints/last.ckpt")

    bad = _error(dltool("generate", "checkpoint=runs/lm/checkpoints/best.ckpt", "prompt=TO"))
    assert "prompt: character 'T' is not in the vocabulary" in bad
    assert "needs a gan checkpoint" in _error(dltool("sample", "checkpoint=runs/lm/checkpoints/best.ckpt"))


@pytest.mark.parametrize(
    ("model", "dataset"), [("gru_lm", "text"), ("transformer_lm", "text"), ("lstm_lm", "text_bptt")]
)
def test_each_language_model_and_layout_trains(
    dltool: Callable, tmp_path: Path, corpus: Path, model: str, dataset: str
) -> None:
    extra = (
        ["model.d_model=16", "model.nhead=2", "model.dim_feedforward=32"] if model == "transformer_lm" else []
    )
    args = lm(
        corpus, "trainer.epochs=1", f"model={model}", f"dataset={dataset}", *extra, "hydra.run.dir=runs/x"
    )
    if model == "transformer_lm":
        args = [a for a in args if not a.startswith(("model.embedding_dim", "model.hidden_size"))]
    ok(dltool("train", *args))
    assert json.loads((tmp_path / "runs/x/metrics.json").read_text())["best"] < 17
    config = (tmp_path / "runs/x/.hydra/config.yaml").read_text()
    assert ("carry_state: true" in config) == (dataset == "text_bptt")


USER_TASK = '''
import dltool.engine as torch
from dltool.training.tasks import Task


class Autoencoder(Task):
    """Reconstruct images through a bottleneck: a loop that no built-in task has."""

    def __init__(self, bottleneck):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, bottleneck))
        self.decoder = torch.nn.Linear(bottleneck, 784)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        return {"loss": torch.nn.functional.mse_loss(self.decoder(self.encoder(x)), x.flatten(1))}

    def validation_step(self, batch, batch_idx):
        return self.training_step(batch, batch_idx)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class NoStep(Task):
    pass
'''


def test_a_users_task_from_a_config_dir(dltool: Callable, tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text(USER_TASK)
    (tmp_path / "myconf/task").mkdir(parents=True)
    (tmp_path / "myconf/task/autoencoder.yaml").write_text("_target_: mytasks.Autoencoder\nbottleneck: 16\n")
    common = ["--config-dir", "myconf", "task=autoencoder", "trainer.monitor=val/loss", "trainer.mode=min"]
    ok(dltool("train", *common, *TINY, "hydra.run.dir=runs/ae"))
    metrics = json.loads((tmp_path / "runs/ae/metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"train/loss", "val/loss", "test/loss"}
    assert metrics["metrics"]["val/loss"] < 1.0  # normalised pixels: a constant guess costs about 1

    refused = _error(dltool("eval", "checkpoint=runs/ae/checkpoints/best.ckpt"))
    assert "names 'mytasks.Autoencoder'" in refused and "trust_checkpoint_code=true" in refused
    ok(dltool("eval", "checkpoint=runs/ae/checkpoints/best.ckpt", "trust_checkpoint_code=true"))

    no_step = _error(dltool("train", *TINY, "task._target_=mytasks.NoStep", "~task.model", "~task.loss"))
    assert (
        no_step
        == "dltool train: error: task (mytasks.NoStep): it has no training_step(batch, batch_idx) method"
    )


def test_bad_task_configs_are_one_line_each(dltool: Callable, tmp_path: Path) -> None:
    no_generator = _error(dltool("train", "task=gan", "dataset=mnist", "~task.generator"))
    assert "task (dltool.training.tasks.GAN)" in no_generator and "generator" in no_generator
    missing = _error(dltool("train", "task=language_model", "dataset.path=nowhere.txt"))
    assert "dataset.train (dltool.datasets.TextCorpus)" in missing and "nowhere.txt" in missing
    mismatch = _error(dltool("train", "task=language_model", "dataset=mnist"))
    assert (
        "it is a classification dataset, and the language_model task trains on language_model data"
        in mismatch
    )
    small = _error(dltool("train", *GAN, "dataset.input_shape=[1,32,32]", "model.generator.image_size=16"))
    assert "generator: it makes images of shape (1, 16, 16)" in small


def test_a_sweep_of_language_models(dltool: Callable, tmp_path: Path, corpus: Path) -> None:
    args = lm(corpus, "trainer.epochs=1", "optimizer.lr=0.01,0.02", "hydra.sweep.dir=sweep")
    result = ok(dltool("train", "-m", *args))
    rows = (tmp_path / "sweep/summary.csv").read_text().splitlines()
    assert rows[0].startswith("job,status,overrides,monitor,best") and len(rows) == 3
    assert all(",completed," in row and ",val/ppl," in row for row in rows[1:])
    assert "best val/ppl first" in result.stdout


def test_a_dataset_config_from_a_config_dir(dltool: Callable, tmp_path: Path, corpus: Path) -> None:
    (tmp_path / "myconf/dataset").mkdir(parents=True)
    (tmp_path / "myconf/dataset/tiny.yaml").write_text(
        f"defaults:\n  - text\n  - _self_\n\nname: tiny\npath: {corpus}\nseq_len: 16\n"
    )
    args = [
        a for a in lm(corpus, "trainer.epochs=1") if not a.startswith(("dataset.path", "dataset.seq_len"))
    ]
    ok(dltool("train", "--config-dir", "myconf", *args, "dataset=tiny", "hydra.run.dir=runs/tiny"))
    metrics = json.loads((tmp_path / "runs/tiny/metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["monitor"] == "val/ppl"
    assert "name: tiny" in (tmp_path / "runs/tiny/.hydra/config.yaml").read_text()
