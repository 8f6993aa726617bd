"""Workload 1: per-op overhead, a chain of 1,000 small elementwise ops forward and backward."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, timed, torch

TITLE = "per-op overhead (1,000 ops on 8x8, fwd+bwd)"
OPS = 1000


def _chain(x, ops: int):
    y = x
    for _ in range(ops // 4):
        y = y * 1.001
        y = y + 0.5
        y = y.tanh()
        y = y - 0.1
    return y.sum()


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    ops = 200 if settings.tiny else OPS
    start = np.random.default_rng(0).random((8, 8), dtype=np.float32)

    def dltool() -> float:
        x = dl.tensor(start, requires_grad=True)
        return timed(lambda: _chain(x, ops).backward())

    result = {"dltool": dltool}
    if torch is not None:

        def pytorch() -> float:
            x = torch.tensor(start, requires_grad=True)
            return timed(lambda: _chain(x, ops).backward())

        result["torch"] = pytorch
    return result


def extra(medians: dict[str, float], settings: Settings) -> dict[str, str]:
    """The same medians per op, the figure the issue quotes."""
    ops = 200 if settings.tiny else OPS
    return {"per op, fwd+bwd": ", ".join(f"{k} {v / ops * 1e6:.2f} us" for k, v in medians.items())}
