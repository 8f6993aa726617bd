import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op


def _mask(lib):
    return lib.tensor([[True, False, True, False], [False, False, True, True], [True, True, False, False]])


GETITEM = [
    ("int", lambda lib, x: x[1]),
    ("negative_ints", lambda lib, x: x[-1, -2]),
    ("slices", lambda lib, x: x[1:, ::2]),
    ("negative_slices", lambda lib, x: x[-2:, 1:-1]),
    ("none", lambda lib, x: x[None, :, None]),
    ("ellipsis", lambda lib, x: x[..., 1]),
    ("list_repeated", lambda lib, x: x[[0, 2, 0, 0]]),
    ("tensor_repeated", lambda lib, x: x[lib.tensor([1, 1, 2])]),
    ("tensor_2d", lambda lib, x: x[lib.tensor([[0, 1], [1, 1]])]),
    ("tensor_negative_repeated", lambda lib, x: x[lib.tensor([[-1, 2], [0, -1], [2, 2]])]),  # -1 is row 2
    ("zero_dim_tensor", lambda lib, x: x[lib.tensor(1), :, [0, 1]] if x.ndim == 3 else x[lib.tensor(2)]),
    ("two_advanced_repeated", lambda lib, x: x[lib.tensor([0, 2, 2]), lib.tensor([1, 1, 0])]),
    ("slice_then_advanced", lambda lib, x: x[1:, lib.tensor([0, 0, 1])]),
    ("int_and_advanced", lambda lib, x: x[0, ..., [1, 1, 0]]),
    ("advanced_around_slice", lambda lib, x: x[[0, 1], ..., [1, 1]]),
    ("bool_mask_rows", lambda lib, x: x[lib.tensor([True, False, True])]),
    ("bool_mask_from_comparison", lambda lib, x: x[x > 0]),
    ("bool_mask_and_slice", lambda lib, x: x[lib.tensor([True, False, True]), 1:]),
]


@pytest.mark.parametrize("shape", [(3, 4), (3, 2, 4)])
@pytest.mark.parametrize("name,fn", GETITEM, ids=[n for n, _ in GETITEM])
def test_getitem(name, fn, shape):
    check_op(fn, shape)


def test_getitem_full_bool_mask():
    check_op(lambda lib, x: x[_mask(lib)], (3, 4))


def test_repeated_indices_accumulate_gradients():
    x = dl.zeros(3, requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_rows_added_at_sorted_runs_equal_numpy_add_at():
    """``_add_at``'s path for one integer array of rows (an embedding's gradient): repeated and
    negative indices, the same row written both ways, add up as ``np.add.at`` adds them."""
    from dltool.engine.ops.index import _add_at

    rng = np.random.default_rng(0)
    index = rng.integers(-5, 5, (4, 6))
    values = rng.standard_normal(index.shape + (3, 2))
    expected = np.zeros((5, 3, 2))
    np.add.at(expected, index, values)
    got = np.zeros((5, 3, 2))
    _add_at(got, index, values, np)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


INDEX_OPS = [
    ("gather_dim1", lambda lib, x: x.gather(1, lib.tensor([[0, 0, 3], [1, 2, 1], [3, 3, 3]])), (3, 4)),
    ("gather_dim0", lambda lib, x: lib.gather(x, 0, lib.tensor([[0, 0, 2, 1], [2, 2, 2, 2]])), (3, 4)),
    ("gather_neg_dim", lambda lib, x: lib.gather(x, -1, lib.tensor([[0], [2], [1]])), (3, 4)),
    ("gather_3d", lambda lib, x: x.gather(1, lib.tensor([[[1, 0], [1, 1]]])), (2, 3, 2)),
    ("index_select", lambda lib, x: x.index_select(0, lib.tensor([2, 0, 2])), (3, 4)),
    ("index_select_neg", lambda lib, x: lib.index_select(x, -1, lib.tensor([1, 1, 3])), (2, 3, 4)),
    ("masked_select", lambda lib, x: lib.masked_select(x, x > 0.5), (3, 4)),
    ("masked_fill_mask", lambda lib, x: x.masked_fill(_mask(lib), 0.25), (3, 4)),
    (
        "masked_fill_broadcast",
        lambda lib, x: x.masked_fill(lib.tensor([True, False, False, True]), -1.0),
        (3, 4),
    ),
    ("where_mask", lambda lib, x: lib.where(_mask(lib), x, x * 2), (3, 4)),
    ("take", lambda lib, x: lib.take(x, lib.tensor([0, 5, 5, 11])), (3, 4)),
    ("sort", lambda lib, x: x.sort(-1), (3, 4)),
    ("sort_descending", lambda lib, x: lib.sort(x, 0, descending=True), (3, 4)),
    ("topk", lambda lib, x: x.topk(2), (3, 4)),
    ("topk_smallest", lambda lib, x: lib.topk(x, 2, dim=0, largest=False), (3, 4)),
]


@pytest.mark.parametrize("name,fn,shape", INDEX_OPS, ids=[s[0] for s in INDEX_OPS])
def test_index_ops(name, fn, shape):
    check_op(fn, shape)


@pytest.mark.parametrize(
    "dim,index,shapes",
    [
        (1, [[0, 0, 3], [1, 1, 1]], ((2, 4), (2, 3))),
        (0, [[0, 1], [0, 1], [2, 0]], ((3, 2), (3, 2))),
        (-1, [[2], [2]], ((2, 3), (2, 1))),
    ],
)
def test_scatter_add(dim, index, shapes):
    check_op(lambda lib, x, src: x.scatter_add(dim, lib.tensor(index), src), *shapes)


def test_scatter_add_with_src_larger_than_index():
    # PyTorch's own backward rejects this case, so only the finite-difference check runs
    x = dl.randn(3, 2, dtype=dl.float64, requires_grad=True)
    src = dl.randn(3, 3, dtype=dl.float64, requires_grad=True)
    index = dl.tensor([[0, 1], [0, 1]])
    assert dl.autograd.gradcheck(lambda x, src: dl.scatter_add(x, 0, index, src), (x, src))
    dl.scatter_add(x, 0, index, src).sum().backward()
    assert src.grad.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_scatter_writes_values():
    x = dl.zeros(2, 3)
    out = x.scatter(1, dl.tensor([[2], [0]]), dl.tensor([[5.0], [7.0]]))
    assert out.tolist() == [[0.0, 0.0, 5.0], [7.0, 0.0, 0.0]]
    assert dl.scatter(x, 0, dl.tensor([[1, 1, 1]]), value=2.0).tolist() == [[0.0] * 3, [2.0] * 3]


def test_nonzero_and_argsort():
    x = dl.tensor([[0.0, 1.0], [2.0, 0.0]])
    assert x.nonzero().tolist() == [[0, 1], [1, 0]]
    assert [t.tolist() for t in dl.nonzero(x, as_tuple=True)] == [[0, 1], [1, 0]]
    assert dl.tensor([3.0, 1.0, 2.0]).argsort().tolist() == [1, 2, 0]


SETITEM = [
    ("int", lambda lib: 1, (4,)),
    ("slice", lambda lib: (slice(None), slice(1, 3)), (3, 2)),
    ("broadcast_value", lambda lib: 0, (1,)),
    ("bool_mask", lambda lib: lib.tensor([True, False, True]), (2, 4)),
    ("advanced", lambda lib: (lib.tensor([0, 2]), lib.tensor([1, 3])), (2,)),
    ("int_and_advanced", lambda lib: (0, [3, 1]), (2,)),
]


@pytest.mark.parametrize("name,key,value_shape", SETITEM, ids=[s[0] for s in SETITEM])
def test_setitem_gradients(name, key, value_shape):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(value_shape)]

    def fn(lib, x, value):
        y = x * 1
        y[key(lib)] = value
        return y * y

    check_op(fn, arrays=arrays)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: dl.ones(3)[5], IndexError, r"out of bounds.*shape \[3\]"),
        (
            lambda: dl.ones(3)[dl.tensor([0.5])],
            IndexError,
            "tensors used as indices must be long, int, byte or bool",
        ),
        (lambda: dl.ones(2, 2).gather(1, dl.tensor([0, 1])), RuntimeError, "same number of dimensions"),
        (lambda: dl.ones(2, 2).gather(1, dl.tensor([[0.0]])), RuntimeError, "Expected dtype int64 for index"),
        (
            lambda: dl.ones(2, 2).index_select(0, dl.tensor([[0]])),
            IndexError,
            "Index is supposed to be a vector",
        ),
        (lambda: dl.ones(3).topk(4), RuntimeError, "selected index k out of range"),
        (
            lambda: dl.ones(3).masked_fill(dl.tensor([1, 0, 1]), 0.0),
            RuntimeError,
            "only supports boolean masks",
        ),
    ],
)
def test_index_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
