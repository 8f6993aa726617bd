"""Workload 3: one epoch of LeNet-5 (ReLU, max-pool) on Fashion-MNIST, batch 256, Adam."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.common import Settings, fashion_mnist_arrays
from benchmarks.models import epoch_cases, lenet

TITLE = "LeNet-5 epoch (Fashion-MNIST, batch 256, Adam)"
BATCH = 256


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    images, labels = fashion_mnist_arrays(1024 if settings.tiny else None)
    order = np.random.default_rng(0).permutation(len(labels))
    adam = lambda lib, params: lib.optim.Adam(params, lr=1e-3)  # noqa: E731
    return epoch_cases(lenet, adam, images.reshape(-1, 1, 28, 28), labels, order, BATCH)
