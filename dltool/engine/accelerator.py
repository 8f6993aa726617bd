"""``dltool.engine.accelerator``: the one accelerator dltool knows, CUDA through cupy, as ``torch.accelerator``.

The idiom ``torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"``
picks ``cuda`` on a machine with cupy and a GPU and the CPU elsewhere.
"""

from __future__ import annotations

from dltool.engine import backend, backends, cuda


def is_available() -> bool:
    """True when a GPU can run tensors (cupy installed and a GPU visible)."""
    return cuda.is_available()


def current_accelerator(check_available: bool = False) -> backend.device | None:
    """``device("cuda")`` where cupy is installed, else ``None``.

    Args:
        check_available: also return ``None`` when cupy is installed but sees no GPU.
    """
    if not backends.cuda.is_built() or (check_available and not cuda.is_available()):
        return None
    return backend.device("cuda")


def device_count() -> int:
    """The number of GPUs; 0 without one."""
    return cuda.device_count()


def current_device_index() -> int:
    """The index of the current GPU.

    Raises:
        RuntimeError: no GPU is available.
    """
    _check_available()
    return cuda.current_device()


def synchronize(device: backend.device | str | int | None = None) -> None:
    """Wait for the work queued on the GPU to finish.

    Raises:
        RuntimeError: no GPU is available (unlike ``cuda.synchronize``, as in PyTorch).
    """
    _check_available()
    cuda.synchronize(device)


def _check_available() -> None:
    if not cuda.is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")
