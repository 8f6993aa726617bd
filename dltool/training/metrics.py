"""Classification metrics on host arrays: the confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np


def confusion_matrix(predictions: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes on rows and predicted classes on columns.

    Example:
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    flat = np.bincount(targets.astype(np.int64) * num_classes + predictions, minlength=num_classes**2)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> list[float | None]:
    """Recall of each class (correct / support); None for a class with no samples."""
    support = matrix.sum(axis=1)
    return [float(matrix[i, i] / n) if n else None for i, n in enumerate(support)]
