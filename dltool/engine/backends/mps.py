"""``dltool.engine.backends.mps``: Apple's Metal backend, which dltool does not have, as ``torch.backends.mps``."""

from __future__ import annotations


def is_available() -> bool:
    """False: dltool runs on the CPU (numpy) and on NVIDIA GPUs (cupy) only."""
    return False


def is_built() -> bool:
    return False
