"""``dltool.engine.backends.cudnn``: cuDNN's flags, as ``torch.backends.cudnn``.

dltool's convolutions are im2col plus BLAS matmuls (cuBLAS through cupy on a GPU) and never call
cuDNN, so ``is_available()`` is False and the flags are stored for the code that sets and reads
them (``cudnn.benchmark = True``) without changing anything. dltool's ops are deterministic
whatever ``deterministic`` says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

enabled = True
benchmark = False
benchmark_limit = 10
deterministic = False
allow_tf32 = True

_FLAGS = ("enabled", "benchmark", "benchmark_limit", "deterministic", "allow_tf32")


def is_available() -> bool:
    """False: dltool does not use cuDNN."""
    return False


def version() -> int | None:
    """None, as PyTorch answers where cuDNN is not available."""
    return None


@contextlib.contextmanager
def flags(
    enabled: bool = False,
    benchmark: bool = False,
    benchmark_limit: int = 10,
    deterministic: bool = False,
    allow_tf32: bool = True,
) -> Iterator[None]:
    """Set the flags inside a ``with`` block and restore them after it.

    Example:
        >>> with flags(enabled=False):
        ...     pass
    """
    module = globals()
    saved = {name: module[name] for name in _FLAGS}
    module.update(
        enabled=enabled, benchmark=benchmark, benchmark_limit=benchmark_limit,
        deterministic=deterministic, allow_tf32=allow_tf32,
    )  # fmt: skip
    try:
        yield
    finally:
        module.update(saved)
