"""The confusion matrix and per-class accuracy match a direct count."""

from __future__ import annotations

import numpy as np

from dltool.training.metrics import confusion_matrix, per_class_accuracy


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
