"""``resume_config``: a resumed run keeps its checkpoint's config; only key=value overrides apply,
and the state restored from the checkpoint follows them."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import dltool.engine as dl
from dltool.training.checkpoint import load_checkpoint, new_checkpoint
from dltool.training.errors import ConfigError
from dltool.training.resume import resume_config
from dltool.training.trainer import train
from tests.training.conftest import compose_config

GROUPS = ["model", "dataset", "optimizer", "scheduler", "loss", "trainer", "logger", "experiment", "debug"]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    stored = compose_config("model=lenet", "trainer.epochs=3", "trainer.batch_size=256", "optimizer.lr=0.01")
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    meta = {"choices": {"model": "lenet", "optimizer": "adam"}}
    dl.save(new_checkpoint(config=OmegaConf.to_container(stored), meta=meta, model={}), path)
    return path


def test_the_checkpoint_config_wins_over_this_commands_defaults(checkpoint: Path) -> None:
    overrides = [f"resume={checkpoint}", "trainer.epochs=5", "~optimizer.weight_decay", "+trainer.extra=1"]
    cfg, resumption = resume_config(compose_config(*overrides), checkpoint.parent.parent, overrides, GROUPS)
    assert resumption is not None and resumption.path == checkpoint
    assert cfg.model._target_ == "dltool.models.lenet.LeNet5" and cfg.trainer.batch_size == 256
    assert (cfg.trainer.epochs, cfg.optimizer.lr, cfg.trainer.extra) == (5, 0.01, 1)
    assert "weight_decay" not in cfg.optimizer and cfg.resume == str(checkpoint)


def test_switching_a_group_is_refused(checkpoint: Path) -> None:
    overrides = [f"resume={checkpoint}", "optimizer=sgd"]
    with pytest.raises(ConfigError, match="cannot switch config group 'optimizer'"):
        resume_config(compose_config(*overrides), checkpoint.parent.parent, overrides, GROUPS)


def test_auto_finds_the_newest_last_checkpoint_or_starts_fresh(checkpoint: Path, tmp_path: Path) -> None:
    cfg, _ = resume_config(compose_config("resume=auto"), tmp_path, ["resume=auto"], GROUPS)
    assert cfg.resume == str(checkpoint) and cfg.model._target_.endswith("LeNet5")
    (tmp_path / "empty").mkdir()
    fresh, resumption = resume_config(
        compose_config("resume=auto"), tmp_path / "empty", ["resume=auto"], GROUPS
    )
    assert fresh.resume is None and resumption is None and fresh.model._target_.endswith("MLP")


# ---------------------------------------------------------------- overrides meet the restored state


def _resume_and_train(fashion: Callable, run_dir: Path, *overrides: str) -> dict:
    args = ["resume=auto", *overrides]
    cfg, resumption = resume_config(fashion(*args), run_dir, args, GROUPS)
    return train(cfg, run_dir, resumption)


def test_an_lr_override_wins_over_the_restored_optimizer(fashion: Callable, tmp_path: Path) -> None:
    train(fashion("scheduler=none", "trainer.max_steps=4"), tmp_path)
    result = _resume_and_train(fashion, tmp_path, "trainer.max_steps=null", "optimizer.lr=0.05")
    assert result["metrics"]["lr"] == 0.05
    assert load_checkpoint(tmp_path / "checkpoints/last.ckpt")["optimizers"][0]["param_groups"][0]["lr"] == 0.05


def test_a_scheduled_lr_override_restarts_the_schedule_from_the_new_value(
    fashion: Callable, tmp_path: Path
) -> None:
    train(fashion("trainer.epochs=3", "trainer.max_steps=4"), tmp_path)  # cosine over 3 epochs; 1 done
    result = _resume_and_train(fashion, tmp_path, "trainer.max_steps=null", "optimizer.lr=0.05")
    assert result["metrics"]["lr"] == pytest.approx(0.05 * (1 + math.cos(2 * math.pi / 3)) / 2, rel=1e-12)


def test_training_longer_stretches_the_schedule_as_an_uninterrupted_run(
    fashion: Callable, tmp_path: Path
) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(fashion("trainer.epochs=3"), straight)
    train(fashion("trainer.epochs=2", "trainer.max_steps=4"), split)  # T_max=2, one epoch done
    _resume_and_train(fashion, split, "trainer.epochs=3", "trainer.max_steps=null")  # T_max=3
    for a, b in zip(_weights(straight), _weights(split), strict=True):
        np.testing.assert_array_equal(a, b)


def test_naming_the_checkpoints_own_option_is_not_a_switch(fashion: Callable, tmp_path: Path) -> None:
    choices = {"scheduler": "step", "model": "mlp"}
    train(fashion("scheduler=step", "trainer.max_steps=4"), tmp_path, choices=choices)
    args = ["resume=auto", "scheduler=step", "trainer.max_steps=null"]
    cfg, resumption = resume_config(fashion(*args), tmp_path, args, GROUPS)
    assert resumption is not None and cfg.scheduler._target_.endswith("StepLR")
    with pytest.raises(ConfigError, match=r"cannot switch config group 'scheduler'.*it used scheduler=step"):
        resume_config(
            fashion("resume=auto", "scheduler=cosine"), tmp_path, ["resume=auto", "scheduler=cosine"], GROUPS
        )


@pytest.mark.parametrize("override", ["trainer.seed=7", "trainer.batch_size=16"])
def test_what_the_restored_streams_fix_cannot_change(
    fashion: Callable, tmp_path: Path, override: str
) -> None:
    train(fashion("trainer.max_steps=3"), tmp_path)  # mid-epoch
    with pytest.raises(ConfigError, match=f"resume: {override.split('=')[0]} cannot change"):
        resume_config(fashion("resume=auto", override), tmp_path, ["resume=auto", override], GROUPS)


def test_a_plateau_schedule_cannot_change_on_resume(fashion: Callable, tmp_path: Path) -> None:
    train(fashion("scheduler=plateau", "trainer.max_steps=4"), tmp_path)
    with pytest.raises(ConfigError, match="ReduceLROnPlateau schedule cannot change"):
        _resume_and_train(fashion, tmp_path, "+scheduler.factor=0.1")


def _weights(run_dir: Path) -> list[np.ndarray]:
    state = load_checkpoint(run_dir / "checkpoints/last.ckpt")["model"]
    return [state[k].numpy() for k in sorted(state)]
