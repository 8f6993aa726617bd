import math

import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op

torch = pytest.importorskip("torch")

INF = float("inf")

VECTOR_NORMS = [
    ("two", lambda lib, x: lib.linalg.vector_norm(x)),
    ("two_keepdim", lambda lib, x: lib.linalg.vector_norm(x, dim=-1, keepdim=True)),
    ("one", lambda lib, x: lib.linalg.vector_norm(x, 1, dim=0)),
    ("three", lambda lib, x: lib.linalg.vector_norm(x, 3, dim=(0, 1))),
    ("fractional", lambda lib, x: lib.linalg.vector_norm(x, 0.5, dim=-1)),
    ("negative", lambda lib, x: lib.linalg.vector_norm(x, -1.5, dim=0)),
    ("inf", lambda lib, x: lib.linalg.vector_norm(x, INF, dim=-1)),
    ("minus_inf", lambda lib, x: lib.linalg.vector_norm(x, -INF)),
    ("zero", lambda lib, x: lib.linalg.vector_norm(x, 0, dim=0)),
    ("dtype", lambda lib, x: lib.linalg.vector_norm(x, dtype=lib.float64)),
]


@pytest.mark.parametrize("name,fn", VECTOR_NORMS, ids=[v[0] for v in VECTOR_NORMS])
def test_vector_norm(name, fn):
    check_op(fn, (3, 4))


MATRIX_NORMS = ["fro", "nuc", 2, -2, 1, -1, INF, -INF]


@pytest.mark.parametrize("ord", MATRIX_NORMS, ids=str)
def test_matrix_norm_batched(ord):
    check_op(lambda lib, x: lib.linalg.matrix_norm(x, ord), (2, 3, 4))


@pytest.mark.parametrize("ord", ["nuc", 2, 1, INF], ids=str)
def test_matrix_norm_over_other_dims_with_keepdim(ord):
    check_op(lambda lib, x: lib.linalg.matrix_norm(x, ord, dim=(2, 0), keepdim=True), (3, 2, 4))


LINALG_NORMS = [
    ("default", lambda lib, x: lib.linalg.norm(x), (2, 3, 4)),
    ("vector_dim", lambda lib, x: lib.linalg.norm(x, 3, dim=1), (2, 3, 4)),
    ("matrix_dims", lambda lib, x: lib.linalg.norm(x, "nuc", dim=(0, 2)), (2, 3, 4)),
    ("vector_ord", lambda lib, x: lib.linalg.norm(x, INF), (5,)),
    ("matrix_ord", lambda lib, x: lib.linalg.norm(x, 2, keepdim=True), (3, 4)),
]


@pytest.mark.parametrize("name,fn,shape", LINALG_NORMS, ids=[n[0] for n in LINALG_NORMS])
def test_linalg_norm(name, fn, shape):
    check_op(fn, shape)


def test_norm_gradients_at_zero_are_zero_as_in_pytorch():
    for ord in (2, 1, 3, 0.5, INF, -1):
        x = dl.zeros(3, requires_grad=True)
        dl.linalg.vector_norm(x, ord).backward()
        assert x.grad is None or x.grad.tolist() == [0.0, 0.0, 0.0], ord
    x = dl.tensor([1.0, -1.0, 0.5], requires_grad=True)
    dl.linalg.vector_norm(x, INF).backward()
    assert x.grad.tolist() == [0.5, -0.5, 0.0]  # ties share the gradient
    x = dl.tensor([1.0, 0.0, 0.5], requires_grad=True)
    ref = torch.tensor([1.0, 0.0, 0.5], requires_grad=True)
    dl.linalg.vector_norm(x, 0.5).backward()
    torch.linalg.vector_norm(ref, 0.5).backward()
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "name,fn,shapes",
    [
        ("cdist", lambda lib, x, y: lib.cdist(x, y), ((2, 3, 4), (5, 4))),
        (
            "cdist_mm",
            lambda lib, x, y: lib.cdist(x, y, compute_mode="use_mm_for_euclid_dist"),
            ((2, 3, 4), (1, 5, 4)),
        ),
        ("cdist_large", lambda lib, x, y: lib.cdist(x, y), ((27, 2), (3, 2))),  # P > 25 takes the mm form
        ("cdist_p1", lambda lib, x, y: lib.cdist(x, y, p=1), ((3, 4), (5, 4))),
        ("cdist_p3", lambda lib, x, y: lib.cdist(x, y, p=3), ((3, 4), (5, 4))),
        ("cdist_p_half", lambda lib, x, y: lib.cdist(x, y, p=0.5), ((3, 2), (2, 2))),
        ("cdist_inf", lambda lib, x, y: lib.cdist(x, y, p=INF), ((3, 4), (5, 4))),
        ("cdist_p0", lambda lib, x, y: lib.cdist(x, y, p=0), ((3, 4), (5, 4))),
        ("dist", lambda lib, x, y: lib.dist(x, y), ((3, 4), (4,))),
        ("dist_p3_method", lambda lib, x, y: x.dist(y, 3), ((3, 4), (3, 1))),
    ],
)
def test_distances(name, fn, shapes):
    check_op(fn, *shapes)


def test_distance_gradients_at_zero_are_zero():
    x, y = dl.zeros(3, 4, requires_grad=True), dl.zeros(2, 4, requires_grad=True)
    dl.cdist(x, y).sum().backward()
    assert not x.grad.numpy().any() and not y.grad.numpy().any()
    z = dl.zeros(3, requires_grad=True)
    dl.dist(z, dl.zeros(3)).backward()
    assert z.grad.tolist() == [0.0, 0.0, 0.0]


def test_vector_norm_dtype_out_and_values():
    assert dl.linalg.vector_norm(dl.ones(3), dtype=dl.float64).dtype == dl.float64
    out = dl.empty(())
    assert dl.linalg.vector_norm(dl.tensor([3.0, 4.0]), out=out) is out and out.item() == 5.0
    assert math.isclose(
        dl.linalg.norm(dl.tensor([[1.0, 2.0], [3.0, 4.0]]), "fro").item(), math.sqrt(30), rel_tol=1e-6
    )


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: dl.linalg.vector_norm(dl.arange(3)),
            RuntimeError,
            "linalg.vector_norm: Expected a floating point or complex tensor as input. Got Long",
        ),
        (
            lambda: dl.linalg.vector_norm(dl.ones(3), "fro"),
            TypeError,
            "argument 'ord' must be Number, not str",
        ),
        (
            lambda: dl.linalg.vector_norm(dl.ones(3), dtype=dl.int64),
            RuntimeError,
            "dtype should be floating point or complex, but got Long",
        ),
        (
            lambda: dl.linalg.vector_norm(dl.zeros(0), INF),
            RuntimeError,
            "cannot compute the inf norm on an empty tensor",
        ),
        (
            lambda: dl.linalg.vector_norm(dl.zeros(0, 3), -1, dim=0),
            RuntimeError,
            "cannot compute the -1 norm on the dimension 0because",
        ),
        (
            lambda: dl.linalg.matrix_norm(dl.ones(3, 3), 3),
            RuntimeError,
            "linalg.matrix_norm: Order 3 not supported.",
        ),
        (
            lambda: dl.linalg.matrix_norm(dl.ones(3)),
            RuntimeError,
            "The input tensor A must have at least 2 dimensions.",
        ),
        (
            lambda: dl.linalg.matrix_norm(dl.ones(2, 3, 4), 2, dim=(0, 0)),
            RuntimeError,
            r"dims must be different. Got \(0, 0\)",
        ),
        (
            lambda: dl.linalg.norm(dl.ones(2, 3, 4), 2),
            RuntimeError,
            "If dim is not specified but ord is, the input must be 1D or 2D. Got 3D.",
        ),
        (
            lambda: dl.linalg.norm(dl.ones(2, 3, 4), dim=(0, 1, 2)),
            RuntimeError,
            "If dim is specified, it must be of length 1 or 2",
        ),
        (
            lambda: dl.linalg.norm(dl.ones(3, 3), "fro", dim=1),
            RuntimeError,
            "linalg.matrix_norm: dim must be a 2-tuple. Got 1",
        ),
        (
            lambda: dl.cdist(dl.ones(2, 3, 4), dl.ones(5, 3)),
            RuntimeError,
            "X1 and X2 must have the same number of columns. X1: 4 X2: 3",
        ),
        (
            lambda: dl.cdist(dl.ones(4), dl.ones(5, 4)),
            RuntimeError,
            "cdist only supports at least 2D tensors, X1 got: 1D",
        ),
        (
            lambda: dl.cdist(dl.ones(3, 4), dl.ones(5, 4), p=-1),
            RuntimeError,
            "cdist only supports non-negative p values",
        ),
        (
            lambda: dl.cdist(dl.ones(3, 4), dl.ones(5, 4), compute_mode="bad"),
            ValueError,
            "bad is not a valid value for compute_mode",
        ),
        (
            lambda: dl.cdist(dl.ones(3, 4, dtype=dl.int64), dl.ones(5, 4)),
            RuntimeError,
            "cdist only supports floating-point dtypes, X1 got: Long",
        ),
        (
            lambda: dl.dist(dl.ones(3, dtype=dl.int64), dl.zeros(3, dtype=dl.int64)),
            RuntimeError,
            "norm\\(\\): input dtype should be either floating point or complex. Got Long instead.",
        ),
    ],
)
def test_errors_match_pytorch(call, error, message):
    with pytest.raises(error, match=message):
        call()
