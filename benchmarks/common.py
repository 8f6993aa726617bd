"""What every workload shares: the timer, the oracle, the thread settings, the data."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import torch
except ImportError:  # the PyTorch columns are left out
    torch = None


@dataclass
class Settings:
    """Options every workload reads: ``tiny`` shrinks sizes so CI can run the whole suite fast."""

    tiny: bool = False
    threads: int = os.cpu_count() or 1


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def configure_threads(threads: int) -> None:
    """Give PyTorch the same number of threads numpy's BLAS uses."""
    if torch is not None:
        torch.set_num_threads(threads)


def environment(threads: int) -> dict[str, Any]:
    """The facts that make figures comparable: machine, versions, BLAS and thread settings."""
    info: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "threads": threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        # NOTE: these two force OpenBLAS's kernels; some machines set them for old builds
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "unset"),
    }
    config = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    info["numpy_blas"] = f"{config.get('name', '?')} {config.get('version', '')}".strip()
    info["blas_kernel"] = blas_kernel()
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def blas_kernel() -> str:
    """The kernel family numpy's BLAS runs ("SkylakeX", "Haswell", ...), as threadpoolctl reports it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl is not installed)"
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return ", ".join(f"{lib.get('internal_api')} {lib.get('architecture', '?')}" for lib in blas) or "none found"


def forced_kernel_note(env: dict[str, Any]) -> str | None:
    """A warning when ``OPENBLAS_CORETYPE`` chose numpy's BLAS kernels rather than OpenBLAS itself:
    PyTorch's kernels ignore it, so dltool's matrix products may run slower than they could."""
    forced = env.get("OPENBLAS_CORETYPE", "unset")
    if forced == "unset":
        return None
    return (
        f"note: OPENBLAS_CORETYPE={forced} forces numpy's BLAS kernels (blas_kernel={env.get('blas_kernel')}); "
        "PyTorch's are not affected. To time the kernels OpenBLAS picks itself, run with "
        "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` (benchmarks/README.md)."
    )


def fashion_mnist_arrays(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST training images as normalized float32 rows and int64 labels."""
    from dltool.datasets import FashionMNIST, default_root

    dataset = FashionMNIST(default_root(), train=True)
    images = np.asarray(dataset.data[:limit], dtype=np.float32).reshape(-1, 784) / 255.0
    images = (images - 0.2860) / 0.3530
    return images.astype(np.float32), np.asarray(dataset.targets[:limit], dtype=np.int64)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean cross-entropy of ``logits`` and its gradient, for the hand-written numpy floors."""
    rows = np.arange(len(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = float((np.log(total[:, 0]) - shifted[rows, labels]).mean())
    grad = exp / total
    grad[rows, labels] -= 1
    grad /= len(labels)
    return loss, grad
