"""Finite-difference checks of gradients: ``gradcheck`` and ``gradgradcheck``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.engine import _as_tuple, grad


class GradcheckError(RuntimeError):
    """An analytical gradient disagrees with the finite-difference one."""


def _host(array: Any) -> np.ndarray:
    """A float64 numpy copy of a numpy or cupy array, for comparing on the host."""
    return np.array(backend.move(array, backend.CPU), dtype=np.float64, copy=True)


def _differentiable(values: Sequence) -> list:
    from dltool.engine.tensor import Tensor

    return [v for v in values if isinstance(v, Tensor) and v.requires_grad]


def _numerical_jacobian(func: Callable, inputs: tuple, target: Any, output_index: int, eps: float) -> np.ndarray:
    """``d output / d target`` by central differences, one input element at a time."""
    flat = target._data.reshape(-1)  # a view: writes go into the input
    columns = []
    for e in range(flat.size):
        original = flat[e].item()
        flat[e] = original + eps
        plus = _host(_as_tuple(func(*inputs))[output_index]._data)
        flat[e] = original - eps
        minus = _host(_as_tuple(func(*inputs))[output_index]._data)
        flat[e] = original
        columns.append(((plus - minus) / (2 * eps)).reshape(-1))
    return np.stack(columns) if columns else np.zeros((0, 0))


def _analytical_jacobian(output: Any, targets: list) -> list[np.ndarray]:
    """One matrix per target: row e, column i holds ``d output[i] / d target[e]``."""
    from dltool.engine.tensor import Tensor

    rows: list[list] = [[] for _ in targets]
    xp = output._xp()
    for i in range(output.numel()):
        one_hot = xp.zeros(output.numel(), dtype=output.dtype)
        one_hot[i] = 1
        grads = grad(output, targets, Tensor._make(one_hot.reshape(output.shape)), retain_graph=True, allow_unused=True)
        for j, (g, x) in enumerate(zip(grads, targets, strict=True)):
            rows[j].append(np.zeros(x.numel()) if g is None else _host(g._data).reshape(-1))
    return [np.stack(r, axis=1) if r else np.zeros((x.numel(), 0)) for r, x in zip(rows, targets, strict=True)]


def gradcheck(
    func: Callable,
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compare the gradients of ``func`` at ``inputs`` with central finite differences.

    Use float64 inputs: float32 differences are too coarse for the default tolerances.

    Returns:
        True when every gradient matches; False (or GradcheckError) otherwise.
    """
    inputs = _as_tuple(inputs)
    targets = _differentiable(inputs)
    if not targets:
        raise ValueError("gradcheck expects at least one input tensor to require gradient")
    outputs = _as_tuple(func(*inputs))
    for k, output in enumerate(outputs):
        if not (hasattr(output, "requires_grad") and output.dtype.kind == "f"):
            continue
        analytical = (
            _analytical_jacobian(output, targets)
            if output.requires_grad
            else [np.zeros((x.numel(), output.numel())) for x in targets]
        )
        for j, x in enumerate(targets):
            numerical = _numerical_jacobian(func, inputs, x, k, eps)
            if numerical.size and not np.allclose(analytical[j], numerical, rtol=rtol, atol=atol):
                worst = np.abs(analytical[j] - numerical).max()
                message = (
                    f"Jacobian mismatch for output {k} with respect to input {j}: largest difference "
                    f"{worst:.3g}\nnumerical:\n{numerical}\nanalytical:\n{analytical[j]}"
                )
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def gradgradcheck(
    func: Callable,
    inputs: Any,
    grad_outputs: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Check second derivatives: ``gradcheck`` of the first gradients, taken with ``create_graph``."""
    from dltool.engine.tensor import Tensor

    inputs = _as_tuple(inputs)
    outputs = _as_tuple(func(*inputs))
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(
            Tensor(backend.move(rng.standard_normal(o.shape), o.device), requires_grad=True) for o in outputs
        )
    grad_outputs = _as_tuple(grad_outputs)
    n_inputs = len(inputs)

    def first_gradients(*args: Any) -> tuple:
        outs = _as_tuple(func(*args[:n_inputs]))
        return grad(outs, _differentiable(args[:n_inputs]), args[n_inputs:], create_graph=True, allow_unused=True)

    return gradcheck(
        first_gradients,
        inputs + grad_outputs,
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
    )
