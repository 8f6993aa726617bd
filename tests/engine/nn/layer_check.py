"""Helpers for layer tests: PyTorch parity with copied weights, and gradcheck over a module.

``check_layer(make, shape)`` builds the layer in both libraries with the same constructor call
(``make(lib)``), copies PyTorch's initial weights into dltool's through ``load_state_dict``, runs both
in float64 on the same input, and compares outputs, buffers, and the gradients of the input and of
every parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import dltool.engine as dl


def _flat(value: Any) -> list:
    if isinstance(value, (tuple, list)):
        return [v for item in value for v in _flat(item)]
    return [value]


def copy_weights(layer: Any, torch_layer: Any) -> None:
    """Load PyTorch's state dict into the dltool layer (keys and shapes must agree)."""
    state = {k: dl.tensor(v.detach().numpy()) for k, v in torch_layer.state_dict().items()}
    layer.load_state_dict(state)


def check_layer(
    make: Callable[[Any], Any],
    *shapes: tuple,
    arrays: Sequence[np.ndarray] | None = None,
    train: bool = True,
    call: Callable[[Any, Any, list], Any] | None = None,
    atol: float = 1e-8,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Compare ``make(dl)`` with ``make(torch)`` on float64 inputs of ``shapes`` (or ``arrays``).

    ``call(lib, layer, inputs)`` runs the layer (default ``layer(*inputs)``). Returns both layers.
    """
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    arrays = list(arrays) if arrays is not None else [rng.standard_normal(s) for s in shapes]
    torch_layer = make(torch).double().train(train)
    layer = make(dl).double().train(train)
    copy_weights(layer, torch_layer)
    inputs = [dl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    torch_inputs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    run = call or (lambda lib, m, xs: m(*xs))
    outputs, torch_outputs = _flat(run(dl, layer, inputs)), _flat(run(torch, torch_layer, torch_inputs))
    assert len(outputs) == len(torch_outputs)
    loss, torch_loss = 0.0, 0.0
    for out, ref in zip(outputs, torch_outputs, strict=True):
        assert tuple(out.shape) == tuple(ref.shape)
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=atol, rtol=1e-6)
        weights = rng.standard_normal(tuple(ref.shape))
        loss = loss + (out * dl.tensor(weights)).sum()
        torch_loss = torch_loss + (ref * torch.tensor(weights)).sum()
    loss.backward()
    torch_loss.backward()
    for x, ref in zip(inputs, torch_inputs, strict=True):
        if ref.requires_grad:
            np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), atol=atol, rtol=1e-6, err_msg="input grad")
    torch_params = dict(torch_layer.named_parameters())
    for name, param in layer.named_parameters():
        ref = torch_params[name].grad
        assert (param.grad is None) == (ref is None), name
        if ref is not None:
            np.testing.assert_allclose(param.grad.numpy(), ref.numpy(), atol=atol, rtol=1e-6, err_msg=name)
    torch_buffers = dict(torch_layer.named_buffers())
    for name, buffer in layer.named_buffers():
        np.testing.assert_allclose(buffer.numpy(), torch_buffers[name].numpy(), atol=atol, rtol=1e-6, err_msg=name)
    return layer, torch_layer


def gradcheck_layer(layer: Any, *shapes: tuple, seed: int = 0, call: Callable | None = None) -> None:
    """Finite-difference check of ``layer`` in float64 w.r.t. its input(s) and all parameters."""
    layer = layer.double()
    rng = np.random.default_rng(seed)
    inputs = [dl.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    params = list(layer.parameters())
    run = call or (lambda m, xs: m(*xs))

    def fn(*args: Any) -> Any:
        return run(layer, list(args[: len(inputs)]))

    assert dl.autograd.gradcheck(fn, inputs + params)
