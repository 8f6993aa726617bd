"""The flat ``torch.*`` forms of the matrix functions, which are also ``Tensor`` methods:
``det``, ``logdet``, ``slogdet``, ``inverse``, ``pinverse``, and the older ``svd`` (which returns
V, not Vh), ``qr`` (``some=``) and ``cholesky`` (``upper=`` positional), over ops.decomposition.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

from dltool.engine.ops import decomposition, pinv
from dltool.engine.ops._boundary import with_out
from dltool.engine.ops.decomposition import det, logdet
from dltool.engine.tensor import Tensor

svd_result = namedtuple("svd", ["U", "S", "V"])
slogdet_result = namedtuple("slogdet", ["sign", "logabsdet"])
qr_result = namedtuple("qr", ["Q", "R"])

__all__ = ["cholesky", "det", "inverse", "logdet", "pinverse", "qr", "slogdet", "svd"]


@with_out
def inverse(input: Tensor) -> Tensor:
    """The inverse of each square matrix, as ``linalg.inv``."""
    return decomposition.inv(input)


def pinverse(input: Tensor, rcond: float = 1e-15) -> Tensor:
    """The pseudo-inverse, with singular values up to ``rcond`` times the largest taken as 0."""
    return pinv.pinv(input, rtol=rcond)


def slogdet(input: Tensor) -> slogdet_result:
    """``(sign, logabsdet)`` of each determinant, as ``linalg.slogdet``."""
    return slogdet_result(*decomposition.slogdet(input))


@with_out
def svd(input: Tensor, some: bool = True, compute_uv: bool = True) -> svd_result:
    """``(U, S, V)`` with ``input = U @ diag(S) @ V.mT``; ``some`` gives the reduced factors.

    Without ``compute_uv``, U and V are square and zero-filled, as in PyTorch.
    """
    if not compute_uv:
        s = decomposition.svdvals(input)
        m, n = input.shape[-2:]
        u, v = (Tensor._make(s._xp().zeros((*input.shape[:-2], k, k), s.dtype)) for k in (m, n))
        return svd_result(u, s, v)
    u, s, vh = decomposition.svd(input, full_matrices=not some)
    return svd_result(u, s, vh.mT)


@with_out
def qr(input: Tensor, some: bool = True) -> qr_result:
    """``(Q, R)``, reduced when ``some`` (deprecated in PyTorch, which warns, for ``linalg.qr``)."""
    warnings.warn(
        "torch.qr is deprecated in favor of torch.linalg.qr and will be removed in a future PyTorch "
        "release.\nThe boolean parameter 'some' has been replaced with a string parameter 'mode'.\n"
        "Q, R = torch.qr(A, some)\nshould be replaced with\n"
        "Q, R = torch.linalg.qr(A, 'reduced' if some else 'complete')",
        UserWarning,
        stacklevel=3,
    )
    return qr_result(*decomposition.qr(input, "reduced" if some else "complete"))


@with_out
def cholesky(input: Tensor, upper: bool = False) -> Tensor:
    """The Cholesky factor (deprecated in PyTorch, which warns, for ``linalg.cholesky``)."""
    warnings.warn(
        "torch.cholesky is deprecated in favor of torch.linalg.cholesky and will be removed in a "
        "future PyTorch release.\nL = torch.cholesky(A)\nshould be replaced with\n"
        "L = torch.linalg.cholesky(A)\nand\nU = torch.cholesky(A, upper=True)\nshould be replaced "
        "with\nU = torch.linalg.cholesky(A).mH\nThis transform will produce equivalent results for "
        "all valid (symmetric positive definite) inputs.",
        UserWarning,
        stacklevel=3,
    )
    return decomposition.cholesky(input, upper=upper)
