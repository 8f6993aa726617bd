"""Compose the real config with small overrides, as the command would, for direct ``train`` calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

# Short runs over slices of Fashion-MNIST.
TINY = [
    "trainer.epochs=2",
    "trainer.batch_size=32",
    "trainer.limit_train_batches=4",
    "trainer.eval_batch_size=200",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.log_every_n_steps=2",
]


def compose_config(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module("dltool.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def fashion(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., DictConfig]:
    """``fashion(*overrides)``: the default config on the real Fashion-MNIST, with TINY limits."""
    monkeypatch.setenv("DLTOOL_DATA", str(data_root))
    return lambda *overrides: compose_config(*TINY, *overrides)
