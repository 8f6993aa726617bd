"""The shipped configs: every option of every group composes, and the defaults are the issue's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from dltool.cli import config_groups


@pytest.fixture(autouse=True)
def _hydra() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module("dltool.conf", version_base="1.3"):
        yield


def test_defaults() -> None:
    cfg = compose("config")
    choices = {k: cfg[k]._target_ for k in ("model", "optimizer", "scheduler", "loss")}
    assert choices == {
        "model": "dltool.models.mlp.MLP",
        "optimizer": "dltool.engine.optim.Adam",
        "scheduler": "dltool.engine.optim.lr_scheduler.CosineAnnealingLR",
        "loss": "dltool.engine.nn.CrossEntropyLoss",
    }
    assert cfg.dataset.name == "fashion_mnist"
    assert (cfg.model.hidden_sizes, cfg.model.dropout, cfg.optimizer.lr) == ([256], 0.2, 1e-3)
    assert (cfg.trainer.batch_size, cfg.trainer.epochs) == (128, 10)
    assert cfg.scheduler.T_max == 10


def test_experiment_overlays_set_other_groups_and_overrides_still_win() -> None:
    cfg = compose("config", overrides=["experiment=cnn_fashion"])
    assert cfg.model._target_ == "dltool.models.cnn.CNN" and cfg.optimizer.lr == 3.0e-3
    assert compose("config", overrides=["experiment=cnn_fashion", "optimizer.lr=0.01"]).optimizer.lr == 0.01


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g, options in config_groups().items() for o in options]
)
def test_every_option_composes_and_resolves(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if option == "image_folder":
        overrides.append("dataset.root=/images")
    if option in ("text", "text_bptt", "lstm_lm", "gru_lm", "transformer_lm"):
        overrides.append("task=language_model")  # their model and data only fit each other
    cfg = compose("config", overrides=overrides)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_eval_and_predict_configs() -> None:
    cfg = compose("eval", overrides=["checkpoint=x.ckpt"])
    assert (cfg.split, cfg.checkpoint) == ("test", "x.ckpt")
    cfg = compose("predict", overrides=["checkpoint=x.ckpt", "inputs=[a.png,b.png]"])
    assert list(cfg.inputs) == ["a.png", "b.png"] and cfg.topk == 3
