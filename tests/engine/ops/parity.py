"""Value and error parity with PyTorch for what ``check_op`` does not cover.

``check_op`` needs differentiable float outputs; integer results (indices, counts) and argument
errors are compared here instead, by running the same ``fn(lib)`` on dltool and on PyTorch
(skipped where PyTorch is not installed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dltool.engine as dl


def _arrays(result: Any) -> list[np.ndarray]:
    results = result if isinstance(result, (tuple, list)) else (result,)
    return [r.detach().cpu().numpy() if hasattr(r, "detach") else np.asarray(r) for r in results]


def same_values(fn: Callable[[Any], Any], rtol: float = 1e-6) -> None:
    """``fn(dl)`` and ``fn(torch)`` give the same values, shapes and dtypes."""
    torch = pytest.importorskip("torch")
    ours, theirs = _arrays(fn(dl)), _arrays(fn(torch))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=rtol, equal_nan=True)


def same_error(fn: Callable[[Any], Any]) -> None:
    """``fn(dl)`` raises what ``fn(torch)`` raises: the same type and the same first line."""
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as expected:
        fn(torch)
    with pytest.raises(expected.type) as raised:
        fn(dl)
    assert str(raised.value) == str(expected.value).splitlines()[0]
