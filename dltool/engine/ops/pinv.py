"""The pseudo-inverse (from the SVD) and what builds on it: the rank and least squares."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import with_out
from dltool.engine.ops.decomposition import _check_matrices, svdvals
from dltool.engine.tensor import Tensor

linalg_lstsq = namedtuple("linalg_lstsq", ["solution", "residuals", "rank", "singular_values"])


def _cutoff(s: Any, shape: tuple, atol: float | None, rtol: float | None) -> Any:
    """PyTorch's cut-off for the singular values ``s``: ``max(atol, rtol * largest)``, ``rtol``
    defaulting to ``eps * max(m, n)`` unless only ``atol`` is given; shaped ``(..., 1)``."""
    xp = backend.array_module(s)
    if rtol is None:
        rtol = 0.0 if atol is not None else float(np.finfo(s.dtype).eps) * max(shape[-2:])
    largest = s.max(axis=-1, keepdims=True) if s.shape[-1] else xp.zeros(s.shape[:-1] + (1,), s.dtype)
    return xp.maximum(largest * rtol, 0.0 if atol is None else atol)


class Pinv(Function):
    @staticmethod
    def forward(ctx, x, atol, rtol):
        xp = x._xp()
        u, s, vh = xp.linalg.svd(x._data, full_matrices=False)
        keep = s > _cutoff(s, x.shape, atol, rtol)
        s_inverse = xp.where(keep, 1 / xp.where(keep, s, 1), 0)
        y = xp.matmul(xp.swapaxes(vh, -1, -2) * s_inverse[..., None, :], xp.swapaxes(u, -1, -2))
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        # Golub and Pereyra (1973), for a constant rank: with P = pinv(A) and G the gradient,
        # A_grad = -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)
        a, p = ctx.saved_tensors
        g = grad_output
        left = g.mT @ (p @ p.mT)
        right = (p.mT @ p) @ g.mT
        grad = -(p.mT @ g @ p.mT) + left - a @ (p @ left) + right - (right @ p) @ a
        return grad, None, None


@with_out
def pinv(
    A: Tensor, *, atol: float | None = None, rtol: float | None = None, hermitian: bool = False
) -> Tensor:
    """The Moore-Penrose pseudo-inverse, from the SVD with singular values up to
    ``max(atol, rtol * largest)`` taken as 0 (``rtol`` defaults to ``eps * max(m, n)``).

    ``hermitian`` is accepted; the SVD gives the same result for a symmetric input.
    """
    _check_matrices("linalg.pinv", A, square=False)
    return Pinv.apply(A, atol, rtol)


@with_out
def matrix_rank(
    A: Tensor, *, atol: float | None = None, rtol: float | None = None, hermitian: bool = False
) -> Tensor:
    """The number of singular values above ``pinv``'s cut-off, as int64."""
    _check_matrices("linalg.matrix_rank", A, square=False)
    s = A._xp().linalg.svd(A._data, compute_uv=False)
    return Tensor._make((s > _cutoff(s, A.shape, atol, rtol)).sum(axis=-1).astype(dtypes.int64))


_DRIVERS = ("gels", "gelsy", "gelsd", "gelss")


def lstsq(A: Tensor, B: Tensor, rcond: float | None = None, *, driver: str | None = None) -> linalg_lstsq:
    """The least-squares solution of ``A @ X = B`` (the minimum-norm one for a rank-deficient A),
    through the pseudo-inverse, with the fields PyTorch's ``driver`` fills: ``rank`` (all but
    'gels'), ``singular_values`` ('gelsd', 'gelss'), ``residuals`` (all but 'gelsy', for a tall
    full-rank A). ``driver`` defaults to 'gelsy', as on PyTorch's CPU.
    """
    if driver is not None and driver not in _DRIVERS:
        raise RuntimeError(
            "torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)"
        )
    driver = driver or "gelsy"
    _check_matrices("linalg.lstsq", A, square=False)
    vector = B.ndim == A.ndim - 1
    matrix = B.unsqueeze(-1) if vector else B
    if matrix.shape[-2] != A.shape[-2]:
        raise RuntimeError("torch.linalg.lstsq: input.size(-2) should match other.size(-2)")
    m, n = A.shape[-2:]
    solution = pinv(A, rtol=rcond) @ matrix
    xp = A._xp()
    empty = Tensor._make(xp.zeros((0,), dtype=A.dtype))
    rank = (
        Tensor._make(xp.zeros((0,), dtype=dtypes.int64)) if driver == "gels" else matrix_rank(A, rtol=rcond)
    )
    singular_values = svdvals(A.detach()) if driver in ("gelsd", "gelss") else empty
    residuals = empty
    if driver != "gelsy" and m > n and (driver == "gels" or bool((rank._data == n).all())):
        residuals = ((A @ solution - matrix) ** 2).sum(-2)
    return linalg_lstsq(solution.squeeze(-1) if vector else solution, residuals, rank, singular_values)
