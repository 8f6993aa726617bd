"""Workload 3: one epoch of LeNet-5 (ReLU, max-pool) on Fashion-MNIST, batch 256, Adam."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import Settings
from benchmarks.models import fashion_mnist_epoch, lenet
from benchmarks.numpy_lenet import NumpyLeNet

TITLE = "LeNet-5 epoch (Fashion-MNIST, batch 256, Adam)"


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    return fashion_mnist_epoch(lenet, settings, floor=lambda params: NumpyLeNet(params).epoch)
