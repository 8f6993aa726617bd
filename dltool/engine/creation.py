"""Tensor factories: from data, filled, ranges, and random (every random one takes a ``generator``)."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.ops._boundary import with_out
from dltool.engine.tensor import Tensor


def _finish(array: Any, device: Any, requires_grad: bool) -> Tensor:
    if device is not None:
        array = backend.move(array, backend.device(device))
    result = Tensor._make(array)
    if requires_grad:
        result.requires_grad = True
    return result


def _shape(sizes: tuple, size: Any = None, name: str | None = None) -> tuple:
    """The shape given as ``f(2, 3)``, ``f((2, 3))`` or ``f(size=(2, 3))``, all of which PyTorch takes."""
    if size is not None:
        if sizes:
            raise TypeError(f"{name}() got multiple values for argument 'size'")
        sizes = (size,)
    elif not sizes and name is not None:
        raise TypeError(f'{name}() missing 1 required positional arguments: "size"')
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    shape = tuple(int(n) for n in sizes)
    for n in shape:
        if n < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {n}: {list(shape)}")
    return shape


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
    target = (
        dtypes.to_dtype(dtype)
        if dtype is not None
        else dtypes.infer_dtype(data if not isinstance(data, Tensor) else array)
    )
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


def _filled(fill: Any, shape: tuple, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    xp = backend.module_for(backend.device(device or "cpu"))
    array = xp.full(
        shape, fill, dtype=dtypes.to_dtype(dtype) if dtype is not None else dtypes.infer_dtype(fill)
    )
    return _finish(array, None, requires_grad)


def zeros(
    *sizes: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Zeros of the shape given as ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros(size=(2, 3))``."""
    return _filled(0.0, _shape(sizes, size, "zeros"), dtype, device, requires_grad)


def ones(
    *sizes: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Ones of the shape given as ``ones(2, 3)``, ``ones((2, 3))`` or ``ones(size=(2, 3))``."""
    return _filled(1.0, _shape(sizes, size, "ones"), dtype, device, requires_grad)


def empty(
    *sizes: Any, size: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Uninitialized in PyTorch; zeros here, since numpy's empty buys little and hides bugs."""
    return _filled(0.0, _shape(sizes, size, "empty"), dtype, device, requires_grad)


def empty_strided(
    size: Any,
    stride: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    pin_memory: bool = False,
) -> Tensor:
    """``empty(size)``: the strides are checked but not kept, since numpy lays the array out."""
    if len(size) != len(stride):
        raise RuntimeError(
            f"dimensionality of sizes ({len(size)}) must match dimensionality of strides ({len(stride)})"
        )
    return empty(size, dtype=dtype, device=device, requires_grad=requires_grad)


def full(
    size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    return _filled(fill_value, _shape((size,)), dtype, device, requires_grad)


def eye(
    n: int, m: int | None = None, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    xp = backend.module_for(backend.device(device or "cpu"))
    return _finish(
        xp.eye(n, m, dtype=dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)),
        None,
        requires_grad,
    )


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``[start, end)`` in steps; int64 unless an argument is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(v, builtins.float) for v in (start, end, step))
        dtype = dtypes.get_default_dtype() if is_float else dtypes.int64
    xp = backend.module_for(backend.device(device or "cpu"))
    return _finish(xp.arange(start, end, step).astype(dtypes.to_dtype(dtype)), None, requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    xp = backend.module_for(backend.device(device or "cpu"))
    return _finish(
        xp.linspace(start, end, steps).astype(
            dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)
        ),
        None,
        requires_grad,
    )


@with_out
def logspace(
    start: Any,
    end: Any,
    steps: int,
    base: float = 10.0,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``steps`` values from ``base ** start`` to ``base ** end``, evenly spaced in the exponent.

    Example:
        >>> logspace(0, 2, 3).tolist()
        [1.0, 10.0, 100.0]
    """
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    xp = backend.module_for(backend.device(device or "cpu"))
    values = base ** xp.linspace(builtins.float(start), builtins.float(end), steps)
    return _finish(
        values.astype(dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)),
        None,
        requires_grad,
    )


def _like(fn: Any) -> Any:
    def like(
        input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False, **kwargs: Any
    ) -> Tensor:
        return fn(
            input.shape,
            **kwargs,
            dtype=dtype or input.dtype,
            device=device or input.device,
            requires_grad=requires_grad,
        )

    like.__name__ = f"{fn.__name__}_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape, dtype and device of ``input``."
    return like


def full_like(
    input: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """``input``'s shape, dtype and device filled with ``fill_value``, laid out in memory as
    ``input`` is (PyTorch's ``preserve_format``: a convolution's output keeps its order)."""
    if device is not None and backend.device(device) != input.device:
        return full(
            input.shape, fill_value, dtype=dtype or input.dtype, device=device, requires_grad=requires_grad
        )
    array = input._xp().full_like(input._data, fill_value, dtype=dtypes.to_dtype(dtype or input.dtype))
    return _finish(array, None, requires_grad)


def zeros_like(
    input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """Zeros shaped and laid out as ``input`` (see ``full_like``)."""
    return full_like(input, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones shaped and laid out as ``input`` (see ``full_like``)."""
    return full_like(input, 1, dtype=dtype, device=device, requires_grad=requires_grad)


empty_like = zeros_like  # zeros, as ``empty`` gives


# ---------------------------------------------------------------- random


def _sample(array: np.ndarray, dtype: Any, device: Any, requires_grad: bool) -> Tensor:
    target = dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)
    return _finish(array.astype(target, copy=False), device, requires_grad)


def rand(
    *sizes: Any,
    size: Any = None,
    generator: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples from ``[0, 1)``."""
    return _sample(backend.rng(generator).random(_shape(sizes, size, "rand")), dtype, device, requires_grad)


def randn(
    *sizes: Any,
    size: Any = None,
    generator: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal samples."""
    return _sample(
        backend.rng(generator).standard_normal(_shape(sizes, size, "randn")), dtype, device, requires_grad
    )


@with_out
def randint(
    low: int = 0,
    high: Any = None,
    size: Any = None,
    *,
    generator: Any = None,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Integers drawn uniformly from ``[low, high)``, as ``randint(high, size)`` or ``randint(low, high, size)``.

    Example:
        >>> randint(10, (3,)).shape
        (3,)
    """
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if size is None:
        raise TypeError(
            "randint() received an invalid combination of arguments - expected (high, tuple of ints size) "
            "or (low, high, tuple of ints size)"
        )
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"randint(): argument 'size' must be tuple of ints, not {type(size).__name__}")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    array = backend.rng(generator).integers(low, high, _shape((size,)))
    return _sample(array, dtype or dtypes.int64, device, requires_grad)


def randperm(
    n: int, *, generator: Any = None, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """A random permutation of ``0 .. n-1``."""
    return _sample(backend.rng(generator).permutation(n), dtype or dtypes.int64, device, requires_grad)


def normal(
    mean: Any = 0.0,
    std: Any = 1.0,
    size: Any = None,
    *,
    generator: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Normal samples with ``mean`` and ``std`` (numbers or tensors of matching shape)."""
    mean_a = mean.numpy() if isinstance(mean, Tensor) else mean
    std_a = std.numpy() if isinstance(std, Tensor) else std
    shape = _shape((size,)) if size is not None else np.broadcast(mean_a, std_a).shape
    return _sample(backend.rng(generator).normal(mean_a, std_a, shape), dtype, device, requires_grad)


def bernoulli(input: Tensor, p: float | None = None, *, generator: Any = None) -> Tensor:
    """0/1 samples with probabilities ``input`` (or ``p``)."""
    probability = p if p is not None else backend.move(input._data, backend.CPU)
    sample = backend.rng(generator).random(input.shape) < probability
    return _sample(sample, input.dtype, input.device, False)


def multinomial(
    input: Tensor, num_samples: int, replacement: bool = False, *, generator: Any = None
) -> Tensor:
    """Indices drawn from the (unnormalized) probabilities in each row of ``input``."""
    weights = np.atleast_2d(backend.move(input._data, backend.CPU)).astype(np.float64)
    rng = backend.rng(generator)
    rows = [rng.choice(len(w), num_samples, replace=replacement, p=w / w.sum()) for w in weights]
    array = np.stack(rows) if input.ndim == 2 else rows[0]
    return _sample(array, dtypes.int64, input.device, False)


rand_like, randn_like = _like(rand), _like(randn)


def randint_like(
    input: Tensor,
    low: int = 0,
    high: int | None = None,
    *,
    generator: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``randint`` with the shape, dtype and device of ``input``; ``randint_like(input, high)`` takes low as 0."""
    if high is None:
        low, high = 0, low
    return randint(
        low,
        high,
        input.shape,
        generator=generator,
        dtype=dtype or input.dtype,
        device=device or input.device,
        requires_grad=requires_grad,
    )


# ---------------------------------------------------------------- Tensor.new_* (bound as methods)


def _own(self: Tensor, dtype: Any, device: Any) -> dict:
    """The dtype and device of a ``new_*`` tensor: ``self``'s unless given."""
    return {
        "dtype": self.dtype if dtype is None else dtype,
        "device": self.device if device is None else device,
    }


def new_zeros(
    self: Tensor,
    *sizes: Any,
    size: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Zeros of the given size, with this tensor's dtype and device unless given."""
    return zeros(*sizes, size=size, **_own(self, dtype, device), requires_grad=requires_grad)


def new_ones(
    self: Tensor,
    *sizes: Any,
    size: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Ones of the given size, with this tensor's dtype and device unless given."""
    return ones(*sizes, size=size, **_own(self, dtype, device), requires_grad=requires_grad)


def new_empty(
    self: Tensor,
    *sizes: Any,
    size: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``empty`` of the given size, with this tensor's dtype and device unless given."""
    return empty(*sizes, size=size, **_own(self, dtype, device), requires_grad=requires_grad)


def new_full(
    self: Tensor,
    size: Any,
    fill_value: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """``fill_value`` in the given size, with this tensor's dtype and device unless given."""
    return full(size, fill_value, **_own(self, dtype, device), requires_grad=requires_grad)


def new_tensor(
    self: Tensor, data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
) -> Tensor:
    """A copy of ``data``, with this tensor's dtype and device unless given."""
    return tensor(data, **_own(self, dtype, device), requires_grad=requires_grad)
