"""Workload 2: one epoch of an MLP 784-256-10 on Fashion-MNIST, batch 256, SGD."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, fashion_mnist_arrays, softmax_cross_entropy, timed
from benchmarks.models import epoch_cases, mlp, reference_model

TITLE = "MLP 784-256-10 epoch (Fashion-MNIST, batch 256, SGD)"
BATCH, LR = 256, 0.1


def numpy_epoch(params: list[np.ndarray], images: np.ndarray, labels: np.ndarray, order: np.ndarray) -> float:
    """The same network and update written by hand: the floor any numpy engine can reach."""
    w1, b1, w2, b2 = params
    loss = 0.0
    for start in range(0, len(order), BATCH):
        index = order[start : start + BATCH]
        x, y = images[index], labels[index]
        hidden = x @ w1.T + b1
        active = np.maximum(hidden, 0)
        loss, grad_logits = softmax_cross_entropy(active @ w2.T + b2, y)
        grad_active = grad_logits @ w2
        grad_active[hidden <= 0] = 0
        w2 -= LR * (grad_logits.T @ active)
        b2 -= LR * grad_logits.sum(axis=0)
        w1 -= LR * (grad_active.T @ x)
        b1 -= LR * grad_active.sum(axis=0)
    return loss


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    images, labels = fashion_mnist_arrays(2048 if settings.tiny else None)
    order = np.random.default_rng(0).permutation(len(labels))
    sgd = lambda lib, params: lib.optim.SGD(params, lr=LR)  # noqa: E731
    result = epoch_cases(mlp, sgd, images, labels, order, BATCH)
    reference = reference_model(mlp)  # the weights epoch_cases starts both frameworks from
    start = reference if reference is not None else mlp(dl)

    def numpy_floor() -> float:
        params = [p.detach().numpy().copy() for p in start.parameters()]
        return timed(lambda: numpy_epoch(params, images, labels, order))

    result["numpy"] = numpy_floor
    return result
