"""The benchmarked networks, written once against a library argument (dltool.engine or torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# A numpy floor: made from the starting weights, it runs one epoch (images, labels, order, batch size).
Floor = Callable[[list[np.ndarray]], Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]]


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


def cnn(lib: Any) -> Any:
    """``model=cnn`` on 28 x 28 images: two Conv-BatchNorm-ReLU-MaxPool blocks, a dropout classifier."""
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10),
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
    floor: Floor | None = None,
) -> dict[str, Callable[[], float]]:
    """One timed epoch of the same network, from the same weights, in dltool, PyTorch and ``floor``.

    ``floor``, if given, makes a hand-written numpy loop from the starting weights (``state_dict`` order).
    """
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
    if floor is not None:
        start = reference if reference is not None else build(dl)

        def numpy_case() -> float:
            epoch = floor([v.detach().numpy().copy() for v in start.state_dict().values()])
            return timed(lambda: epoch(images, labels, order, batch_size))

        result["numpy"] = numpy_case
    return result


def fashion_mnist_epoch(
    build: Callable[[Any], Any], settings: Any, batch_size: int = 256, floor: Floor | None = None
) -> dict[str, Callable[[], float]]:
    """One epoch of ``build``'s network on Fashion-MNIST images (1,024 with ``--tiny``), with Adam."""
    from benchmarks.common import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays(1024 if settings.tiny else None)
    order = np.random.default_rng(0).permutation(len(labels))
    return epoch_cases(build, adam, images.reshape(-1, 1, 28, 28), labels, order, batch_size, floor)


def adam(lib: Any, params: Any) -> Any:
    """The optimizer of the Fashion-MNIST epochs."""
    return lib.optim.Adam(params, lr=1e-3)
