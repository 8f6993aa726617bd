"""Compiled steps (``dl.compile``): the per-op chain and training epochs, against eager dltool and
PyTorch, and a compiled step's peak memory against an eager one's.

Workloads ``compiled_chain``, ``compiled_mlp``, ``compiled_lenet`` and ``compiled_cnn`` in
``benchmarks.run``: ``dltool`` is the compiled step (captured once, untimed, then replayed),
``eager`` the same step in dltool's eager mode, ``torch`` PyTorch eager; the capture's time is
reported beside the table. ``compiled_memory_mlp`` and ``compiled_memory_cnn``: the peak RSS growth
of steady-state steps over the footprint before the first step, each in a process of its own
(``benchmarks.memory``'s measure), compiled (its buffers included) against eager.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, fashion_mnist_arrays, timed, torch
from benchmarks.memory import _status
from benchmarks.models import adam, cnn, copy_weights, lenet, mlp, reference_model
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


# =============================================================== training epochs

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


def _sgd(lib: Any, params: Any) -> Any:
    return lib.optim.SGD(params, lr=0.1)


# name -> the network and the shape of one input
_MODELS = {"mlp": (mlp, (784,)), "lenet": (lenet, (1, 28, 28)), "cnn": (cnn, (1, 28, 28))}


def _epoch_cases(
    name: str, make_optimizer: Callable[[Any, Any], Any], settings: Settings
) -> dict[str, Callable[[], float]]:
    """One timed epoch of network ``name`` from the same weights: compiled and eager dltool, and
    PyTorch eager."""
    build, shape = _MODELS[name]
    images, labels = fashion_mnist_arrays(2048 if settings.tiny else None)
    images = images.reshape(-1, *shape)
    order = np.random.default_rng(0).permutation(len(labels))
    reference = reference_model(build)

    def case(lib: Any, compiled: bool) -> Callable[[], float]:
        def run() -> float:
            model = build(lib)
            if reference is not None:
                copy_weights(reference, model, lib)
            step = _train_step(lib, model, make_optimizer(lib, model.parameters()))
            x, y = lib.from_numpy(images), lib.from_numpy(labels)
            if compiled:
                step = _captured(name, step, x[order[:BATCH]], y[order[:BATCH]])
            return timed(lambda: _epoch(step, x, y, order))

        return run

    result = {"dltool": case(dl, True), "eager": case(dl, False)}
    if torch is not None:
        result["torch"] = case(torch, False)
    return result


def _epoch_workload(name: str, title: str, make_optimizer: Callable) -> Any:
    return SimpleNamespace(
        TITLE=title,
        cases=lambda settings: _epoch_cases(name, make_optimizer, settings),
        extra=lambda medians, settings: _capture_note(name),
    )


mlp_epoch = _epoch_workload("mlp", "compiled MLP 784-256-10 epoch (Fashion-MNIST, batch 256, SGD)", _sgd)
lenet_epoch = _epoch_workload("lenet", "compiled LeNet-5 epoch (Fashion-MNIST, batch 256, Adam)", adam)
cnn_epoch = _epoch_workload("cnn", "compiled CNN epoch (Fashion-MNIST, batch 256, Adam)", adam)


# =============================================================== peak memory of a step


def _peak_growth(model_name: str, compiled: bool, steps: int) -> float:
    """Peak RSS growth in MiB over the process's footprint before the first step, while ``steps``
    steady-state steps of ``model_name`` run (after the capture, or two eager warm-up steps, so
    that the buffers and Adam's state exist and count). Run in a process of its own."""
    images, labels = fashion_mnist_arrays(BATCH)
    build, shape = _MODELS[model_name]
    model = build(dl)
    step = _train_step(dl, model, adam(dl, model.parameters()))
    x, y = dl.from_numpy(images.reshape(-1, *shape)), dl.from_numpy(labels)
    # NOTE: glibc keeps freed heap (the data's loading, and the capture's eager run, which holds
    # every intermediate until it ends; neither is the step's): given back before each reading
    trim = ctypes.CDLL("libc.so.6").malloc_trim
    trim(0)
    baseline = _status("VmRSS")
    step = dl.compile(step) if compiled else step
    for _ in range(2):
        step(x, y)
    trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    for _ in range(steps):
        step(x, y)
    return _status("VmHWM") - baseline


def _peak_in_subprocess(model_name: str, compiled: bool, steps: int) -> float:
    code = f"from benchmarks.compiled import _peak_growth; print(_peak_growth({model_name!r}, {compiled}, {steps}))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(output.stdout.strip().splitlines()[-1])


def _memory_workload(model_name: str) -> Any:
    def cases(settings: Settings) -> dict[str, Callable[[], float]]:
        steps = 2 if settings.tiny else 5
        return {
            kind: lambda kind=kind: _peak_in_subprocess(model_name, kind == "dltool", steps)
            for kind in ("dltool", "eager")
        }

    return SimpleNamespace(
        TITLE=f"peak RSS growth of a compiled {model_name} train step (batch 256, Adam)",
        UNIT="MiB",
        cases=cases,
    )


mlp_memory = _memory_workload("mlp")
cnn_memory = _memory_workload("cnn")
