"""Evaluation: one pass over a loader under ``no_grad``, and the ``dltool eval`` command."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from rich import box
from rich.table import Table

import dltool.engine as dl
from dltool.engine.utils.data import DataLoader
from dltool.training.builders import build, build_datasets, build_model, building
from dltool.training.checkpoint import load_checkpoint, load_model_state, run_meta, trusted_config
from dltool.training.console import console
from dltool.training.errors import ConfigError
from dltool.training.metrics import RunningMetrics, confusion_matrix, per_class_accuracy
from dltool.training.options import TrainerOptions
from dltool.training.pictures import confusion_matrix_image

log = logging.getLogger("dltool")


@dataclasses.dataclass
class Evaluation:
    """What one pass over a split gives: the metrics, and for a classifier what went wrong."""

    metrics: dict[str, float]
    matrix: np.ndarray | None = None  # confusion counts, true classes on rows
    # up to ``keep_misclassified`` inputs the model got wrong, with their true and predicted classes
    misclassified: tuple[np.ndarray, list[int], list[int]] | None = None


@dl.no_grad()
def evaluate(
    model: dl.nn.Module,
    loader: DataLoader,
    loss_fn: Any,
    task: str,
    prefix: str,
    device: str = "cpu",
    num_batches: int | None = None,
    num_classes: int | None = None,
    keep_misclassified: int = 0,
) -> Evaluation:
    """Mean loss and accuracy (or MAE) of ``model`` over ``loader``, in eval mode.

    Args:
        prefix: the metric tags' prefix (``val`` gives ``val/loss``, ``val/acc``).
        num_batches: stop after this many batches (None: all).
        num_classes: also count a confusion matrix (true classes on rows), and keep up to
            ``keep_misclassified`` of the inputs the model got wrong, in loader order.
    """
    was_training = model.training
    model.eval()
    running = RunningMetrics(task)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64) if num_classes else None
    wrong: list[tuple[np.ndarray, int, int]] = []
    try:
        for x, y in itertools.islice(loader, num_batches):
            x, y = x.to(device), y.to(device)
            output = model(x)
            running.update(loss_fn(output, y).item(), output, y)
            if matrix is not None:
                predicted, target = output.argmax(dim=1).numpy(force=True), y.numpy(force=True)
                matrix += confusion_matrix(predicted, target, num_classes)
                missed = np.flatnonzero(predicted != target)[: keep_misclassified - len(wrong)]
                inputs = x.numpy(force=True) if missed.size else None
                wrong += [(inputs[i], int(target[i]), int(predicted[i])) for i in missed]
    finally:
        model.train(was_training)
    misclassified = None
    if wrong:
        images, targets, predictions = zip(*wrong, strict=True)
        misclassified = (np.stack(images), list(targets), list(predictions))
    return Evaluation(running.compute(prefix), matrix, misclassified)


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``dltool eval``: rebuild model and data from the checkpoint's config, report and save JSON.

    Returns:
        What was written to the JSON file: loss, accuracy, per-class accuracy, confusion matrix.
    """
    if cfg.split not in ("test", "val"):
        raise ConfigError(f"split: must be 'test' or 'val', got {cfg.split!r}")
    path = Path(cfg.checkpoint)
    checkpoint = load_checkpoint(path)
    meta = run_meta(checkpoint, path)
    run_cfg = trusted_config(checkpoint, path, trust_code=cfg.trust_checkpoint_code)
    options = TrainerOptions.from_config(run_cfg.trainer)
    device = cfg.device or options.device
    model = build_model(run_cfg, device)
    load_model_state(model, checkpoint["model"], path)
    dataset = _split(run_cfg, options, cfg.split)
    with building("data loader"):
        loader = DataLoader(
            dataset, batch_size=cfg.batch_size or options.eval_batch_size, num_workers=cfg.num_workers
        )
    classes = list(meta["classes"]) if meta["task"] == "classification" else []
    evaluation = evaluate(
        model,
        loader,
        build("loss", run_cfg.loss),
        meta["task"],
        cfg.split,
        device=device,
        num_classes=len(classes) or None,
    )
    metrics, matrix = evaluation.metrics, evaluation.matrix
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
    scores = [k for k in ("loss", "acc", "mae") if k in result]
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
