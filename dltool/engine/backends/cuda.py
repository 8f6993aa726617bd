"""``dltool.engine.backends.cuda``: the CUDA switches, as ``torch.backends.cuda``.

``matmul.allow_tf32`` and the reduced-precision flags are stored, not applied: cupy decides on
TF32 from its own ``CUPY_TF32`` environment variable.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

matmul = SimpleNamespace(
    allow_tf32=False,
    allow_fp16_reduced_precision_reduction=True,
    allow_bf16_reduced_precision_reduction=True,
)


def is_built() -> bool:
    """True when cupy, dltool's CUDA backend, is installed (a GPU may still be missing)."""
    return importlib.util.find_spec("cupy") is not None
