import pytest

import dltool.engine as dl
from dltool.engine.nn import functional as F
from tests.op_check import check_op

MATMUL_SHAPES = [
    ((2, 3), (3, 4)),  # matrix @ matrix
    ((3,), (3)),  # vector . vector -> scalar
    ((2, 3), (3)),  # matrix @ vector
    ((3,), (3, 2)),  # vector @ matrix
    ((2, 4, 3), (3)),  # batch @ vector
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
    ("dot", lambda lib, x, y: lib.dot(x, y), (4,), (4)),
    ("dot_method", lambda lib, x, y: x.dot(y), (1,), (1)),
    ("outer", lambda lib, x, y: lib.outer(x, y), (3,), (4)),
    ("outer_method", lambda lib, x, y: x.outer(y), (2,), (1)),
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
        (
            lambda: F.linear(dl.ones(2, 3), dl.ones(4, 3), dl.ones(3)),
            r"bias of shape \(3,\) does not match 4",
        ),
    ],
)
def test_linalg_errors(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


EINSUM = [
    ("ij,jk->ik", ((2, 3), (3, 4))),
    ("ij,jk", ((2, 3), (3, 4))),  # implicit output
    ("bij,bjk->bik", ((2, 2, 3), (1, 3, 2))),  # a batch label broadcast from size 1
    ("...ij,...jk", ((2, 1, 2, 3), (3, 3, 2))),  # ellipses of different lengths
    ("i,j->ij", ((3,), (4,))),
    ("ii->i", ((3, 3),)),  # a diagonal
    ("ii", ((3, 3),)),  # the trace
    ("iji->j", ((3, 2, 3),)),
    ("ij->", ((2, 3),)),  # a label summed in one operand alone
    ("ij,ij->ij", ((1, 3), (2, 3))),
    ("i,i,i->", ((4,), (4,), (4,))),
    ("bhqd,bhkd->bhqk", ((2, 2, 3, 4), (2, 2, 5, 4))),  # attention scores
    ("ab,cd->abcd", ((2, 1), (1, 3))),
]


@pytest.mark.parametrize("equation,shapes", EINSUM, ids=[e[0] for e in EINSUM])
def test_einsum(equation, shapes):
    check_op(lambda lib, *xs: lib.einsum(equation, *xs), *shapes)


def test_einsum_operand_list_and_sublist_forms():
    check_op(lambda lib, x, y: lib.einsum("ij,jk->ik", [x, y]), (2, 3), (3, 2))
    check_op(lambda lib, x, y: lib.einsum(x, [0, 1, 2], y, [2, 3], [0, 3]), (2, 3, 4), (4, 2))
    check_op(lambda lib, x, y: lib.einsum(x, [Ellipsis, 0], y, [0, 1]), (2, 3, 4), (4, 2))


def test_einsum_second_derivative():
    x, y = (dl.randn(*s, dtype=dl.float64, requires_grad=True) for s in ((2, 3), (3, 2)))
    assert dl.autograd.gradgradcheck(lambda a, b: dl.einsum("ij,jk->ik", a, b), [x, y])
    assert dl.autograd.gradgradcheck(
        lambda a: dl.einsum("ii->", a * a), [dl.randn(3, 3, dtype=dl.float64, requires_grad=True)]
    )


@pytest.mark.parametrize(
    "dims,shapes",
    [
        (2, ((2, 3, 4), (3, 4, 5))),
        (1, ((2, 3), (3, 4))),
        (0, ((2,), (3,))),
        (([1, 0], [0, 2]), ((3, 4, 2), (4, 2, 3))),
        ([[2], [0]], ((2, 3, 4), (4, 3))),
    ],
    ids=["int2", "int1", "outer", "lists", "nested"],
)
def test_tensordot(dims, shapes):
    check_op(lambda lib, x, y: lib.tensordot(x, y, dims=dims), *shapes)


ADD_FAMILY = [
    ("addmm", lambda lib, i, a, b: lib.addmm(i, a, b, beta=0.5, alpha=2.0), ((3,), (2, 4), (4, 3))),
    ("addmm_method", lambda lib, i, a, b: i.addmm(a, b), ((2, 3), (2, 4), (4, 3))),
    (
        "baddbmm",
        lambda lib, i, a, b: lib.baddbmm(i, a, b, beta=0.5, alpha=-1.5),
        ((3, 2), (2, 3, 4), (2, 4, 2)),
    ),
    ("baddbmm_method", lambda lib, i, a, b: i.baddbmm(a, b), ((2, 3, 2), (2, 3, 4), (2, 4, 2))),
    ("addbmm", lambda lib, i, a, b: lib.addbmm(i, a, b, beta=2, alpha=0.5), ((3, 2), (2, 3, 4), (2, 4, 2))),
    ("addbmm_method", lambda lib, i, a, b: i.addbmm(a, b), ((1, 2), (3, 3, 4), (3, 4, 2))),
    ("addmv", lambda lib, i, a, b: lib.addmv(i, a, b, beta=0.5, alpha=3), ((3,), (3, 4), (4,))),
    ("addmv_method", lambda lib, i, a, b: i.addmv(a, b), ((1,), (3, 4), (4,))),
    ("addr", lambda lib, i, a, b: lib.addr(i, a, b, beta=-1, alpha=2), ((3, 4), (3,), (4,))),
    ("addr_method", lambda lib, i, a, b: i.addr(a, b), ((4,), (3,), (4,))),
]


@pytest.mark.parametrize("name,fn,shapes", ADD_FAMILY, ids=[a[0] for a in ADD_FAMILY])
def test_add_family(name, fn, shapes):
    check_op(fn, *shapes)


def test_add_family_with_beta_zero_ignores_the_input():
    torch = pytest.importorskip("torch")
    nan = dl.full((3, 4), float("nan"), requires_grad=True)
    out = dl.addmm(nan, dl.ones(3, 5), dl.ones(5, 4), beta=0)
    out.sum().backward()
    assert (
        out.tolist()
        == torch.addmm(torch.full((3, 4), float("nan")), torch.ones(3, 5), torch.ones(5, 4), beta=0).tolist()
    )
    assert nan.grad.tolist() == [[0.0] * 4] * 3
    assert dl.addr(
        dl.ones(2, 2, dtype=dl.int64), dl.ones(2, dtype=dl.int64), dl.ones(2, dtype=dl.int64), beta=2, alpha=3
    ).tolist() == [[5, 5], [5, 5]]


def test_add_family_inplace_and_out():
    x = dl.ones(2, 2)
    assert x.addmm_(dl.eye(2), dl.eye(2) * 2, alpha=0.5) is x and x.tolist() == [[2.0, 1.0], [1.0, 2.0]]
    y = dl.zeros(2, 2, 2)
    y.baddbmm_(dl.ones(2, 2, 3), dl.ones(2, 3, 2))
    assert y.tolist() == [[[3.0] * 2] * 2] * 2
    v = dl.zeros(2)
    v.addmv_(dl.ones(2, 3), dl.ones(3))
    assert v.tolist() == [3.0, 3.0]
    m = dl.zeros(2, 2)
    m.addr_(dl.ones(2), dl.ones(2)).addbmm_(dl.ones(1, 2, 1), dl.ones(1, 1, 2))
    assert m.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    out = dl.empty(2, 2)
    assert dl.addmm(dl.zeros(2), dl.eye(2), dl.eye(2), out=out) is out and out.tolist() == [
        [1.0, 0.0],
        [0.0, 1.0],
    ]
    assert dl.mm(dl.eye(2), dl.eye(2), out=out) is out
    assert dl.matmul(dl.ones(2, 3), dl.ones(3, 2), out=out) is out and out.tolist() == [
        [3.0, 3.0],
        [3.0, 3.0],
    ]


@pytest.mark.parametrize(
    "name,fn,shapes",
    [
        ("cross", lambda lib, x, y: lib.cross(x, y, dim=1), ((4, 3), (4, 3))),
        ("cross_broadcast", lambda lib, x, y: lib.cross(x, y, dim=0), ((3, 2), (3, 1))),
        ("cross_method", lambda lib, x, y: x.cross(y, dim=-1), ((2, 3), (1, 3))),
        ("linalg_cross", lambda lib, x, y: lib.linalg.cross(x, y), ((2, 1, 3), (1, 4, 3))),
        ("kron", lambda lib, x, y: lib.kron(x, y), ((2, 3), (4, 2))),
        ("kron_ranks", lambda lib, x, y: x.kron(y), ((2, 3), (4,))),
        ("trace", lambda lib, x, y: lib.trace(x) * y.sum(), ((3, 3), (1,))),
        ("trace_wide", lambda lib, x, y: x.trace() + y.sum(), ((2, 4), (1,))),
    ],
)
def test_small_products(name, fn, shapes):
    check_op(fn, *shapes)


def test_cross_without_dim_warns_as_pytorch_does():
    with pytest.warns(UserWarning, match="Using torch.cross without specifying the dim arg is deprecated"):
        result = dl.cross(dl.tensor([[1.0, 0.0, 0.0]]), dl.tensor([[0.0, 1.0, 0.0]]))
    assert result.tolist() == [[0.0, 0.0, 1.0]]


def test_trace_and_kron_dtypes():
    assert dl.trace(dl.ones(3, 4, dtype=dl.int32)).dtype == dl.int64
    assert dl.kron(dl.ones(2, 3, dtype=dl.int64), dl.ones(4)).dtype == dl.float32
    assert dl.einsum("i,i", dl.arange(3), dl.arange(3)).item() == 5


@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda: dl.einsum("ij,jk->ik", dl.ones(2, 3), dl.ones(4, 4)),
            "subscript j has size 4 for operand 1 which does not broadcast with previously seen size 3",
        ),
        (
            lambda: dl.einsum("ij,jk->ik", dl.ones(2, 3)),
            "fewer operands were provided than specified in the equation",
        ),
        (
            lambda: dl.einsum("ij", dl.ones(2, 3), dl.ones(2)),
            "more operands were provided than specified in the equation",
        ),
        (
            lambda: dl.einsum("ijk", dl.ones(2, 3)),
            r"the number of subscripts in the equation \(3\) does not match the number of dimensions \(2\) for operand 0",
        ),
        (
            lambda: dl.einsum("...ijk", dl.ones(2, 3)),
            r"the number of subscripts in the equation \(3\) is more than the number of dimensions \(2\) for operand 0",
        ),
        (
            lambda: dl.einsum("ii", dl.ones(2, 3)),
            "subscript i is repeated for operand 0 but the sizes don't match, 2 != 3",
        ),
        (
            lambda: dl.tensordot(dl.ones(2, 3, 4), dl.ones(4, 3, 5), dims=([1, 2], [0, 1])),
            "contracted dimensions need to match, but first has size 3 in dim 1 and second has size 4 in dim 0",
        ),
        (
            lambda: dl.tensordot(dl.ones(2), dl.ones(2), dims=-1),
            "tensordot expects dims >= 0, but got dims=-1",
        ),
        (
            lambda: dl.baddbmm(dl.ones(3, 5), dl.ones(2, 3, 5), dl.ones(2, 5, 4)),
            r"The expanded size of the tensor \(4\) must match the existing size \(5\) at non-singleton dimension 2",
        ),
        (
            lambda: dl.baddbmm(dl.ones(3, 4), dl.ones(2, 3, 5), dl.ones(2, 6, 4)),
            r"Expected size for first two dimensions of batch2 tensor to be: \[2, 5\] but got: \[2, 6\].",
        ),
        (
            lambda: dl.addbmm(dl.ones(3, 4), dl.ones(2, 3, 5), dl.ones(3, 5, 4)),
            "batch1 and batch2 must have same number of batches, got 2 and 3",
        ),
        (
            lambda: dl.addmv(dl.ones(4), dl.ones(3, 5), dl.ones(5)),
            r"size mismatch, got input \(4\), mat \(3x5\), vec \(5\)",
        ),
        (
            lambda: dl.addr(dl.ones(3, 4), dl.ones(3, 1), dl.ones(4)),
            "addr: Expected 1-D argument vec1, but got 2-D",
        ),
        (
            lambda: dl.cross(dl.ones(4, 4), dl.ones(4, 4), dim=1),
            "linalg.cross: inputs dimension 1 must have length 3. Got 4 and 4",
        ),
        (
            lambda: dl.linalg.cross(dl.ones(4, 3), dl.ones(3)),
            "linalg.cross: inputs must have the same number of dimensions.",
        ),
        (lambda: dl.trace(dl.ones(3)), "trace: expected a matrix, but got tensor with dim 1"),
    ],
)
def test_product_errors_match_pytorch(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()
