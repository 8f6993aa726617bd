"""Workload 3: one epoch of LeNet-5 (ReLU, max-pool) on Fashion-MNIST, batch 256, Adam."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, fashion_mnist_arrays, timed, torch
from benchmarks.models import copy_weights, lenet, reference_model, train_epoch

TITLE = "LeNet-5 epoch (Fashion-MNIST, batch 256, Adam)"
BATCH = 256


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    images, labels = fashion_mnist_arrays(1024 if settings.tiny else None)
    images = images.reshape(-1, 1, 28, 28)
    order = np.random.default_rng(0).permutation(len(labels))
    reference = reference_model(lenet)

    def dltool() -> float:
        model = lenet(dl)
        if reference is not None:
            copy_weights(reference, model, dl)
        optimizer = dl.optim.Adam(model.parameters(), lr=1e-3)
        x, y, idx = dl.from_numpy(images), dl.from_numpy(labels), dl.from_numpy(order)
        return timed(lambda: train_epoch(dl, model, optimizer, x, y, idx, BATCH))

    result = {"dltool": dltool}
    if torch is not None:

        def pytorch() -> float:
            model = lenet(torch)
            model.load_state_dict(reference.state_dict())
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            x, y, idx = torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(order)
            return timed(lambda: train_epoch(torch, model, optimizer, x, y, idx, BATCH))

        result["torch"] = pytorch
    return result
