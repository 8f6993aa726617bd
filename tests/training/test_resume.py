"""``resume_config``: a resumed run keeps its checkpoint's config; only key=value overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import dltool.engine as dl
from dltool.training.checkpoint import new_checkpoint
from dltool.training.errors import ConfigError
from dltool.training.resume import resume_config
from tests.training.conftest import compose_config

GROUPS = ["model", "dataset", "optimizer", "scheduler", "loss", "trainer", "logger", "experiment", "debug"]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    stored = compose_config("model=lenet", "trainer.epochs=3", "trainer.batch_size=256", "optimizer.lr=0.01")
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    dl.save(new_checkpoint(config=OmegaConf.to_container(stored), meta={}), path)
    return path


def test_the_checkpoint_config_wins_over_this_commands_defaults(checkpoint: Path) -> None:
    overrides = [f"resume={checkpoint}", "trainer.epochs=5", "~optimizer.weight_decay", "+trainer.extra=1"]
    cfg = resume_config(compose_config(*overrides), checkpoint.parent.parent, overrides, GROUPS)
    assert cfg.model._target_ == "dltool.models.lenet.LeNet5" and cfg.trainer.batch_size == 256
    assert (cfg.trainer.epochs, cfg.optimizer.lr, cfg.trainer.extra) == (5, 0.01, 1)
    assert "weight_decay" not in cfg.optimizer and cfg.resume == str(checkpoint)


def test_switching_a_group_is_refused(checkpoint: Path) -> None:
    overrides = [f"resume={checkpoint}", "optimizer=sgd"]
    with pytest.raises(ConfigError, match="cannot switch config group 'optimizer'"):
        resume_config(compose_config(*overrides), checkpoint.parent.parent, overrides, GROUPS)


def test_auto_finds_the_newest_last_checkpoint_or_starts_fresh(checkpoint: Path, tmp_path: Path) -> None:
    cfg = resume_config(compose_config("resume=auto"), tmp_path, ["resume=auto"], GROUPS)
    assert cfg.resume == str(checkpoint) and cfg.model._target_.endswith("LeNet5")
    (tmp_path / "empty").mkdir()
    fresh = resume_config(compose_config("resume=auto"), tmp_path / "empty", ["resume=auto"], GROUPS)
    assert fresh.resume is None and fresh.model._target_.endswith("MLP")
