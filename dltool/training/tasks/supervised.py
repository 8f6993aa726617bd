"""Supervised tasks: a model maps inputs to outputs that a loss compares with targets."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from PIL import Image

import dltool.engine as dl
from dltool.training.errors import ConfigError, innermost_message
from dltool.training.metrics import confusion_matrix
from dltool.training.pictures import confusion_matrix_image, misclassified_image
from dltool.training.tasks.base import StepOutput, Task


class Supervised(Task):
    """``loss(model(x), y)`` on ``(x, y)`` batches, plus a score of the outputs (``score``).

    Args:
        model: the network (the run's ``model`` config).
        loss: the criterion (the run's ``loss`` config).
    """

    def __init__(self, model: dl.nn.Module, loss: Any) -> None:
        super().__init__()
        if not isinstance(model, dl.nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        self.model = model
        self.loss = loss

    def forward(self, x: dl.Tensor) -> dl.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> StepOutput:
        x, y = batch
        output, loss = self.output_and_loss(x, y)
        return {"loss": loss, **self.score(output, y)}

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        x, y = batch
        return self.validation_values(batch, *self.output_and_loss(x, y))

    def output_and_loss(self, x: dl.Tensor, y: dl.Tensor) -> tuple[dl.Tensor, dl.Tensor]:
        """The model's output for ``x`` and its loss against ``y``: the part of a step on tensors
        (what ``trainer.compile`` captures)."""
        output = self.model(x)
        return output, self.loss(output, y)

    def validation_values(self, batch: Any, output: dl.Tensor, loss: dl.Tensor) -> StepOutput:
        """``validation_step``'s values from the batch's output and loss: the loss and ``score``."""
        return {"loss": loss, **self.score(output, batch[1])}

    def score(self, output: dl.Tensor, target: dl.Tensor) -> dict[str, float]:
        """The metrics beside the loss, computed on host arrays: nothing to differentiate."""
        return {}

    def check(self, batch: Any) -> None:
        """Run ``batch`` through model and loss, so that a loss that does not fit the model's
        output or the targets (``loss=mse`` on a classifier) fails with both shapes at once.

        Raises:
            ConfigError: naming the loss, the output and target shapes, and the loss's complaint.
        """
        x, y = batch
        output = self.model(x)
        shapes = f"model output {tuple(output.shape)} {output.dtype}, targets {tuple(y.shape)} {y.dtype}"
        self.check_output(output, shapes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. MSELoss broadcasting mismatched shapes
                self.loss(output, y)
        except Exception as ex:
            raise ConfigError(
                f"loss ({type(self.loss).__name__}) does not fit this model and dataset ({shapes}): "
                f"{innermost_message(ex)}"
            ) from ex

    def check_output(self, output: dl.Tensor, shapes: str) -> None:
        """Refuse an output the task cannot score (a classifier with the wrong number of classes)."""


class Classification(Supervised):
    """Classification: cross-entropy-style loss and accuracy; each validation pass also counts a
    confusion matrix and keeps the first ``shown`` mistaken images for the pictures."""

    name = "classification"
    dataset_kinds = ("classification",)
    metric_names = ("loss", "acc")

    def __init__(self, model: dl.nn.Module, loss: Any, shown: int = 16) -> None:
        super().__init__(model, loss)
        self.shown = shown
        self.matrix: np.ndarray | None = None  # the last pass's confusion counts, true classes on rows
        self.mistakes: list[tuple[np.ndarray, int, int]] = []  # (input, true class, predicted class)

    def score(self, output: dl.Tensor, target: dl.Tensor) -> dict[str, float]:
        return {"acc": _accuracy(output.numpy(force=True).argmax(axis=1), target.numpy(force=True))}

    def on_validation_start(self) -> None:
        self.matrix, self.mistakes = None, []

    def validation_values(self, batch: Any, output: dl.Tensor, loss: dl.Tensor) -> StepOutput:
        x, y = batch
        predicted, target = output.numpy(force=True).argmax(axis=1), y.numpy(force=True)
        classes = len(self.classes) or output.shape[1]
        counts = confusion_matrix(predicted, target, classes)
        self.matrix = counts if self.matrix is None else self.matrix + counts
        missed = np.flatnonzero(predicted != target)[: self.shown - len(self.mistakes)]
        if missed.size and x.dim() == 4:  # images (N, C, H, W): the only inputs the picture can draw
            inputs = x.numpy(force=True)
            self.mistakes += [(inputs[i], int(target[i]), int(predicted[i])) for i in missed]
        return {"loss": loss, "acc": _accuracy(predicted, target)}

    def pictures(self) -> dict[str, Image.Image]:
        names = self.classes or [str(i) for i in range(0 if self.matrix is None else len(self.matrix))]
        pictures = {}
        if self.matrix is not None:
            pictures["val/confusion_matrix"] = confusion_matrix_image(self.matrix, names)
        if self.mistakes:
            images, targets, predictions = zip(*self.mistakes, strict=True)
            pictures["val/misclassified"] = misclassified_image(
                np.stack(images), list(targets), list(predictions), names
            )
        return pictures

    def check_output(self, output: dl.Tensor, shapes: str) -> None:
        if self.classes and tuple(output.shape[1:]) != (len(self.classes),):
            raise ConfigError(
                f"model: its output does not match the dataset's {len(self.classes)} classes ({shapes})"
            )


class Regression(Supervised):
    """Regression: an MSE-style loss and the mean absolute error."""

    name = "regression"
    dataset_kinds = ("regression",)
    metric_names = ("loss", "mae")

    def score(self, output: dl.Tensor, target: dl.Tensor) -> dict[str, float]:
        outputs, targets = output.numpy(force=True), target.numpy(force=True)
        return {"mae": float(np.abs(outputs - targets.reshape(outputs.shape)).mean())}


def _accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    """The share of ``predicted`` classes equal to ``target``."""
    return float(np.count_nonzero(predicted == target)) / max(len(predicted), 1)
