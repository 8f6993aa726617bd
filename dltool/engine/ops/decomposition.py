"""Matrix decompositions and solvers on numpy.linalg (cupy.linalg on GPU): inv, solve, det,
slogdet, cholesky, eigh, svd and qr (the pseudo-inverse and least squares are in ops.pinv).

Inputs may carry leading batch dims. Each differentiable op is a ``Function`` whose backward is
the standard formula for real matrices, written with the engine's ops so that it differentiates
again. The spectral ones assume what their formulas need: distinct eigenvalues (eigh) and
distinct singular values (svd), and a loss that does not depend on the sign of a vector.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import type_name, with_out
from dltool.engine.ops._utils import unbroadcast
from dltool.engine.ops.elementwise import where
from dltool.engine.ops.shape import cat
from dltool.engine.tensor import Tensor

linalg_slogdet = namedtuple("linalg_slogdet", ["sign", "logabsdet"])
linalg_eigh = namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
linalg_svd = namedtuple("linalg_svd", ["U", "S", "Vh"])
linalg_qr = namedtuple("linalg_qr", ["Q", "R"])


class LinAlgError(RuntimeError):
    """A matrix that the operation cannot handle (singular, not positive-definite), as
    ``torch.linalg.LinAlgError``."""


def _check_matrices(name: str, A: Tensor, square: bool = True) -> None:
    if A.ndim < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    if A.dtype.kind != "f":
        raise RuntimeError(
            f"{name}: Expected a floating point or complex tensor as input. Got {type_name(A.dtype)}"
        )
    if square and A.shape[-1] != A.shape[-2]:
        raise RuntimeError(
            f"{name}: A must be batches of square matrices, but they are {A.shape[-2]} by {A.shape[-1]} matrices"
        )


def _batch_prefix(failed: Any) -> str:
    """PyTorch's ``(Batch element k): `` for the first failing matrix of a batch (none for one matrix)."""
    if failed.ndim == 0:
        return ""
    return f"(Batch element {int(failed.reshape(-1).argmax())}): "


def _mask(n: int, like: Tensor, lower: float, diagonal: float, upper: float) -> Tensor:
    """An ``n x n`` constant with ``lower`` below the diagonal, ``diagonal`` on it, ``upper`` above."""
    xp = like._xp()
    ones = xp.ones((n, n), dtype=like.dtype)
    array = xp.tril(ones, -1) * lower + xp.eye(n, dtype=like.dtype) * diagonal + xp.triu(ones, 1) * upper
    return Tensor._make(array)


# =============================================================== inverse, solve, determinants


class Inv(Function):
    @staticmethod
    def forward(ctx, x):
        xp = x._xp()
        try:
            y = xp.linalg.inv(x._data)
        except np.linalg.LinAlgError:
            failed = xp.linalg.matrix_rank(x._data) < x.shape[-1]
            raise LinAlgError(
                f"linalg.inv: {_batch_prefix(failed)}The inversion could not be completed because the "
                "input matrix is singular."
            ) from None
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return -(y.mT @ grad_output @ y.mT)


@with_out
def inv(A: Tensor) -> Tensor:
    """The inverse of each square matrix.

    Raises:
        LinAlgError: a matrix is singular.
    """
    _check_matrices("linalg.inv", A)
    return Inv.apply(A)


class Solve(Function):
    @staticmethod
    def forward(ctx, a, b):
        xp = a._xp()
        # batch dims broadcast here: numpy does it itself, cupy's solve wants them equal
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a_data = xp.broadcast_to(a._data, batch + a.shape[-2:])
        b_data = xp.broadcast_to(b._data, batch + b.shape[-2:])
        try:
            x = xp.linalg.solve(a_data, b_data)
        except np.linalg.LinAlgError:
            raise LinAlgError(
                "torch.linalg.solve: The solver failed because the input matrix is singular."
            ) from None
        ctx.save_for_backward(a, x)
        ctx.b_shape = b.shape
        return x

    @staticmethod
    def backward(ctx, grad_output):
        a, x = ctx.saved_tensors
        b_grad = solve(a.mT, grad_output)
        a_grad = unbroadcast(-(b_grad @ x.mT), a.shape) if ctx.needs_input_grad[0] else None
        return a_grad, unbroadcast(b_grad, ctx.b_shape) if ctx.needs_input_grad[1] else None


@with_out
def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:
    """``X`` with ``A @ X = B`` (``X @ A = B`` when not ``left``); ``B`` may be a (batch of) vectors,
    and batch dims broadcast.

    Raises:
        LinAlgError: a matrix is singular.
    """
    _check_matrices("linalg.solve", A)
    if A.dtype != B.dtype:
        raise RuntimeError(
            f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
            f"{type_name(A.dtype)} and B of type {type_name(B.dtype)} instead"
        )
    vector = B.ndim == 1 or B.ndim == A.ndim - 1 and B.shape == A.shape[:-1]
    matrix = B.unsqueeze(-1) if vector else B if left else B.mT
    n = A.shape[-1]
    if matrix.shape[-2] != n or not _broadcastable(A.shape[:-2], matrix.shape[:-2]):
        shown = f"{B.shape[-1]}x1" if vector else _describe_matrix(B)
        raise RuntimeError(
            f"linalg.solve: Incompatible shapes of A and B for the equation {'AX = B' if left else 'XA = B'} "
            f"({n}x{n} and {shown})"
        )
    x = Solve.apply(A if left else A.mT, matrix)
    return x.squeeze(-1) if vector else x if left else x.mT


def _broadcastable(a: tuple, b: tuple) -> bool:
    return all(m == n or m == 1 or n == 1 for m, n in zip(reversed(a), reversed(b), strict=False))


def _describe_matrix(t: Tensor) -> str:
    return f"{t.shape[-2]}x{t.shape[-1]}"


class Det(Function):
    @staticmethod
    def forward(ctx, x):
        d = x._xp().linalg.det(x._data)
        ctx.save_for_backward(x, d)
        return d

    @staticmethod
    def backward(ctx, grad_output):
        x, d = ctx.saved_tensors
        # NOTE: d det(A) / dA = det(A) A^-T, which needs A invertible
        return (grad_output * d).unsqueeze(-1).unsqueeze(-1) * inv(x).mT


@with_out
def det(A: Tensor) -> Tensor:
    """The determinant of each square matrix (its gradient needs the matrix invertible)."""
    _check_matrices("linalg.det", A)
    return Det.apply(A)


class Slogdet(Function):
    @staticmethod
    def forward(ctx, x):
        sign, logabsdet = x._xp().linalg.slogdet(x._data)
        ctx.save_for_backward(x)
        ctx.mark_non_differentiable(sign)
        return sign, logabsdet

    @staticmethod
    def backward(ctx, sign_grad, logabsdet_grad):
        (x,) = ctx.saved_tensors
        return logabsdet_grad.unsqueeze(-1).unsqueeze(-1) * inv(x).mT


@with_out
def slogdet(A: Tensor) -> linalg_slogdet:
    """``(sign, logabsdet)``: the sign and the log of the absolute value of each determinant,
    which stays finite where the determinant itself would overflow."""
    _check_matrices("linalg.slogdet", A)
    return linalg_slogdet(*Slogdet.apply(A))


def logdet(input: Tensor) -> Tensor:
    """The log of each determinant: nan where it is negative, -inf where it is 0."""
    sign, logabsdet = slogdet(input)
    return where(sign < 0, float("nan"), logabsdet)


# =============================================================== cholesky and eigh


class Cholesky(Function):
    @staticmethod
    def forward(ctx, x):
        xp = x._xp()
        try:
            lower = xp.linalg.cholesky(x._data)
        except np.linalg.LinAlgError:
            raise LinAlgError(_not_positive_definite(x._data)) from None
        ctx.save_for_backward(lower)
        return lower

    @staticmethod
    def backward(ctx, grad_output):
        (lower,) = ctx.saved_tensors
        # Murray (2016): A_grad = sym(L^-T Phi(L^T L_grad) L^-1), Phi the lower triangle, diagonal halved
        phi = lower.mT @ grad_output * _mask(lower.shape[-1], lower, 1.0, 0.5, 0.0)
        inverse = inv(lower)
        grad = inverse.mT @ phi @ inverse
        return (grad + grad.mT) * 0.5


def _not_positive_definite(matrices: Any) -> str:
    """PyTorch's message, naming the first failing matrix and its first non-positive leading minor."""
    xp = backend.array_module(matrices)
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    for index, matrix in enumerate(flat):
        for order in range(1, matrix.shape[-1] + 1):
            try:
                xp.linalg.cholesky(matrix[:order, :order])
            except np.linalg.LinAlgError:
                prefix = f"(Batch element {index}): " if matrices.ndim > 2 else ""
                return (
                    f"linalg.cholesky: {prefix}The factorization could not be completed because the input "
                    f"is not positive-definite (the leading minor of order {order} is not positive-definite)."
                )
    return "linalg.cholesky: The factorization could not be completed because the input is not positive-definite."


@with_out
def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:
    """The Cholesky factor ``L`` (lower) with ``A = L @ L.mT``; ``U = L.mT`` when ``upper``.

    Only the lower triangle of ``A`` is read.

    Raises:
        LinAlgError: a matrix is not positive-definite.
    """
    _check_matrices("linalg.cholesky", A)
    lower = Cholesky.apply(A)
    return lower.mT if upper else lower


class Eigh(Function):
    @staticmethod
    def forward(ctx, x, uplo):
        values, vectors = x._xp().linalg.eigh(x._data, UPLO=uplo)
        ctx.save_for_backward(values, vectors)
        ctx.set_materialize_grads(False)
        return values, vectors

    @staticmethod
    def backward(ctx, values_grad, vectors_grad):
        values, vectors = ctx.saved_tensors
        n = values.shape[-1]
        inner = 0.0
        if values_grad is not None:
            inner = values_grad.unsqueeze(-1) * _mask(n, values, 0.0, 1.0, 0.0)
        if vectors_grad is not None:
            # the skew part of V^T V_grad over the eigenvalue gaps w_j - w_i (a symmetric result)
            rotation = vectors.mT @ vectors_grad
            gaps = values.unsqueeze(-2) - values.unsqueeze(-1) + _mask(n, values, 0.0, 1.0, 0.0)
            inner = inner + (rotation - rotation.mT) * 0.5 / gaps * _mask(n, values, 1.0, 0.0, 1.0)
        return vectors @ inner @ vectors.mT, None


def _check_uplo(UPLO: str) -> None:
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")


@with_out
def eigh(A: Tensor, UPLO: str = "L") -> linalg_eigh:
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of symmetric matrices,
    read from the ``UPLO`` ('L' or 'U') triangle."""
    _check_matrices("linalg.eigh", A)
    _check_uplo(UPLO)
    return linalg_eigh(*Eigh.apply(A, UPLO))


@with_out
def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:
    """The eigenvalues (ascending) of symmetric matrices."""
    _check_matrices("linalg.eigvalsh", A)
    _check_uplo(UPLO)
    return Eigh.apply(A, UPLO)[0]


# =============================================================== svd and qr


class Svd(Function):
    @staticmethod
    def forward(ctx, x, full_matrices):
        u, s, vh = x._xp().linalg.svd(x._data, full_matrices=full_matrices)
        ctx.save_for_backward(u, s, vh)
        ctx.set_materialize_grads(False)
        return u, s, vh

    @staticmethod
    def backward(ctx, u_grad, s_grad, vh_grad):
        u, s, vh = ctx.saved_tensors
        k = s.shape[-1]
        # with full_matrices the columns past k are arbitrary; only the first k carry a gradient
        u, vh = u[..., :, :k], vh[..., :k, :]
        u_grad = None if u_grad is None else u_grad[..., :, :k]
        v_grad = None if vh_grad is None else vh_grad[..., :k, :].mT
        return _svd_backward(u, s, vh.mT, u_grad, s_grad, v_grad), None


def _svd_backward(u: Tensor, s: Tensor, v: Tensor, u_grad: Any, s_grad: Any, v_grad: Any) -> Tensor:
    """Townsend (2016)'s gradient of the reduced SVD ``A = U diag(S) V^T``.

    A_grad = U [F o (U^T U_grad - U_grad^T U) S + diag(S_grad) + S F o (V^T V_grad - V_grad^T V)] V^T
    + (I - U U^T) U_grad S^-1 V^T + U S^-1 V_grad^T (I - V V^T), with F_ij = 1 / (s_j^2 - s_i^2).
    """
    k = s.shape[-1]
    off = _mask(k, s, 1.0, 0.0, 1.0)
    squares = s * s
    gaps = squares.unsqueeze(-2) - squares.unsqueeze(-1) + _mask(k, s, 0.0, 1.0, 0.0)
    inverse_gaps = off / gaps
    inner = 0.0 if s_grad is None else s_grad.unsqueeze(-1) * _mask(k, s, 0.0, 1.0, 0.0)
    grad = 0.0
    if u_grad is not None:
        rotation = u.mT @ u_grad
        inner = inner + inverse_gaps * (rotation - rotation.mT) * s.unsqueeze(-2)
        if u.shape[-2] > k:
            grad = grad + (u_grad - u @ rotation) / s.unsqueeze(-2) @ v.mT
    if v_grad is not None:
        rotation = v.mT @ v_grad
        inner = inner + s.unsqueeze(-1) * (inverse_gaps * (rotation - rotation.mT))
        if v.shape[-2] > k:
            grad = grad + u @ ((v_grad - v @ rotation) / s.unsqueeze(-2)).mT
    return grad + u @ inner @ v.mT


@with_out
def svd(A: Tensor, full_matrices: bool = True) -> linalg_svd:
    """``(U, S, Vh)`` with ``A = U @ diag(S) @ Vh``, singular values descending.

    The gradient assumes distinct singular values and a loss that does not depend on the signs of
    the singular vectors.
    """
    _check_matrices("linalg.svd", A, square=False)
    return linalg_svd(*Svd.apply(A, full_matrices))


@with_out
def svdvals(A: Tensor) -> Tensor:
    """The singular values of each matrix, descending."""
    _check_matrices("linalg.svdvals", A, square=False)
    return Svd.apply(A, False)[1]


class Qr(Function):
    @staticmethod
    def forward(ctx, x, mode):
        xp = x._xp()
        if mode == "r":
            q, r = xp.zeros((0,), dtype=x.dtype), xp.linalg.qr(x._data, mode="r")
        else:
            q, r = xp.linalg.qr(x._data, mode=mode)
        ctx.save_for_backward(x, q, r)
        ctx.mode = mode
        ctx.set_materialize_grads(False)
        return q, r

    @staticmethod
    def backward(ctx, q_grad, r_grad):
        x, q, r = ctx.saved_tensors
        m, n = x.shape[-2:]
        if ctx.mode == "r":
            raise RuntimeError(
                "The derivative of linalg.qr depends on Q, which is not computed when mode='r'. Please use "
                "linalg.qr(A, mode='reduced') if you are going to differentiate through linalg.qr."
            )
        if ctx.mode == "complete" and m > n:
            raise RuntimeError(
                "The QR decomposition is not differentiable when mode='complete' and nrows > ncols."
            )
        if q_grad is None:
            q_grad = Tensor._make(q._xp().zeros(q.shape, q.dtype))
        if r_grad is None:
            r_grad = Tensor._make(r._xp().zeros(r.shape, r.dtype))
        if m >= n:
            return _qr_backward_tall(q, r, q_grad, r_grad), None
        # a wide A = [X | Y] = Q [U | V]: X = QU is square, and Y = QV moves Q's gradient
        y, v_grad = x[..., :, m:], r_grad[..., :, m:]
        x_grad = _qr_backward_tall(q, r[..., :, :m], q_grad + y @ v_grad.mT, r_grad[..., :, :m])
        return cat([x_grad, q @ v_grad], dim=-1), None


def _qr_backward_tall(q: Tensor, r: Tensor, q_grad: Tensor, r_grad: Tensor) -> Tensor:
    """The gradient of the reduced QR of a square or tall matrix (Walter and Lehmann, 2018):
    ``(Q_grad + Q copyltu(M)) R^-T`` with ``M = R R_grad^T - Q_grad^T Q``, ``copyltu`` the symmetric
    matrix that M's lower triangle defines."""
    n = r.shape[-1]
    m = r @ r_grad.mT - q_grad.mT @ q
    copied = m * _mask(n, m, 1.0, 1.0, 0.0) + (m * _mask(n, m, 1.0, 0.0, 0.0)).mT
    return solve(r, (q_grad + q @ copied).mT).mT


_QR_MODES = ("reduced", "complete", "r")


@with_out
def qr(A: Tensor, mode: str = "reduced") -> linalg_qr:
    """``(Q, R)`` with ``A = Q @ R``, Q orthonormal columns and R upper triangular.

    ``mode`` 'reduced' gives ``k = min(m, n)`` columns of Q, 'complete' all m, 'r' only R (and an
    empty Q). Differentiable in 'reduced' mode, and in 'complete' mode when ``m <= n``.
    """
    if mode not in _QR_MODES:
        raise RuntimeError(
            f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or 'complete'"
        )
    _check_matrices("linalg.qr", A, square=False)
    return linalg_qr(*Qr.apply(A, mode))
