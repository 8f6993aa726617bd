"""TrainerOptions: the shipped defaults validate; each kind of bad value names its option."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_module

from dltool.training.errors import ConfigError
from dltool.training.options import TrainerOptions


@pytest.fixture(scope="module")
def defaults() -> dict:
    with initialize_config_module("dltool.conf", version_base="1.3"):
        return dict(compose("config").trainer)


def test_shipped_defaults_are_valid(defaults: dict) -> None:
    options = TrainerOptions.from_config(defaults)
    assert (options.epochs, options.batch_size, options.monitor, options.mode) == (10, 128, "val/acc", "max")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", "abc", "trainer.epochs: expected int, got 'abc'"),
        ("epochs", 2.5, "trainer.epochs: expected int"),
        ("fast_dev_run", 1, "trainer.fast_dev_run: expected bool"),
        ("grad_clip", "x", "trainer.grad_clip: expected float or null"),
        ("epochs", 0, "trainer.epochs: must be >= 1"),
        ("num_workers", -1, "trainer.num_workers: must be >= 0"),
        ("grad_clip", -1.0, "trainer.grad_clip: must be > 0"),
        ("val_split", 1.5, "trainer.val_split: a fraction must be in [0, 1)"),
        ("mode", "up", "trainer.mode: must be 'min' or 'max'"),
        ("monitor", "acc", "trainer.monitor: expected a metric tag"),
        ("limit_train_batches", 0, "trainer.limit_train_batches: expected a batch count"),
        ("limit_val_batches", 1.5, "trainer.limit_val_batches: expected a batch count"),
    ],
)
def test_bad_values_name_the_option(defaults: dict, key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        TrainerOptions.from_config({**defaults, key: value})


def test_unknown_and_missing_options(defaults: dict) -> None:
    with pytest.raises(ConfigError, match="trainer: unknown option 'epoch'"):
        TrainerOptions.from_config({**defaults, "epoch": 3})
    with pytest.raises(ConfigError, match="trainer: missing option 'seed'"):
        TrainerOptions.from_config({k: v for k, v in defaults.items() if k != "seed"})


def test_num_batches_limits(defaults: dict) -> None:
    def batches(kind: str, available: int, **change: object) -> int:
        return TrainerOptions.from_config({**defaults, **change}).num_batches(kind, available)

    assert batches("train", 100) == 100
    assert batches("train", 100, limit_train_batches=7) == 7
    assert batches("train", 5, limit_train_batches=7) == 5
    assert batches("val", 100, limit_val_batches=0.25) == 25
    assert batches("val", 3, limit_val_batches=0.1) == 1
    assert batches("test", 100, fast_dev_run=True) == 1


def test_better_respects_mode_and_min_delta(defaults: dict) -> None:
    up = TrainerOptions.from_config({**defaults, "mode": "max", "min_delta": 0.1})
    down = TrainerOptions.from_config({**defaults, "mode": "min"})
    assert up.better(0.5, None) and up.better(0.75, 0.6) and not up.better(0.65, 0.6)
    assert down.better(0.1, 0.2) and not down.better(0.2, 0.2)
