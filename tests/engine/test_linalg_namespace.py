"""``torch.linalg``: decompositions and solvers, batched, with gradients, named tuples and errors."""

import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)


def well_conditioned(*shape):
    """Random square matrices pushed away from singular by a multiple of the identity."""
    return RNG.standard_normal(shape) + 3 * np.eye(shape[-1])


def symmetric_positive_definite(lib, x):
    """``x x^T + 3 I``: symmetric inputs built inside the function, so that finite differences
    move both triangles (cholesky and eigh read one)."""
    return x @ x.mT + 3 * lib.eye(x.shape[-1], dtype=x.dtype)


def distinct_singular_values(*shape):
    """Random matrices with singular values spread apart: 1, 2, 3, ... times a random rotation."""
    u, _, vh = np.linalg.svd(RNG.standard_normal(shape), full_matrices=False)
    return u * np.arange(1, min(shape[-2:]) + 1)[::-1] @ vh


DECOMPOSITIONS = [
    ("inv", lambda lib, a: lib.linalg.inv(a), [well_conditioned(2, 3, 3)]),
    ("inverse_method", lambda lib, a: a.inverse(), [well_conditioned(3, 3)]),
    (
        "solve",
        lambda lib, a, b: lib.linalg.solve(a, b),
        [well_conditioned(2, 3, 3), RNG.standard_normal((3, 2))],
    ),
    (
        "solve_vectors",
        lambda lib, a, b: lib.linalg.solve(a, b),
        [well_conditioned(2, 3, 3), RNG.standard_normal((2, 3))],
    ),
    (
        "solve_vector",
        lambda lib, a, b: lib.linalg.solve(a, b),
        [well_conditioned(2, 3, 3), RNG.standard_normal(3)],
    ),
    (
        "solve_right",
        lambda lib, a, b: lib.linalg.solve(a, b, left=False),
        [well_conditioned(3, 3), RNG.standard_normal((2, 3))],
    ),
    ("det", lambda lib, a: lib.linalg.det(a), [well_conditioned(2, 3, 3)]),
    ("det_method", lambda lib, a: a.det(), [well_conditioned(3, 3)]),
    ("slogdet", lambda lib, a: tuple(lib.linalg.slogdet(a)), [RNG.standard_normal((2, 3, 3))]),
    (
        "logdet",
        lambda lib, a: lib.logdet(symmetric_positive_definite(lib, a)),
        [RNG.standard_normal((2, 3, 3))],
    ),
    (
        "cholesky",
        lambda lib, a: lib.linalg.cholesky(symmetric_positive_definite(lib, a)),
        [RNG.standard_normal((2, 3, 3))],
    ),
    (
        "cholesky_upper",
        lambda lib, a: lib.linalg.cholesky(symmetric_positive_definite(lib, a), upper=True),
        [RNG.standard_normal((3, 3))],
    ),
    (
        "eigh",
        lambda lib, a: _eigh_invariants(lib.linalg.eigh(symmetric_positive_definite(lib, a))),
        [RNG.standard_normal((2, 4, 4))],
    ),
    (
        "eigh_upper",
        lambda lib, a: _eigh_invariants(lib.linalg.eigh(a + a.mT, UPLO="U")),
        [RNG.standard_normal((3, 3))],
    ),
    ("eigvalsh", lambda lib, a: lib.linalg.eigvalsh(a + a.mT), [RNG.standard_normal((2, 4, 4))]),
    (
        "svd_tall",
        lambda lib, a: _svd_invariants(lib.linalg.svd(a, full_matrices=False)),
        [distinct_singular_values(2, 5, 3)],
    ),
    (
        "svd_wide",
        lambda lib, a: _svd_invariants(lib.linalg.svd(a, full_matrices=False)),
        [distinct_singular_values(3, 5)],
    ),
    ("svd_square", lambda lib, a: _svd_invariants(lib.linalg.svd(a)), [distinct_singular_values(2, 3, 3)]),
    ("svd_full", lambda lib, a: lib.linalg.svd(a).S, [distinct_singular_values(5, 3)]),
    ("svdvals", lambda lib, a: lib.linalg.svdvals(a), [distinct_singular_values(2, 4, 3)]),
    ("qr_tall", lambda lib, a: tuple(lib.linalg.qr(a)), [RNG.standard_normal((2, 5, 3))]),
    ("qr_square", lambda lib, a: tuple(lib.linalg.qr(a)), [RNG.standard_normal((3, 3))]),
    ("qr_wide", lambda lib, a: tuple(lib.linalg.qr(a)), [RNG.standard_normal((2, 3, 5))]),
    (
        "qr_complete_wide",
        lambda lib, a: tuple(lib.linalg.qr(a, mode="complete")),
        [RNG.standard_normal((3, 5))],
    ),
    ("pinv_tall", lambda lib, a: lib.linalg.pinv(a), [RNG.standard_normal((2, 5, 3))]),
    ("pinv_wide", lambda lib, a: lib.linalg.pinv(a), [RNG.standard_normal((3, 5))]),
    ("pinverse", lambda lib, a: lib.pinverse(a), [RNG.standard_normal((4, 3))]),
    (
        "lstsq",
        lambda lib, a, b: lib.linalg.lstsq(a, b).solution,
        [RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 5, 2))],
    ),
    (
        "lstsq_vector",
        lambda lib, a, b: lib.linalg.lstsq(a, b).solution,
        [RNG.standard_normal((5, 3)), RNG.standard_normal(5)],
    ),
    (
        "legacy_svd",
        lambda lib, a: (lambda r: (r.S, r.U**2, r.V**2, r.U @ r.V.mT))(lib.svd(a)),
        [distinct_singular_values(4, 3)],
    ),
]


def _eigh_invariants(result):
    """Eigenvalues, and what does not depend on each eigenvector's sign."""
    return result.eigenvalues, result.eigenvectors**2, result.eigenvectors @ result.eigenvectors.mT


def _svd_invariants(result):
    """Singular values, and what does not depend on the singular vectors' signs."""
    k = result.S.shape[-1]
    u, vh = result.U[..., :k], result.Vh[..., :k, :]
    return result.S, u**2, vh**2, u @ vh


@pytest.mark.parametrize("name,fn,arrays", DECOMPOSITIONS, ids=[d[0] for d in DECOMPOSITIONS])
def test_decompositions_match_pytorch_with_gradients(name, fn, arrays):
    check_op(fn, arrays=arrays)


def test_results_are_named_tuples_with_pytorchs_fields():
    a = dl.tensor(symmetric_positive_definite(np, RNG.standard_normal((3, 3))))
    svd = dl.linalg.svd(a)
    assert (svd.U.shape, svd.S.shape, svd.Vh.shape) == ((3, 3), (3,), (3, 3))
    eigh = dl.linalg.eigh(a)
    assert eigh.eigenvalues.shape == (3,) and eigh.eigenvectors.shape == (3, 3)
    slogdet = dl.linalg.slogdet(a)
    assert slogdet.sign.item() == 1.0 and np.isclose(
        slogdet.logabsdet.item(), np.log(np.linalg.det(a.numpy()))
    )
    assert not slogdet.sign.requires_grad
    q, r = dl.linalg.qr(a)
    assert dl.linalg.qr(a).Q.shape == q.shape and dl.allclose(q @ r, a, atol=1e-5)
    lstsq = dl.linalg.lstsq(a, dl.ones(3, 1))
    assert lstsq._fields == ("solution", "residuals", "rank", "singular_values")
    assert dl.svd(a)._fields == ("U", "S", "V") and dl.slogdet(a)._fields == ("sign", "logabsdet")


def test_shapes_of_every_mode_match_pytorch():
    a = RNG.standard_normal((2, 4, 3))
    for fn in (
        lambda lib, x: lib.linalg.svd(x),
        lambda lib, x: lib.linalg.svd(x, full_matrices=False),
        lambda lib, x: lib.linalg.svd(x.mT),
        lambda lib, x: lib.linalg.qr(x, mode="complete"),
        lambda lib, x: lib.linalg.qr(x, mode="r"),
        lambda lib, x: lib.linalg.qr(x.mT),
        lambda lib, x: lib.svd(x, some=False),
        lambda lib, x: lib.svd(x, compute_uv=False),
    ):
        ours, ref = fn(dl, dl.tensor(a)), fn(torch, torch.tensor(a))
        assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in ref]


@pytest.mark.parametrize("driver", [None, "gels", "gelsy", "gelsd", "gelss"])
def test_lstsq_fields_follow_the_driver(driver):
    a, b = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 5, 2))
    ours = dl.linalg.lstsq(dl.tensor(a), dl.tensor(b), driver=driver)
    ref = torch.linalg.lstsq(torch.tensor(a), torch.tensor(b), driver=driver)
    for mine, theirs in zip(ours, ref, strict=True):
        assert mine.shape == tuple(theirs.shape) and mine.dtype == getattr(dl, str(theirs.dtype)[6:])
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-7, atol=1e-10)


def test_matrix_rank_and_tolerances():
    rank_two = dl.tensor(RNG.standard_normal((3, 2)) @ RNG.standard_normal((2, 4)))
    assert dl.linalg.matrix_rank(rank_two).item() == 2 and dl.linalg.matrix_rank(rank_two).dtype == dl.int64
    batch = dl.stack([dl.eye(3), dl.zeros(3, 3)])
    assert dl.linalg.matrix_rank(batch).tolist() == [3, 0]
    scaled = np.diag([1.0, 1e-3, 1e-9])
    for tolerances in ({}, {"atol": 1e-2}, {"rtol": 1e-6}, {"atol": 1e-12, "rtol": 1e-2}):
        ours = dl.linalg.matrix_rank(dl.tensor(scaled), **tolerances).item()
        assert ours == torch.linalg.matrix_rank(torch.tensor(scaled), **tolerances).item(), tolerances
        pinv = dl.linalg.pinv(dl.tensor(scaled), **tolerances).numpy()
        np.testing.assert_allclose(pinv, torch.linalg.pinv(torch.tensor(scaled), **tolerances).numpy())


def test_logdet_sign_cases_match_pytorch():
    for matrix in (-np.eye(3), np.zeros((3, 3)), np.diag([1.0, -1.0, 2.0])):
        ours, ref = dl.logdet(dl.tensor(matrix)), torch.logdet(torch.tensor(matrix))
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())


def test_second_derivatives():
    a = dl.tensor(well_conditioned(3, 3), requires_grad=True)
    assert dl.autograd.gradgradcheck(lambda x: dl.linalg.inv(x).sum(-1), [a])
    assert dl.autograd.gradgradcheck(dl.linalg.det, [a])
    b = dl.tensor(RNG.standard_normal((3, 2)), requires_grad=True)
    assert dl.autograd.gradgradcheck(dl.linalg.solve, [a, b])
    assert dl.autograd.gradgradcheck(
        lambda x: dl.linalg.cholesky(x @ x.mT + 3 * dl.eye(3, dtype=x.dtype)), [a]
    )


def test_inputs_float32_and_methods():
    a = dl.tensor(well_conditioned(3, 3).astype(np.float32))
    assert dl.linalg.inv(a).dtype == dl.float32 and dl.det(a).dtype == dl.float32
    assert (
        np.isclose(a.logdet().item(), np.log(abs(np.linalg.det(a.numpy()))), rtol=1e-5) or a.det().item() < 0
    )
    sign, logabsdet = a.slogdet()
    assert np.isclose((sign * logabsdet.exp()).item(), a.det().item(), rtol=1e-4)
    assert dl.allclose(a.pinverse() @ a, dl.eye(3), atol=1e-5)
    u, s, v = a.svd()
    assert dl.allclose(u * s @ v.mT, a, atol=1e-5)


def test_legacy_forms_warn_as_pytorch_does():
    a = dl.tensor(symmetric_positive_definite(np, RNG.standard_normal((3, 3))))
    with pytest.warns(UserWarning, match="torch.cholesky is deprecated in favor of torch.linalg.cholesky"):
        upper = dl.cholesky(a, True)
    assert dl.allclose(upper.mT @ upper, a, atol=1e-10)
    with pytest.warns(UserWarning, match="torch.qr is deprecated in favor of torch.linalg.qr"):
        q, r = a.qr()
    assert dl.allclose(q @ r, a, atol=1e-10)


def test_out_for_tensors_and_tuples():
    a = dl.tensor(well_conditioned(3, 3))
    out = dl.empty(3, 3, dtype=dl.float64)
    assert dl.linalg.inv(a, out=out) is out and dl.allclose(out @ a, dl.eye(3, dtype=dl.float64), atol=1e-10)
    u, s, vh = dl.empty(0), dl.empty(0), dl.empty(0)
    result = dl.linalg.svd(a, out=(u, s, vh))
    assert result.U is u and u.shape == (3, 3) and s.dtype == dl.float32


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: dl.linalg.inv(dl.ones(3, 4)),
            RuntimeError,
            "linalg.inv: A must be batches of square matrices, but they are 3 by 4 matrices",
        ),
        (
            lambda: dl.linalg.inv(dl.ones(3)),
            RuntimeError,
            "linalg.inv: The input tensor A must have at least 2 dimensions.",
        ),
        (
            lambda: dl.linalg.inv(dl.eye(3, dtype=dl.int64)),
            RuntimeError,
            "linalg.inv: Expected a floating point or complex tensor as input. Got Long",
        ),
        (lambda: dl.linalg.inv(dl.ones(3, 3)), dl.linalg.LinAlgError, "linalg.inv: .*singular"),
        (
            lambda: dl.linalg.inv(dl.stack([dl.eye(3), dl.ones(3, 3)])),
            dl.linalg.LinAlgError,
            r"\(Batch element 1\)",
        ),
        (
            lambda: dl.linalg.solve(dl.ones(3, 3), dl.ones(3)),
            dl.linalg.LinAlgError,
            "The solver failed because the input matrix is singular.",
        ),
        (
            lambda: dl.linalg.solve(dl.eye(3), dl.ones(4)),
            RuntimeError,
            r"Incompatible shapes of A and B for the equation AX = B \(3x3 and 4x1\)",
        ),
        (
            lambda: dl.linalg.solve(dl.eye(3).expand(4, 3, 3), dl.ones(2, 3)),
            RuntimeError,
            r"AX = B \(3x3 and 2x3\)",
        ),
        (
            lambda: dl.linalg.solve(dl.eye(3), dl.ones(2, 2), left=False),
            RuntimeError,
            r"XA = B \(3x3 and 2x2\)",
        ),
        (
            lambda: dl.linalg.solve(dl.eye(3), dl.ones(3, dtype=dl.float64)),
            RuntimeError,
            "Expected A and B to have the same dtype, but found A of type Float and B of type Double instead",
        ),
        (
            lambda: dl.linalg.det(dl.ones(3, 4)),
            RuntimeError,
            "linalg.det: A must be batches of square matrices",
        ),
        (
            lambda: dl.linalg.cholesky(dl.ones(3, 3)),
            dl.linalg.LinAlgError,
            r"not positive-definite \(the leading minor of order 2 is not positive-definite\)",
        ),
        (
            lambda: dl.linalg.cholesky(dl.stack([dl.eye(3), -dl.eye(3)])),
            dl.linalg.LinAlgError,
            r"\(Batch element 1\): .* order 1 is not",
        ),
        (
            lambda: dl.linalg.eigh(dl.eye(3), UPLO="X"),
            RuntimeError,
            "Expected UPLO argument to be 'L' or 'U', but got X",
        ),
        (
            lambda: dl.linalg.qr(dl.ones(3, 4), mode="bad"),
            RuntimeError,
            "qr received unrecognized mode 'bad'",
        ),
        (
            lambda: dl.linalg.lstsq(dl.ones(4, 3), dl.ones(5, 2)),
            RuntimeError,
            r"input.size\(-2\) should match other.size\(-2\)",
        ),
        (
            lambda: dl.linalg.lstsq(dl.ones(4, 3), dl.ones(4, 2), driver="bad"),
            RuntimeError,
            "parameter `driver` should be one of",
        ),
    ],
)
def test_errors_match_pytorch(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_linalg_error_is_a_runtime_error():
    assert issubclass(dl.linalg.LinAlgError, RuntimeError)


def test_qr_backward_refusals_match_pytorch():
    a = dl.randn(4, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable when mode='complete' and nrows > ncols"):
        dl.linalg.qr(a, mode="complete").Q.sum().backward()
    with pytest.raises(RuntimeError, match="which is not computed when mode='r'"):
        dl.linalg.qr(a, mode="r").R.sum().backward()
