"""Compiled steps (``dl.compile``): the per-op chain and an MLP epoch, against eager dltool and PyTorch.

Two workloads, ``compiled_chain`` and ``compiled_mlp`` in ``benchmarks.run``: ``dltool`` is the
compiled step (captured once, untimed, then replayed), ``eager`` the same step in dltool's eager
mode, ``torch`` PyTorch eager. The capture's time is reported beside the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, fashion_mnist_arrays, timed, torch
from benchmarks.models import copy_weights, mlp, reference_model
from benchmarks.overhead import OPS
from benchmarks.overhead import _chain as chain_loss

_capture_seconds: dict[str, float] = {}


def _captured(name: str, step: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """``dl.compile(step)``, captured on ``args`` (timed once, into the capture report)."""
    compiled = dl.compile(step)
    start = time.perf_counter()
    compiled(*args)
    _capture_seconds[name] = time.perf_counter() - start
    return compiled


def _capture_note(name: str) -> dict[str, str]:
    return {"capture (first call)": f"{_capture_seconds.get(name, float('nan')) * 1e3:.1f} ms"}


# =============================================================== the per-op chain


def _chain_step(x: Any, ops: int) -> Any:
    loss = chain_loss(x, ops)
    loss.backward()
    return loss


def _chain_cases(settings: Settings) -> dict[str, Callable[[], float]]:
    ops = 200 if settings.tiny else OPS
    start = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    x = dl.tensor(start, requires_grad=True)
    compiled = _captured("chain", lambda x: _chain_step(x, ops), x)
    result = {
        "dltool": lambda: timed(lambda: compiled(x)),
        "eager": lambda: timed(lambda: _chain_step(x, ops)),
    }
    if torch is not None:
        tx = torch.tensor(start, requires_grad=True)
        result["torch"] = lambda: timed(lambda: _chain_step(tx, ops))
    return result


def _chain_extra(medians: dict[str, float], settings: Settings) -> dict[str, str]:
    ops = 200 if settings.tiny else OPS
    per_op = ", ".join(f"{k} {v / ops * 1e6:.2f} us" for k, v in medians.items())
    return {"per op, fwd+bwd": per_op, **_capture_note("chain")}


chain = SimpleNamespace(
    TITLE="compiled per-op chain (1,000 ops on 8x8, fwd+bwd)",
    cases=_chain_cases,
    extra=_chain_extra,
)


# =============================================================== an MLP epoch

BATCH = 256


def _train_step(lib: Any, model: Any, optimizer: Any) -> Callable[[Any, Any], Any]:
    loss_fn = lib.nn.CrossEntropyLoss()

    def step(x: Any, y: Any) -> Any:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _epoch(step: Callable[[Any, Any], Any], images: Any, labels: Any, order: np.ndarray) -> float:
    """One pass in batches of ``BATCH`` (the last, shorter batch dropped: one shape, one capture)."""
    loss = None
    for start in range(0, len(order) - BATCH + 1, BATCH):
        index = order[start : start + BATCH]
        loss = step(images[index], labels[index])
    return float(loss.item())


def _mlp_cases(settings: Settings) -> dict[str, Callable[[], float]]:
    images, labels = fashion_mnist_arrays(2048 if settings.tiny else None)
    order = np.random.default_rng(0).permutation(len(labels))
    reference = reference_model(mlp)

    def case(lib: Any, compiled: bool) -> Callable[[], float]:
        def run() -> float:
            model = mlp(lib)
            if reference is not None:
                copy_weights(reference, model, lib)
            step = _train_step(lib, model, lib.optim.SGD(model.parameters(), lr=0.1))
            x, y = lib.from_numpy(images), lib.from_numpy(labels)
            if compiled:
                step = _captured("mlp", step, x[order[:BATCH]], y[order[:BATCH]])
            return timed(lambda: _epoch(step, x, y, order))

        return run

    result = {"dltool": case(dl, True), "eager": case(dl, False)}
    if torch is not None:
        result["torch"] = case(torch, False)
    return result


mlp_epoch = SimpleNamespace(
    TITLE="compiled MLP 784-256-10 epoch (Fashion-MNIST, batch 256, SGD)",
    cases=_mlp_cases,
    extra=lambda medians, settings: _capture_note("mlp"),
)
