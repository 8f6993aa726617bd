"""A small two-layer regression model written with raw ops, trained the same way in dltool and PyTorch.

``lib`` is ``dltool.engine`` or ``torch``: every function here runs unchanged on both, so the
parity tests compare the libraries, not two hand-written models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

SHAPES = [(4, 8), (8,), (8, 3), (3,)]
BATCH, BATCHES = 6, 4


def initial_weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 0.5, shape) for shape in SHAPES]


def data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH * BATCHES, 4))
    return x, np.sin(x @ rng.normal(size=(4, 3)))


def make_params(lib: Any, arrays: list[np.ndarray], dtype: str) -> list[Any]:
    return [lib.tensor(a, dtype=getattr(lib, dtype), requires_grad=True) for a in arrays]


def loss_fn(lib: Any, params: list[Any], x: Any, y: Any) -> Any:
    w1, b1, w2, b2 = params
    out = (x @ w1 + b1).relu() @ w2 + b2
    return ((out - y) ** 2).mean()


def train(
    lib: Any,
    params: list[Any],
    optimizer: Any,
    steps: int,
    dtype: str,
    scheduler: Any = None,
    start: int = 0,
    on_loss: Callable[[Any, float], None] | None = None,
    sign: float = 1.0,
) -> list[float]:
    """Run ``steps`` steps from global step ``start`` (mini-batches cycle); returns the losses.

    ``sign=-1`` trains on the negated loss, for optimizers that maximize.
    """
    x, y = data()
    losses = []
    for step in range(start, start + steps):
        rows = slice((step % BATCHES) * BATCH, (step % BATCHES + 1) * BATCH)
        xb = lib.tensor(x[rows], dtype=getattr(lib, dtype))
        yb = lib.tensor(y[rows], dtype=getattr(lib, dtype))
        optimizer.zero_grad()
        loss = loss_fn(lib, params, xb, yb) * sign
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_loss is not None:
            on_loss(scheduler, losses[-1])
        elif scheduler is not None:
            scheduler.step()
    return losses


def weights(params: list[Any]) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in params]
