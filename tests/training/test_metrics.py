"""Metrics are plain numbers; the confusion matrix and per-class accuracy match a direct count."""

from __future__ import annotations

import numpy as np

import dltool.engine as dl
from dltool.training.metrics import RunningMetrics, confusion_matrix, per_class_accuracy


def test_running_metrics_weight_batches_by_size() -> None:
    running = RunningMetrics("classification")
    running.update(1.0, dl.tensor([[0.0, 1.0], [1.0, 0.0]]), dl.tensor([1, 1]))
    running.update(4.0, dl.tensor([[0.0, 1.0]], requires_grad=True) * 1.0, dl.tensor([1]))  # still in a graph
    metrics = running.compute("val")
    assert metrics == {"val/loss": 2.0, "val/acc": 2 / 3}
    assert all(type(v) is float for v in metrics.values())
    restored = RunningMetrics("classification")
    restored.load_state_dict(running.state_dict())
    assert restored.compute("val") == metrics


def test_regression_reports_mean_absolute_error() -> None:
    running = RunningMetrics("regression")
    running.update(0.5, dl.tensor([[1.0], [2.0]]), dl.tensor([0.0, 2.5]))  # targets reshaped to the output's
    assert running.compute("train") == {"train/loss": 0.5, "train/mae": 0.75}
    assert type(running.score_sum) is float


def test_confusion_matrix_and_per_class_accuracy() -> None:
    rng = np.random.default_rng(0)
    targets, predictions = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    matrix = confusion_matrix(predictions, targets, 5)
    expected = np.zeros((5, 5), dtype=np.int64)
    np.add.at(expected, (targets, predictions), 1)
    np.testing.assert_array_equal(matrix, expected)
    accuracy = per_class_accuracy(matrix)
    assert accuracy[4] is None
    assert accuracy[0] == np.mean(predictions[targets == 0] == 0)
