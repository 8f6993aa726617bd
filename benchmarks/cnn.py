"""Workload: one epoch of ``model=cnn`` (Conv-BatchNorm-ReLU-MaxPool twice, dropout classifier) on
Fashion-MNIST, batch 256, Adam."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import Settings
from benchmarks.models import cnn, fashion_mnist_epoch
from benchmarks.numpy_cnn import NumpyCNN

TITLE = "CNN epoch (Fashion-MNIST, batch 256, Adam)"


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    return fashion_mnist_epoch(cnn, settings, floor=lambda state: NumpyCNN(state).epoch)
