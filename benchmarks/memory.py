"""Workload 7: peak memory (RSS) of training the MLP, dltool against PyTorch.

Each framework trains in its own process; what is compared is the growth of the peak resident set
over the process's footprint once the data is loaded and the model built, so the import sizes of
the two frameworks do not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import Settings, torch

TITLE = "peak RSS growth while training the MLP (batch 256)"
UNIT = "MiB"


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _train(framework: str, steps: int) -> float:
    """Train ``steps`` batches in this process; the peak RSS growth in MiB."""
    from benchmarks.common import fashion_mnist_arrays
    from benchmarks.models import mlp, train_epoch

    if framework == "torch":
        import torch as lib
    else:
        import dltool.engine as lib
    images, labels = fashion_mnist_arrays(steps * 256)
    order = np.arange(len(labels))
    model = mlp(lib)
    optimizer = lib.optim.SGD(model.parameters(), lr=0.1)
    x, y, idx = lib.from_numpy(images), lib.from_numpy(labels), lib.from_numpy(order)
    baseline = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    train_epoch(lib, model, optimizer, x, y, idx, 256)
    return _status("VmHWM") - baseline


def _in_subprocess(framework: str, steps: int) -> float:
    code = f"from benchmarks.memory import _train; print(_train({framework!r}, {steps}))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(json.loads(output.stdout.strip().splitlines()[-1]))


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    steps = 8 if settings.tiny else 50
    result = {"dltool": lambda: _in_subprocess("dltool", steps)}
    if torch is not None:
        result["torch"] = lambda: _in_subprocess("torch", steps)
    return result
