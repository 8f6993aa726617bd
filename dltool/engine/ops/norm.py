"""Norms and distances: ``vector_norm``, ``matrix_norm``, ``linalg.norm``, ``dist``, ``cdist``.

``VectorNorm`` and ``Cdist`` get their own ``Function``: the composed forms have 0/0 in their
gradient where a norm is zero, where PyTorch gives 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import type_name, with_out
from dltool.engine.ops._utils import normalize_dims, unbroadcast
from dltool.engine.ops.decomposition import svdvals
from dltool.engine.ops.elementwise import _pair, abs, cast, sign, where
from dltool.engine.tensor import Tensor, _wrap_dim

_INF = float("inf")


def _powered_share(diff: Tensor, norm: Tensor, p: float) -> Tensor:
    """``d norm / d diff`` for a p-norm: ``sign(diff) |diff|**(p-1) / norm**(p-1)``, 0 where
    ``norm`` (or, for p < 1, ``diff``) is 0, as PyTorch takes it."""
    if p == 1:
        return sign(diff)
    if p == 2:
        return diff / where(norm == 0, 1.0, norm)
    if math.isinf(p):
        return sign(diff) * cast(abs(diff) == norm, diff.dtype)
    # the 1 stands in for 0 (whose share is 0) so that a negative power never meets it
    powered = where(diff == 0, 0.0, sign(diff) * abs(where(diff == 0, 1.0, diff)) ** (p - 1))
    return where(norm == 0, 0.0, powered / where(norm == 0, 1.0, norm) ** (p - 1))


def _p_norm(magnitude: Any, p: float, axis: Any, keepdims: bool) -> Any:
    """The p-norm of the array ``magnitude`` (already absolute) over ``axis``, on its array module."""
    with np.errstate(divide="ignore", over="ignore"):  # 0 ** negative p is inf, as in PyTorch
        if p == _INF:
            return magnitude.max(axis=axis, keepdims=keepdims)
        if p == -_INF:
            return magnitude.min(axis=axis, keepdims=keepdims)
        if p == 0:
            return (magnitude != 0).sum(axis=axis, keepdims=keepdims).astype(magnitude.dtype)
        if p == 1:
            return magnitude.sum(axis=axis, keepdims=keepdims)
        if p == 2:
            return (magnitude * magnitude).sum(axis=axis, keepdims=keepdims) ** 0.5
        return (magnitude**p).sum(axis=axis, keepdims=keepdims) ** (1.0 / p)


# =============================================================== vector norms


class VectorNorm(Function):
    @staticmethod
    def forward(ctx, x, p, axes, keepdim):
        norm = _p_norm(x._xp().abs(x._data), p, axes, True)
        ctx.save_for_backward(x, Tensor._make(norm))
        ctx.p, ctx.axes = p, axes
        return norm if keepdim else norm.squeeze(axes)

    @staticmethod
    def backward(ctx, grad_output):
        x, norm = ctx.saved_tensors
        if ctx.p == 0:
            return None, None, None, None
        share = _powered_share(x, norm, ctx.p)
        if math.isinf(ctx.p):  # ties share the gradient evenly, as in PyTorch
            share = share / cast(abs(x) == norm, x.dtype).sum(dim=ctx.axes, keepdim=True)
        return grad_output.reshape(norm.shape) * share, None, None, None


def _check_float(name: str, input: Tensor) -> None:
    if input.dtype.kind != "f":
        raise RuntimeError(
            f"{name}: Expected a floating point or complex tensor as input. Got {type_name(input.dtype)}"
        )


@with_out
def vector_norm(
    x: Tensor, ord: float = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """The ``ord``-norm of ``x`` over ``dim`` (all dims by default) treated as one vector.

    ``ord`` is any number, ``inf`` or ``-inf``; 0 counts the non-zero elements. The gradient is 0
    where the norm is 0.

    Example:
        >>> vector_norm(tensor([3.0, 4.0])).item()
        5.0
    """
    if isinstance(ord, str):
        raise TypeError(f"linalg_vector_norm(): argument 'ord' must be Number, not {type(ord).__name__}")
    if dtype is not None:
        dtype = dtypes.to_dtype(dtype)
        if dtype.kind != "f":
            raise RuntimeError(
                f"linalg.vector_norm: dtype should be floating point or complex, but got {type_name(dtype)}"
            )
    _check_float("linalg.vector_norm", x)
    if dtype is not None:
        x = cast(x, dtype)
    axes = normalize_dims(dim, x.ndim)
    if ord < 0 or ord == _INF:
        _check_identity(x, axes, dim, ord)
    return VectorNorm.apply(x, float(ord), axes, keepdim)


def _check_identity(x: Tensor, axes: tuple, dim: Any, ord: float) -> None:
    """PyTorch's error for a max-like norm (inf or negative ord) of an empty slice: it has no value."""
    if dim is None and x.numel() == 0:
        raise RuntimeError(
            f"linalg.vector_norm cannot compute the {ord:g} norm on an empty tensor because the "
            "operation does not have an identity"
        )
    for axis in axes:
        if x.shape[axis] == 0:
            raise RuntimeError(
                f"linalg.vector_norm cannot compute the {ord:g} norm on the dimension {axis}because "
                "this dimension is empty and the operation does not have an identity"
            )


# =============================================================== matrix norms


_MATRIX_ORDS = ("fro", "nuc", _INF, -_INF, 1, -1, 2, -2)


def _matrix_dims(A: Tensor, dim: Any) -> tuple[int, int]:
    if not isinstance(dim, (tuple, list)) or len(dim) != 2:
        raise RuntimeError(
            f"linalg.matrix_norm: dim must be a 2-tuple. Got {dim if isinstance(dim, int) else len(dim)}"
        )
    first, second = (_wrap_dim(d, A.ndim) for d in dim)
    if first == second:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, {dim[1]})")
    return first, second


@with_out
def matrix_norm(
    A: Tensor, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """A matrix norm of the matrices in dims ``dim``: 'fro', 'nuc' (sum of singular values), 2 and -2
    (largest and smallest singular value), 1 and -1 (column sums), inf and -inf (row sums)."""
    if A.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    _check_float("linalg.matrix_norm", A)
    if dtype is not None:
        A = cast(A, dtype)
    if ord not in _MATRIX_ORDS:
        raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    rows, columns = _matrix_dims(A, dim)
    if ord == "fro":
        return vector_norm(A, 2, (rows, columns), keepdim)
    if ord in ("nuc", 2, -2):
        others = [d for d in range(A.ndim) if d not in (rows, columns)]
        values = svdvals(A.permute(*others, rows, columns))
        result = values.sum(-1) if ord == "nuc" else values.amax(-1) if ord == 2 else values.amin(-1)
        for axis in sorted((rows, columns)) if keepdim else ():
            result = result.unsqueeze(axis)
        return result
    # 1 and -1 take the extreme column sum, inf and -inf the extreme row sum
    summed, extreme = (rows, columns) if ord in (1, -1) else (columns, rows)
    sums = abs(A).sum(dim=summed, keepdim=True)
    result = sums.amax(dim=extreme, keepdim=True) if ord > 0 else sums.amin(dim=extreme, keepdim=True)
    return result if keepdim else result.squeeze((rows, columns))


@with_out
def norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """``torch.linalg.norm``: a vector norm over one dim (or all, without ``ord``), a matrix norm
    over two; with ``ord`` and no ``dim``, the input must be a vector or a matrix."""
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 2 or isinstance(ord, str):
            return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
        if len(dims) == 1:
            return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dims)}")
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise RuntimeError(
        f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got {A.ndim}D."
    )


# =============================================================== distances


def dist(input: Tensor, other: Tensor, p: float = 2) -> Tensor:
    """The ``p``-norm of ``input - other`` (broadcast), over all elements."""
    x, y = _pair(input, other)
    if x.dtype.kind != "f":
        raise RuntimeError(
            f"norm(): input dtype should be either floating point or complex. Got {type_name(x.dtype)} instead."
        )
    return vector_norm(x - y, p)


class Cdist(Function):
    @staticmethod
    def forward(ctx, x1, x2, p, use_mm):
        xp = x1._xp()
        a, b = x1._data, x2._data
        if use_mm:
            # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matrix product, at the price of some cancellation
            squared = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :]
            squared -= 2 * xp.matmul(a, xp.swapaxes(b, -1, -2))
            out = xp.sqrt(xp.maximum(squared, 0))
        else:
            out = _p_norm(xp.abs(a[..., :, None, :] - b[..., None, :, :]), p, -1, False)
        ctx.save_for_backward(x1, x2, out)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x1, x2, out = ctx.saved_tensors
        p = ctx.p
        if p == 0:
            zeros = (Tensor._make(x._xp().zeros(x.shape, x.dtype)) for x in (x1, x2))
            return (*zeros, None, None)
        if p == 2:
            # sum_j w_ij (x1_i - x2_j) as matrix products, without the (P, R, M) differences
            weight = where(out == 0, 0.0, grad_output / where(out == 0, 1.0, out))
            x1_grad = x1 * weight.sum(-1).unsqueeze(-1) - weight.matmul(x2)
            x2_grad = x2 * weight.sum(-2).unsqueeze(-1) - weight.mT.matmul(x1)
        else:
            diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
            share = grad_output.unsqueeze(-1) * _powered_share(diff, out.unsqueeze(-1), p)
            x1_grad, x2_grad = share.sum(-2), -share.sum(-3)
        return unbroadcast(x1_grad, x1.shape), unbroadcast(x2_grad, x2.shape), None, None


_COMPUTE_MODES = (
    "use_mm_for_euclid_dist_if_necessary",
    "use_mm_for_euclid_dist",
    "donot_use_mm_for_euclid_dist",
)


def cdist(
    x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"
) -> Tensor:
    """The ``p``-norm distance between each row of ``x1`` ``(..., P, M)`` and of ``x2`` ``(..., R, M)``.

    For p = 2, ``compute_mode`` picks PyTorch's matrix-product form (the default uses it when P or
    R exceeds 25), faster and slightly less exact. The gradient is 0 where a distance is 0.
    """
    if compute_mode not in _COMPUTE_MODES:
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    for name, x in (("X1", x1), ("X2", x2)):
        if x.ndim < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {x.ndim}D")
        if x.dtype.kind != "f":
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: {type_name(x.dtype)}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(
            f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}"
        )
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    x1, x2 = _pair(x1, x2, broadcast=False)
    use_mm = p == 2 and (
        compute_mode == "use_mm_for_euclid_dist"
        or compute_mode == _COMPUTE_MODES[0]
        and (x1.shape[-2] > 25 or x2.shape[-2] > 25)
    )
    return Cdist.apply(x1, x2, float(p), use_mm)
