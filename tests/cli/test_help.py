"""``dltool --help`` and each command's ``--help`` list the config groups and options."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def test_top_level_help_lists_commands_and_groups(dltool: Callable) -> None:
    result = dltool("--help")
    assert result.returncode == 0
    for text in (
        "train",
        "eval",
        "predict",
        "model:",
        "cnn, dcgan, gru_lm, lenet, linreg, logreg, lstm_lm, mlp, transformer_lm",
        "task:",
        "classification, gan, language_model, regression",
        "sample",
        "generate",
        "optimizer:",
        "adam, adamw, rmsprop, sgd",
        "scheduler:",
        "cosine, none, onecycle, plateau, step",
    ):
        assert text in result.stdout
    assert dltool().stdout == result.stdout  # no command: the same usage
    assert "  hparams_search: linreg_optuna" in result.stdout  # the longest group name keeps its space


def test_train_help_lists_groups_and_trainer_options(dltool: Callable) -> None:
    result = dltool("train", "--help")
    assert result.returncode == 0
    for text in (
        "dataset: fashion_mnist, image_folder, mnist, synthetic_regression, text",
        "task: classification, gan, language_model, regression",
        "loss: cross_entropy, mse",
        "logger: csv, default, none, tensorboard",
        "max_steps:",
        "eval_batch_size:",
        "fast_dev_run:",
        "overfit_batches:",
        "limit_train_batches:",
    ):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("command", "text"),
    [("eval", "split: test"), ("predict", "topk: 3"), ("sample", "nrow: null"), ("generate", "temperature: 0.8")],
)
def test_checkpoint_commands_help(dltool: Callable, command: str, text: str) -> None:
    result = dltool(command, "--help")
    assert result.returncode == 0 and text in result.stdout and "checkpoint: ???" in result.stdout


def test_cfg_job_prints_the_composed_config(dltool: Callable) -> None:
    result = dltool("train", "model=lenet", "optimizer=sgd", "trainer.batch_size=256", "--cfg", "job")
    assert result.returncode == 0
    assert "_target_: dltool.models.lenet.LeNet5" in result.stdout and "batch_size: 256" in result.stdout
    assert "_target_: dltool.engine.optim.SGD" in result.stdout


def test_unknown_command(dltool: Callable) -> None:
    result = dltool("fit")
    assert result.returncode == 2 and "unknown command 'fit'" in result.stderr
