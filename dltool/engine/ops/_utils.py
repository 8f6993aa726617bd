"""Helpers shared by the op families: undoing broadcasting, turning operands into tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.tensor import Tensor, _wrap_dim


def unbroadcast(grad: Any, shape: tuple) -> Any:
    """Sum ``grad`` (a Tensor or an array) over the axes numpy broadcast to reach its shape, giving
    ``shape`` back."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)  # the spelling that tensors and arrays share
    if lead:
        grad = grad.reshape(shape)
    return grad


def sum_rows(rows: Any) -> Any:
    """The column sums of a 2-D array or tensor (a bias's gradient over a batch of rows).

    An array's are one matrix-vector product with ones, which BLAS runs on every core, where
    numpy's ``sum(0)`` adds the rows one after another on one: 0.44 against 1.40 ms for 6,400 rows
    of 1,024 here, and closer to the float64 sums. A tensor (under ``create_graph``) sums as an op.
    """
    if isinstance(rows, Tensor):
        return rows.sum(0)
    return backend.array_module(rows).ones(rows.shape[0], dtype=rows.dtype) @ rows


def backward_operands(*values: Any) -> tuple:
    """The arrays behind ``values`` (Tensors or arrays) in a plain backward, else the values themselves.

    A backward formula written with what tensors and arrays share (``@``, ``.T``, arithmetic,
    ``.reshape``, ``.sum(axis)``) then builds graph ops only under ``create_graph=True``, where
    its result must be differentiable again; a plain backward skips every op's dispatch and may
    return the arrays it made (the engine wraps them where Tensors are needed).
    """
    if _grad_state.enabled:
        return values
    return tuple(v._data if isinstance(v, Tensor) else v for v in values)


def as_tensor_like(value: Any, like: Tensor) -> Tensor:
    """A tensor on ``like``'s device from a tensor, array or nested list."""
    if isinstance(value, Tensor):
        return value
    array = np.asarray(value)
    array = array.astype(dtypes.infer_dtype(value), copy=False)
    return Tensor._make(backend.move(array, like.device))


def normalize_dims(dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` (None, an int or a sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        return tuple(sorted({_wrap_dim(d, ndim) for d in dim}))
    return (_wrap_dim(dim, ndim),)


_SHORT_ROW = 64


def row_reduce(ufunc: Any, array: Any, dim: int) -> Any:
    """``ufunc.reduce(array, axis=dim, keepdims=True)``, for the softmax family's row reductions.

    NOTE: numpy reduces a short last axis one row at a time (the max of 256 rows of 10 logits
    takes ~25 us); for a 2-D numpy array with short rows, the rows are transposed first and
    reduced column-wise in whole-array passes, ~4x faster.
    """
    if array.ndim == 2 and dim == 1 and array.shape[1] <= _SHORT_ROW and type(array) is np.ndarray:
        return ufunc.reduce(np.ascontiguousarray(array.T), axis=0)[:, None]
    return ufunc.reduce(array, axis=dim, keepdims=True)


def memory_order(array: Any) -> list[int]:
    """``array``'s axes from the slowest-varying in memory to the fastest (C order: 0, 1, ...).

    Arrays made to go with a convolution's output (stored batch-innermost) follow it: numpy runs
    elementwise ops on operands of different memory orders several times slower.
    """
    return sorted(range(array.ndim), key=lambda axis: -array.strides[axis])
