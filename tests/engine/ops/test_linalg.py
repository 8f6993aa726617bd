import pytest

import dltool.engine as dl
from dltool.engine.nn import functional as F
from tests.op_check import check_op

MATMUL_SHAPES = [
    ((2, 3), (3, 4)),  # matrix @ matrix
    ((3,), (3,)),  # vector . vector -> scalar
    ((2, 3), (3,)),  # matrix @ vector
    ((3,), (3, 2)),  # vector @ matrix
    ((2, 4, 3), (3,)),  # batch @ vector
    ((3,), (2, 3, 2)),  # vector @ batch
    ((2, 2, 3), (2, 3, 4)),  # batch @ batch
    ((2, 1, 2, 3), (3, 3, 2)),  # broadcast batch dims
    ((2, 3), (4, 3, 2)),  # matrix broadcast against a batch
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(shapes):
    check_op(lambda lib, x, y: x @ y, *shapes)


PRODUCTS = [
    ("matmul_fn", lambda lib, x, y: lib.matmul(x, y), (2, 3), (3, 2)),
    ("rmatmul", lambda lib, x, y: y.__rmatmul__(x), (2, 3), (3, 2)),
    ("mm", lambda lib, x, y: lib.mm(x, y), (2, 3), (3, 4)),
    ("mm_method", lambda lib, x, y: x.mm(y), (1, 3), (3, 1)),
    ("bmm", lambda lib, x, y: lib.bmm(x, y), (2, 2, 3), (2, 3, 4)),
    ("bmm_method", lambda lib, x, y: x.bmm(y), (3, 1, 2), (3, 2, 2)),
    ("dot", lambda lib, x, y: lib.dot(x, y), (4,), (4,)),
    ("dot_method", lambda lib, x, y: x.dot(y), (1,), (1,)),
    ("outer", lambda lib, x, y: lib.outer(x, y), (3,), (4,)),
    ("outer_method", lambda lib, x, y: x.outer(y), (2,), (1,)),
    ("addmm", lambda lib, x, y: lib.addmm(y[0], x, y, beta=0.5, alpha=2.0), (3, 3), (3, 3)),
]


@pytest.mark.parametrize("name,fn,shape1,shape2", PRODUCTS, ids=[p[0] for p in PRODUCTS])
def test_products(name, fn, shape1, shape2):
    check_op(fn, shape1, shape2)


LINEAR_SHAPES = [(5, 4), (2, 3, 4), (4,), (0, 4)]


@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_linear(shape, bias):
    def fn(lib, x, w, b):
        return lib.nn.functional.linear(x, w, b if bias else None)

    check_op(fn, shape, (3, 4), (3,))


def test_linear_gradients_only_for_inputs_that_need_them():
    x, w = dl.randn(2, 4), dl.randn(3, 4, requires_grad=True)
    dl.nn.functional.linear(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (3, 4)


def test_matmul_keeps_float32_and_promotes():
    assert (dl.ones(2, 3) @ dl.ones(3, 2)).dtype == dl.float32
    assert (dl.ones(2, 3) @ dl.ones(3, 2, dtype=dl.float64)).dtype == dl.float64


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: dl.ones(2, 3) @ dl.ones(2, 3), r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)"),
        (lambda: dl.matmul(dl.ones(()), dl.ones(2)), "both arguments to matmul need to be at least 1D"),
        (lambda: dl.mm(dl.ones(2), dl.ones(2, 2)), "mm: expected 2D tensors, got 1D and 2D"),
        (lambda: dl.bmm(dl.ones(2, 2), dl.ones(2, 2, 2)), "bmm: expected 3D tensors"),
        (lambda: dl.bmm(dl.ones(2, 1, 2), dl.ones(3, 2, 1)), r"bmm: batch sizes differ \(2 and 3\)"),
        (lambda: dl.dot(dl.ones(2, 2), dl.ones(2)), "1D tensors expected, but got 2D and 1D tensors"),
        (lambda: dl.outer(dl.ones(2, 2), dl.ones(2)), "outer: expected 1D tensors"),
        (lambda: F.linear(dl.ones(2, 3, 5), dl.ones(4, 3)), r"shapes cannot be multiplied \(6x5 and 3x4\)"),
        (lambda: F.linear(dl.ones(()), dl.ones(4, 3)), "both arguments to linear need to be at least 1D"),
        (lambda: F.linear(dl.ones(2, 3), dl.ones(4, 3), dl.ones(3)), r"bias of shape \(3,\) does not match 4"),
    ],
)
def test_linalg_errors(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()
