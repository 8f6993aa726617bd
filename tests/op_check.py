"""``check_op``: the one helper behind most op tests.

It always runs a float64 finite-difference gradcheck and, where PyTorch is importable, compares
forward values and gradients with PyTorch on the same inputs. Ops are written against a library
argument (``lambda lib, x: lib.exp(x)``), so the same lambda runs on dltool and on PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import dltool.engine as dl

try:
    import torch
except ImportError:  # parity is skipped without the oracle
    torch = None


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def make_inputs(shapes: Sequence[tuple], low: float, high: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, shape) for shape in shapes]


def check_op(
    fn: Callable[..., Any],
    *shapes: tuple,
    low: float = -2.0,
    high: float = 2.0,
    seed: int = 0,
    torch_fn: Callable[..., Any] | None = None,
    arrays: Sequence[np.ndarray] | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Gradcheck ``fn(dl, *tensors)`` and, with torch installed, compare it with ``fn(torch, ...)``."""
    arrays = list(arrays) if arrays is not None else make_inputs(shapes, low, high, seed)
    inputs = [dl.tensor(a, dtype=dl.float64, requires_grad=True) for a in arrays]
    assert dl.autograd.gradcheck(lambda *xs: fn(dl, *xs), inputs, atol=1e-5, rtol=1e-3)
    if torch is None:
        return
    outputs = _as_list(fn(dl, *inputs))
    torch_inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    torch_outputs = _as_list((torch_fn or fn)(torch, *torch_inputs))
    assert len(outputs) == len(torch_outputs)
    rng = np.random.default_rng(seed + 1)
    loss, torch_loss = 0, 0
    for out, ref in zip(outputs, torch_outputs, strict=True):
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=atol, rtol=rtol)
        if ref.requires_grad:
            weights = rng.standard_normal(tuple(ref.shape))
            loss = loss + (out * dl.tensor(weights)).sum()
            torch_loss = torch_loss + (ref * torch.tensor(weights)).sum()
    if isinstance(loss, int):
        return
    grads = dl.autograd.grad(loss, inputs, allow_unused=True)
    torch_grads = torch.autograd.grad(torch_loss, torch_inputs, allow_unused=True)
    for i, (g, ref) in enumerate(zip(grads, torch_grads, strict=True)):
        if ref is None:
            assert g is None or not g.numpy().any(), f"input {i}: PyTorch gives no gradient"
            continue
        assert g is not None, f"input {i}: dltool gives no gradient, PyTorch does"
        np.testing.assert_allclose(g.numpy(), ref.numpy(), atol=atol, rtol=rtol, err_msg=f"grad of input {i}")
