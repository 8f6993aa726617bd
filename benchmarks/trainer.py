"""Workload 6: ``dltool train`` for one epoch against a bare loop of the same engine.

Both build the same data, model, optimizer and scheduler with the trainer's own builders, train
one epoch of the MLP on Fashion-MNIST and evaluate the validation and test splits; the ratio is the
trainer's own overhead (logging, progress, metrics, checkpoints, TensorBoard). The trainer draws its
progress bar as on a terminal, into ``os.devnull``: off a terminal the bar is not drawn at all, and a
benchmark's output is never a terminal.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from hydra import compose, initialize_config_module
from rich.console import Console

import dltool.engine as dl
from benchmarks.common import Settings, timed
from dltool.training.builders import build, build_data, build_scheduler, build_task, fill_num_classes
from dltool.training.console import console_replaced_by
from dltool.training.options import TrainerOptions
from dltool.training.trainer import train

TITLE = "dltool train, 1 MLP epoch, vs a bare loop"


def _config(settings: Settings):
    overrides = ["trainer.epochs=1", "logger=default"]
    if settings.tiny:
        overrides += [
            "trainer.limit_train_batches=20",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
        ]
    with initialize_config_module("dltool.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


@contextlib.contextmanager
def drawn_as_on_a_terminal() -> Iterator[None]:
    """dltool's console output, progress bars included, rendered as for a terminal into os.devnull."""
    with open(os.devnull, "w") as sink:
        with console_replaced_by(Console(file=sink, force_terminal=True, force_interactive=True)):
            yield


def _evaluate(model, loader, batches: int) -> None:
    model.eval()
    with dl.no_grad():
        for x, _ in islice(loader, batches):
            model(x)
    model.train()


def bare_loop(cfg) -> None:
    """What the trainer does for one epoch, and nothing else."""
    options = TrainerOptions.from_config(cfg.trainer)
    dl.manual_seed(options.seed)
    data = build_data(cfg, options)
    fill_num_classes(cfg, data.classes)
    task = build_task(cfg, data.classes, options.device)
    model, loss_fn = task.model, task.loss
    optimizer = build("optimizer", cfg.optimizer, model.parameters())
    scheduler, _ = build_scheduler(cfg, "scheduler", optimizer, len(data.train_loader))
    for x, y in islice(data.train_loader, options.num_batches("train", len(data.train_loader))):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    _evaluate(model, data.val_loader, options.num_batches("val", len(data.val_loader)))
    _evaluate(model, data.test_loader, options.num_batches("test", len(data.test_loader)))


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    cfg = _config(settings)

    def trainer() -> float:
        with tempfile.TemporaryDirectory() as run_dir, drawn_as_on_a_terminal():
            return timed(lambda: train(cfg.copy(), Path(run_dir)))

    return {"dltool": trainer, "bare": lambda: timed(lambda: bare_loop(cfg.copy()))}
