"""Workload 4: Conv2d forward and backward, batch 64, 32 to 64 channels, 3x3, 32x32 images."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, timed, torch

TITLE = "Conv2d fwd+bwd (64x32x32x32 -> 64 channels, 3x3, padding 1)"
# NOTE: right after dltool's conv ran, PyTorch's took two runs to get back to its steady state
# (45-66 ms, then 22 ms), so a single untimed run would time PyTorch before it settled
MIN_WARMUP = 3


def _step(lib, layer, x) -> None:
    layer.zero_grad()
    out = layer(x)
    out.backward(lib.ones_like(out))


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    batch = 8 if settings.tiny else 64
    images = np.random.default_rng(0).standard_normal((batch, 32, 32, 32), dtype=np.float32)

    def dltool() -> float:
        layer = dl.nn.Conv2d(32, 64, 3, padding=1)
        x = dl.from_numpy(images).requires_grad_()
        return timed(lambda: _step(dl, layer, x))

    result = {"dltool": dltool}
    if torch is not None:

        def pytorch() -> float:
            layer = torch.nn.Conv2d(32, 64, 3, padding=1)
            x = torch.from_numpy(images).requires_grad_()
            return timed(lambda: _step(torch, layer, x))

        result["torch"] = pytorch
    return result
