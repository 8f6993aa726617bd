"""``torch.linalg``: decompositions, solvers, norms and products of matrices.

A flat namespace over ``dltool.engine.ops``, as ``torch.linalg`` is: ``torch.linalg.svd(A).S``
after ``import dltool.engine as torch``. Batches of matrices (leading dims) are accepted where
PyTorch accepts them; results with several parts are named tuples with PyTorch's field names.
"""

from dltool.engine.ops.decomposition import (
    LinAlgError,
    cholesky,
    det,
    eigh,
    eigvalsh,
    inv,
    qr,
    slogdet,
    solve,
    svd,
    svdvals,
)
from dltool.engine.ops.linalg import linalg_cross as cross
from dltool.engine.ops.linalg import matmul
from dltool.engine.ops.norm import matrix_norm, norm, vector_norm
from dltool.engine.ops.pinv import lstsq, matrix_rank, pinv

__all__ = [
    "LinAlgError", "cholesky", "cross", "det", "eigh", "eigvalsh", "inv", "lstsq", "matmul",
    "matrix_norm", "matrix_rank", "norm", "pinv", "qr", "slogdet", "solve", "svd", "svdvals",
    "vector_norm",
]  # fmt: skip
