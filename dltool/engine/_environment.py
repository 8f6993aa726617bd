"""Process-wide settings under PyTorch's names: deterministic algorithms and print options.

Programs set these first (``torch.use_deterministic_algorithms(True)``,
``torch.set_printoptions(precision=3)``), so they are accepted and, where dltool has the knob,
honoured. Thread counts live in ``_threads``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import numpy as np

# ---------------------------------------------------------------- determinism

_deterministic = {"mode": False, "warn_only": False}


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Record whether deterministic algorithms are required, as ``torch.use_deterministic_algorithms``.

    The flag changes nothing. dltool's CPU ops are deterministic. On a GPU, accumulating into
    repeated indices (``index_put``/``scatter_add`` and the gradients of indexing and embeddings)
    runs on cupy's atomic adds, whose float sums may differ in the last bits between runs; where
    PyTorch would refuse those ops in deterministic mode, dltool runs them.

    Raises:
        TypeError: ``mode`` or ``warn_only`` is not a bool.
    """
    for name, value in (("mode", mode), ("warn_only", warn_only)):
        if not isinstance(value, bool):
            raise TypeError(
                f"_set_deterministic_algorithms(): argument '{name}' must be bool, not {type(value).__name__}"
            )
    _deterministic.update(mode=mode, warn_only=warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    return _deterministic["mode"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _deterministic["warn_only"]


# ---------------------------------------------------------------- print options


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


_PROFILES = {
    "default": _PrintOptions(),
    "short": _PrintOptions(precision=2, edgeitems=2),
    "full": _PrintOptions(threshold=math.inf),
}
_print_options = _PrintOptions()


def set_printoptions(
    precision: int | None = None,
    threshold: float | None = None,
    edgeitems: int | None = None,
    linewidth: int | None = None,
    profile: str | None = None,
    sci_mode: bool | None = None,
) -> None:
    """Set how tensors print, as ``torch.set_printoptions``.

    Args:
        precision: digits after the decimal point of floats (default 4).
        threshold: element count above which a tensor prints summarized (default 1000).
        edgeitems: items shown at each end of a summarized dimension (default 3).
        linewidth: characters per line before wrapping (default 80).
        profile: ``"default"``, ``"short"`` or ``"full"`` resets the four options above first
            (an unknown name is an error here; PyTorch ignores it).
        sci_mode: ``True`` or ``False`` forces scientific notation on or off; ``None`` (the
            default, also restored by every call that omits it) chooses from the values.

    Example:
        >>> set_printoptions(precision=2)
        >>> tensor([1.12345])
        tensor([1.12])
        >>> set_printoptions(profile="default")
    """
    global _print_options
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"profile should be one of {', '.join(map(repr, _PROFILES))}, got {profile!r}")
        _print_options = dataclasses.replace(_PROFILES[profile])
    for name, value in (
        ("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems), ("linewidth", linewidth)
    ):  # fmt: skip
        if value is not None:
            setattr(_print_options, name, value)
    _print_options.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """The current print options as a dict (the keywords of ``set_printoptions``)."""
    return dict(vars(_print_options))


def array2string_options(array: np.ndarray) -> dict[str, Any]:
    """Keyword arguments for ``np.array2string`` that print ``array`` under the current options."""
    options = _print_options
    threshold = sys.maxsize if math.isinf(options.threshold) else int(options.threshold)
    result: dict[str, Any] = {
        "precision": options.precision,
        "threshold": threshold,
        "edgeitems": options.edgeitems,
        "max_line_width": options.linewidth,
    }
    if options.sci_mode is False:
        result["suppress_small"] = True
    elif options.sci_mode and array.dtype.kind == "f":
        # PyTorch pads every entry to the widest: one more column before the point for a minus sign
        digits_left = 2 if (array < 0).any() else 1
        result["formatter"] = {
            "float_kind": lambda value: np.format_float_scientific(
                value, precision=options.precision, unique=False, pad_left=digits_left
            )
        }
    return result
