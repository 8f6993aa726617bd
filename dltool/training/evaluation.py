"""The ``dltool eval`` command: a checkpoint's task, validation pass over a split, as tables and JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from rich import box
from rich.table import Table

from dltool.engine.utils.data import DataLoader
from dltool.training.builders import build, build_datasets, building
from dltool.training.console import console
from dltool.training.errors import ConfigError
from dltool.training.metrics import per_class_accuracy
from dltool.training.options import TrainerOptions
from dltool.training.pictures import confusion_matrix_image
from dltool.training.saved import load_task
from dltool.training.tasks import Classification

log = logging.getLogger("dltool")


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``dltool eval``: rebuild the task and data from the checkpoint's config, report and save JSON.

    Returns:
        What was written to the JSON file: the task's metrics (loss, accuracy, perplexity, ...)
        and for a classifier the per-class accuracy and the confusion matrix.
    """
    if cfg.split not in ("test", "val"):
        raise ConfigError(f"split: must be 'test' or 'val', got {cfg.split!r}")
    saved = load_task(cfg.checkpoint, cfg.trust_checkpoint_code, cfg.device)
    path, meta, run_cfg, task = saved.path, saved.meta, saved.config, saved.task
    options = TrainerOptions.from_config(run_cfg.trainer)
    device = cfg.device or options.device
    if not task.has_validation:
        raise ConfigError(f"{path}: its {meta['task']} task has no validation_step to evaluate with")
    dataset = _split(run_cfg, options, cfg.split)
    with building("data loader"):
        loader = DataLoader(
            dataset, batch_size=cfg.batch_size or options.eval_batch_size, num_workers=cfg.num_workers
        )
    metrics = task.evaluate(loader, cfg.split, device=device)
    matrix = task.matrix if isinstance(task, Classification) else None
    classes = list(meta["classes"])
    scores = {tag.split("/", 1)[1]: value for tag, value in metrics.items()}
    result: dict[str, Any] = {"checkpoint": str(path), "split": cfg.split, "samples": len(dataset), **scores}
    if matrix is not None:
        accuracy = per_class_accuracy(matrix)
        result["per_class_acc"] = dict(zip(classes, accuracy, strict=True))
        result["confusion_matrix"] = {"classes": classes, "counts": matrix.tolist()}
    _print_report(result, matrix)
    output = Path(cfg.output) if cfg.output else path.with_name(f"{path.stem}.{cfg.split}.json")
    output.write_text(json.dumps(result, indent=2) + "\n")
    log.info(f"wrote {output}")
    if matrix is not None:
        picture = output.with_name(f"{output.stem}.confusion_matrix.png")
        confusion_matrix_image(matrix, classes).save(picture)
        log.info(f"wrote {picture}")
    return result


def _split(run_cfg: DictConfig, options: TrainerOptions, split: str) -> Any:
    if split == "test":
        return build("dataset.test", run_cfg.dataset.test)
    val = build_datasets(run_cfg, options)[1]
    if val is None:
        raise ConfigError("split=val: the run had no validation split (trainer.val_split=0); use split=test")
    return val


def _print_report(result: dict[str, Any], matrix: np.ndarray | None) -> None:
    summary = Table(title=f"{result['checkpoint']} on {result['split']} ({result['samples']} samples)")
    scores = [k for k, v in result.items() if isinstance(v, float)]
    for key in scores:
        summary.add_column(key, justify="right")
    summary.add_row(*(f"{result[k]:.4f}" for k in scores))
    console().print(summary)
    if matrix is None:
        return
    classes = result["confusion_matrix"]["classes"]
    table = Table(title="confusion matrix (rows: true class, columns: predicted)", box=box.SIMPLE_HEAD)
    table.add_column("class", no_wrap=True)
    for i in range(len(classes)):
        table.add_column(str(i), justify="right")
    table.add_column("support", justify="right")
    table.add_column("acc", justify="right")
    for i, name in enumerate(classes):
        acc = result["per_class_acc"][name]
        table.add_row(
            f"{i} {name}",
            *(str(n) for n in matrix[i]),
            str(matrix[i].sum()),
            "-" if acc is None else f"{acc:.4f}",
        )
    console().print(table)
