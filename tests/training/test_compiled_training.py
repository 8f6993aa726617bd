"""``trainer.compile=true``: the replayed train step trains to the eager weights, the replayed
validation and test passes score as the eager ones, and runs resume across compile switched on and off."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import dltool.engine as dl
from dltool.engine.jit import CompiledFunction
from dltool.training.checkpoint import load_checkpoint
from dltool.training.compiled import check_compilable
from dltool.training.errors import ConfigError
from dltool.training.resume import resume_config
from dltool.training.tasks.base import Task
from dltool.training.tasks.gan import GAN
from dltool.training.tasks.supervised import Classification
from dltool.training.trainer import train
from tests.training.conftest import compose_config
from tests.training.test_resume import GROUPS


@pytest.fixture(autouse=True)
def fixed_threads(monkeypatch: pytest.MonkeyPatch):
    """One BLAS thread throughout, never fitted to the load: a matrix product's bits depend on the
    thread count."""
    monkeypatch.delenv("DLTOOL_ADAPTIVE_THREADS", raising=False)
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def compiled_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, bool]]:
    """Every call of a compiled function: its name, whether grad mode was on, whether it captured."""
    calls = []
    call = CompiledFunction.__call__

    def spy(self: CompiledFunction, *args, **kwargs):
        captures = self.captures
        result = call(self, *args, **kwargs)
        calls.append((self.__name__, dl.is_grad_enabled(), self.captures > captures))
        return result

    monkeypatch.setattr(CompiledFunction, "__call__", spy)
    return calls


def _calls_of(calls: list[tuple[str, bool, bool]], name: str, grad_enabled: bool) -> tuple[int, int]:
    """How many calls of the compiled function ``name`` there were (each in the grad mode given),
    and how many of them captured."""
    mine = [(grad, captured) for called, grad, captured in calls if called == name]
    assert all(grad == grad_enabled for grad, _ in mine), f"{name} ran with grad mode {not grad_enabled}"
    return len(mine), sum(captured for _, captured in mine)


def _measured(result: dict) -> dict[str, float]:
    """A run's metrics but its timings; the val/ and test/ ones among them."""
    metrics = {k: v for k, v in result["metrics"].items() if not k.startswith("time/")}
    assert any(k.startswith("val/") for k in metrics) and any(k.startswith("test/") for k in metrics)
    return metrics


def _weights(run_dir: Path) -> dict[str, np.ndarray]:
    state = load_checkpoint(run_dir / "checkpoints/last.ckpt")
    arrays = {f"model.{k}": v.numpy() for k, v in state["model"].items()}
    for i, group in enumerate(state["optimizers"][0]["state"].values()):
        arrays.update(
            {
                f"optimizer.{i}.{k}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                for k, v in group.items()
            }
        )
    return arrays


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_compiled_run_trains_and_evaluates_to_the_eager_weights_and_metrics(
    fashion: Callable, tmp_path: Path, compiled_calls: list
) -> None:
    # NOTE: a step that fell back to eager mode would warn, and warnings are errors in the tests
    options = (
        "model=cnn",  # BatchNorm (its running statistics in eval) and dropout (off in eval)
        "trainer.epochs=2",
        "trainer.grad_clip=1.0",
        "trainer.val_split=250",
        "trainer.limit_val_batches=null",  # batches of 200 and a short last one of 50
    )
    eager = train(fashion(*options), tmp_path / "eager")
    assert not compiled_calls
    compiled = train(fashion(*options, "trainer.compile=true"), tmp_path / "compiled")
    assert _measured(eager) == _measured(compiled)
    _assert_same(_weights(tmp_path / "eager"), _weights(tmp_path / "compiled"))
    assert _calls_of(compiled_calls, "_forward_backward", True) == (8, 1)  # 2 epochs of 4 steps
    # two validation passes of two batches, then the test batch: the full and the short batch
    # are captured once each, in the first pass, and replayed from then on
    assert _calls_of(compiled_calls, "output_and_loss", False) == (5, 2)


@pytest.mark.parametrize(("first", "then"), [("false", "true"), ("true", "false")])
def test_a_run_resumes_across_compile_on_and_off(
    fashion: Callable, tmp_path: Path, first: str, then: str
) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(fashion("trainer.epochs=2"), straight)
    train(
        fashion("trainer.epochs=2", "trainer.max_steps=6", f"trainer.compile={first}"), split
    )  # mid-epoch 2
    args = ["resume=auto", "trainer.max_steps=null", f"trainer.compile={then}"]
    cfg, resumption = resume_config(fashion(*args), split, args, GROUPS)
    train(cfg, split, resumption)
    _assert_same(_weights(straight), _weights(split))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_compiled_language_model_carries_its_state_to_the_eager_weights_and_metrics(
    tmp_path: Path, cell: str, compiled_calls: list
) -> None:
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("to be, or not to be, that is the question.\n" * 12)
    options = [
        "task=language_model",
        "dataset=text_bptt",  # the state runs on from batch to batch, detached
        f"dataset.path={corpus}",
        "dataset.seq_len=8",
        "dataset.val_fraction=0.3",
        "dataset.val.streams=6",  # 18 windows: validation batches of 4, 4, 4, 4 and 2 rows
        "trainer.batch_size=4",
        "trainer.eval_batch_size=4",
        f"model.cell={cell}",
        "model.embedding_dim=8",
        "model.hidden_size=16",
        "model.dropout=0.2",
        "trainer.epochs=2",
    ]
    eager = train(compose_config(*options), tmp_path / "eager")
    compiled = train(compose_config(*options, "trainer.compile=true"), tmp_path / "compiled")
    assert _measured(eager) == _measured(compiled)
    _assert_same(_weights(tmp_path / "eager"), _weights(tmp_path / "compiled"))
    assert _calls_of(compiled_calls, "_forward_backward", True) == (22, 2)  # the first batch, the others
    # two validation passes and the test pass (the same split) of five batches; the first batch
    # (no state), the next ones (a state) and the short last one (no state) are captured once each
    assert _calls_of(compiled_calls, "loss_and_state", False) == (15, 3)


def _gan() -> GAN:
    generator = dl.nn.Linear(2, 2)
    generator.latent_dim = 2
    return GAN(generator, dl.nn.Linear(2, 1))


class _OwnStep(Classification):
    def training_step(self, batch, batch_idx):
        return super().training_step(batch, batch_idx)


class _OwnValidation(Classification):
    def validation_step(self, batch, batch_idx):
        return super().validation_step(batch, batch_idx)


@pytest.mark.parametrize(
    ("task", "processes", "message"),
    [
        (Task(), 1, "supported for the supervised tasks"),
        (_gan(), 1, "task GAN optimizes manually"),
        (_OwnStep(dl.nn.Linear(2, 2), dl.nn.CrossEntropyLoss()), 1, "_OwnStep is not one"),
        (_OwnValidation(dl.nn.Linear(2, 2), dl.nn.CrossEntropyLoss()), 1, "_OwnValidation is not one"),
        (Classification(dl.nn.Linear(2, 2), dl.nn.CrossEntropyLoss()), 2, "num_processes > 1"),
    ],
)
def test_compile_refuses_a_step_it_cannot_capture_whole(task, processes: int, message: str) -> None:
    with pytest.raises(ConfigError, match=f"trainer.compile: .*{message}"):
        check_compilable(task, processes)
