"""Tensor factories: from data, filled, ranges, and random (every random one takes a ``generator``)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.tensor import Tensor


def _finish(array: Any, device: Any, requires_grad: bool) -> Tensor:
    if device is not None:
        array = backend.move(array, backend.device(device))
    result = Tensor._make(array)
    if requires_grad:
        result.requires_grad = True
    return result


def _shape(size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(n) for n in size)


def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor that copies ``data`` (numbers, nested lists, arrays or tensors).

    Example:
        >>> tensor([[1, 2], [3, 4]]).dtype
        dtype('int64')
    """
    if isinstance(data, Tensor):
        array = backend.move(data._data, backend.CPU).copy() if device is None else data._data.copy()
        device = device if device is not None else data.device
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
            data = [x.tolist() if isinstance(x, Tensor) else x for x in data]
        array = np.array(data)
    target = dtypes.to_dtype(dtype) if dtype is not None else dtypes.infer_dtype(data if not isinstance(data, Tensor) else array)
    return _finish(array.astype(target, copy=False), device, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """A tensor sharing memory with ``data`` where dtype and device allow."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if dtype or device else data
    if isinstance(data, np.ndarray):
        target = dtypes.to_dtype(dtype) if dtype is not None else dtypes.infer_dtype(data)
        return _finish(data.astype(target, copy=False), device, False)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor that shares memory with ``ndarray``."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    dtypes.to_dtype(ndarray.dtype)
    return Tensor._make(ndarray)


def _filled(fill: Any, size: tuple, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    xp = backend.module_for(backend.device(device or "cpu"))
    array = xp.full(_shape(size), fill, dtype=dtypes.to_dtype(dtype) if dtype is not None else dtypes.infer_dtype(fill))
    return _finish(array, None, requires_grad)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(0.0, size, dtype, device, requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(1.0, size, dtype, device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uninitialized in PyTorch; zeros here, since numpy's empty buys little and hides bugs."""
    return _filled(0.0, size, dtype, device, requires_grad)


def full(size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    return _filled(fill_value, (size,), dtype, device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    xp = backend.module_for(backend.device(device or "cpu"))
    return _finish(xp.eye(n, m, dtype=dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)), None, requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``[start, end)`` in steps; int64 unless an argument is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(v, builtins.float) for v in (start, end, step))
        dtype = dtypes.get_default_dtype() if is_float else dtypes.int64
    xp = backend.module_for(backend.device(device or "cpu"))
    return _finish(xp.arange(start, end, step).astype(dtypes.to_dtype(dtype)), None, requires_grad)


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    xp = backend.module_for(backend.device(device or "cpu"))
    return _finish(xp.linspace(start, end, steps).astype(dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)), None, requires_grad)


def _like(fn: Any) -> Any:
    def like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False, **kwargs: Any) -> Tensor:  # noqa: A002
        return fn(
            input.shape, **kwargs, dtype=dtype or input.dtype, device=device or input.device, requires_grad=requires_grad
        )

    like.__name__ = f"{fn.__name__}_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape, dtype and device of ``input``."
    return like


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    """``input``'s shape, dtype and device filled with ``fill_value``, laid out in memory as
    ``input`` is (PyTorch's ``preserve_format``: a convolution's output keeps its order)."""
    if device is not None and backend.device(device) != input.device:
        return full(input.shape, fill_value, dtype=dtype or input.dtype, device=device, requires_grad=requires_grad)
    array = input._xp().full_like(input._data, fill_value, dtype=dtypes.to_dtype(dtype or input.dtype))
    return _finish(array, None, requires_grad)


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    """Zeros shaped and laid out as ``input`` (see ``full_like``)."""
    return full_like(input, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:  # noqa: A002
    """Ones shaped and laid out as ``input`` (see ``full_like``)."""
    return full_like(input, 1, dtype=dtype, device=device, requires_grad=requires_grad)


empty_like = zeros_like  # zeros, as ``empty`` gives


# ---------------------------------------------------------------- random


def _sample(array: np.ndarray, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    target = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)
    return _finish(array.astype(target, copy=False), device, requires_grad)


def rand(*size: Any, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from ``[0, 1)``."""
    return _sample(backend.rng(generator).random(_shape(size)), dtype, device, requires_grad)


def randn(*size: Any, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _sample(backend.rng(generator).standard_normal(_shape(size)), dtype, device, requires_grad)


def randint(low: int, high: int | None = None, size: Any = None, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Integers from ``[low, high)``; ``randint(high, size)`` takes low as 0."""
    if size is None:
        low, high, size = 0, low, high
    if high is None:
        raise TypeError("randint() missing required argument 'size'")
    array = backend.rng(generator).integers(low, high, _shape((size,)))
    return _sample(array, dtype or dtypes.int64, device, requires_grad)


def randperm(n: int, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1``."""
    return _sample(backend.rng(generator).permutation(n), dtype or dtypes.int64, device, requires_grad)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Normal samples with ``mean`` and ``std`` (numbers or tensors of matching shape)."""
    mean_a = mean.numpy() if isinstance(mean, Tensor) else mean
    std_a = std.numpy() if isinstance(std, Tensor) else std
    shape = _shape((size,)) if size is not None else np.broadcast(mean_a, std_a).shape
    return _sample(backend.rng(generator).normal(mean_a, std_a, shape), dtype, device, requires_grad)


def bernoulli(input: Tensor, p: float | None = None, *, generator: Any = None) -> Tensor:  # noqa: A002
    """0/1 samples with probabilities ``input`` (or ``p``)."""
    probability = p if p is not None else backend.move(input._data, backend.CPU)
    sample = backend.rng(generator).random(input.shape) < probability
    return _sample(sample, input.dtype, input.device, False)


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *, generator: Any = None) -> Tensor:  # noqa: A002
    """Indices drawn from the (unnormalized) probabilities in each row of ``input``."""
    weights = np.atleast_2d(backend.move(input._data, backend.CPU)).astype(np.float64)
    rng = backend.rng(generator)
    rows = [rng.choice(len(w), num_samples, replace=replacement, p=w / w.sum()) for w in weights]
    array = np.stack(rows) if input.ndim == 2 else rows[0]
    return _sample(array, dtypes.int64, input.device, False)


rand_like, randn_like = _like(rand), _like(randn)


def randint_like(input: Tensor, low: int, high: int | None = None, *, generator: Any = None, dtype: Any = None) -> Tensor:  # noqa: A002
    if high is None:
        low, high = 0, low
    return randint(low, high, input.shape, generator=generator, dtype=dtype or input.dtype, device=input.device)
