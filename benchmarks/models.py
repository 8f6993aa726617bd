"""The benchmarked networks, written once against a library argument (dltool.engine or torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def mlp(lib: Any) -> Any:
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def lenet(lib: Any) -> Any:
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def reference_model(build: Any) -> Any:
    """The PyTorch model whose initial weights every framework starts from (None without torch)."""
    from benchmarks.common import torch

    if torch is None:
        return None
    torch.manual_seed(0)
    return build(torch)


def copy_weights(source: Any, target: Any, lib: Any) -> None:
    """Start both frameworks from the same weights, so they do the same arithmetic."""
    state = {k: lib.tensor(v.detach().numpy()) for k, v in source.state_dict().items()}
    target.load_state_dict(state)


def train_epoch(lib: Any, model: Any, optimizer: Any, images: Any, labels: Any, order: Any, batch_size: int) -> float:
    """One pass over ``images`` in ``order``; batches are sliced from whole tensors."""
    loss_fn = lib.nn.CrossEntropyLoss()
    loss = None
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(images[index]), labels[index])
        loss.backward()
        optimizer.step()
    return float(loss.item())


def epoch_cases(
    build: Callable[[Any], Any],
    make_optimizer: Callable[[Any, Any], Any],
    images: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    batch_size: int,
) -> dict[str, Callable[[], float]]:
    """One timed epoch of the same network, from the same weights, in dltool and in PyTorch."""
    import dltool.engine as dl
    from benchmarks.common import timed, torch

    reference = reference_model(build)

    def case(lib: Any) -> Callable[[], float]:
        def run() -> float:
            model = build(lib)
            if reference is not None:
                copy_weights(reference, model, lib)
            optimizer = make_optimizer(lib, model.parameters())
            x, y, idx = lib.from_numpy(images), lib.from_numpy(labels), lib.from_numpy(order)
            return timed(lambda: train_epoch(lib, model, optimizer, x, y, idx, batch_size))

        return run

    result = {"dltool": case(dl)}
    if torch is not None:
        result["torch"] = case(torch)
    return result
