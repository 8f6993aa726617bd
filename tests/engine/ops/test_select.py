import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.ops.parity import same_error, same_values
from tests.op_check import check_op

NAN = float("nan")

# Random inputs have no ties, so indices are compared with PyTorch's too.
SELECT_OPS = [
    ("kthvalue", lambda lib, x: x.kthvalue(2), (3, 4)),
    ("kthvalue_dim0_keepdim", lambda lib, x: lib.kthvalue(x, 3, 0, True), (3, 4)),
    ("kthvalue_neg_dim", lambda lib, x: lib.kthvalue(x, 1, dim=-2), (2, 3, 4)),
    ("kthvalue_axis", lambda lib, x: lib.kthvalue(x, 1, axis=1, keepdims=True), (2, 3)),
    ("kthvalue_0d", lambda lib, x: lib.kthvalue(x.sum(), 1), (3,)),
    ("median_all", lambda lib, x: x.median(), (3, 4)),
    ("median_even_count", lambda lib, x: lib.median(x), (2, 3)),
    ("median_dim", lambda lib, x: x.median(1), (3, 4)),
    ("median_neg_dim_keepdim", lambda lib, x: lib.median(x, -3, keepdim=True), (4, 3, 2)),
    ("nanmedian_all", lambda lib, x: lib.nanmedian(x), (3, 5)),
    ("nanmedian_dim", lambda lib, x: x.nanmedian(0), (4, 3)),
    ("msort", lambda lib, x: lib.msort(x), (3, 4)),
]


@pytest.mark.parametrize("name,fn,shape", SELECT_OPS, ids=[s[0] for s in SELECT_OPS])
def test_select_ops(name, fn, shape):
    check_op(fn, shape)


def test_median_and_nanmedian_with_nans():
    data = [[1.0, NAN, 2.0, NAN], [3.0, 1.0, 4.0, 2.0], [NAN, 5.0, NAN, NAN]]
    for fn in ("median", "nanmedian"):
        same_values(lambda lib, fn=fn: getattr(lib, fn)(lib.tensor(data)))
        same_values(lambda lib, fn=fn: getattr(lib, fn)(lib.tensor(data), 1))
        same_values(lambda lib, fn=fn: getattr(lib, fn)(lib.tensor(data).t(), 0, keepdim=True))
    same_values(lambda lib: lib.median(lib.tensor([])))
    same_values(lambda lib: lib.median(lib.tensor([3, 1, 2, 4])))
    # a slice of NaNs only: PyTorch picks an arbitrary NaN, so only the values are compared
    same_values(lambda lib: lib.nanmedian(lib.tensor([[NAN, NAN, NAN]]), 1).values)


def test_ties_compare_values_only():
    # which of equal elements PyTorch's kthvalue and median return is unspecified
    data = [[2.0, 1.0, 2.0, 2.0, 3.0], [1.0, 1.0, 0.0, 1.0, 0.0]]
    same_values(lambda lib: lib.median(lib.tensor(data), 1).values)
    same_values(lambda lib: lib.kthvalue(lib.tensor(data), 3, 1).values)


@pytest.mark.parametrize(
    "data",
    [[[3.0, 1.0, 1.0, 3.0, 2.0], [5.0, 5.0, 5.0, 1.0, 1.0]], [[2.0, 2.0, 1.0, 1.0, 2.0, 1.0]], [[4.0, 0.5]]],
)
def test_mode_matches_pytorch_with_its_gradient(data):
    # ties between values go to the smallest, and the index is the last occurrence, as in PyTorch
    same_values(lambda lib: lib.mode(lib.tensor(data)))
    same_values(lambda lib: lib.tensor(data).t().mode(0, keepdim=True))
    torch = pytest.importorskip("torch")
    x, ref = dl.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    dl.mode(x).values.sum().backward()
    torch.mode(ref).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), ref.grad.numpy())


@pytest.mark.parametrize(
    "data",
    [[3, 1, 3, 2, 1, 1], [[3, 1], [1, 2]], [[1.5, NAN], [1.5, -2.0]], [True, False, True], 7, []],
)
@pytest.mark.parametrize("inverse,counts", [(False, False), (True, False), (False, True), (True, True)])
def test_unique(data, inverse, counts):
    same_values(lambda lib: lib.unique(lib.tensor(data), return_inverse=inverse, return_counts=counts))
    same_values(
        lambda lib: lib.tensor(data).unique(sorted=False, return_inverse=inverse, return_counts=counts)
    )
    same_values(
        lambda lib: lib.unique_consecutive(lib.tensor(data), return_inverse=inverse, return_counts=counts)
    )


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unique_along_a_dim(dim):
    data = [[1, 2, 1], [0, 5, 0], [1, 2, 1], [1, 2, 1]]
    same_values(lambda lib: lib.unique(lib.tensor(data), dim=dim, return_inverse=True, return_counts=True))
    same_values(lambda lib: lib.unique_consecutive(lib.tensor(data), dim=dim, return_counts=True))
    same_values(lambda lib: lib.unique(lib.tensor(data).reshape(2, 2, 3), dim=dim, return_inverse=True))


def test_bincount():
    same_values(lambda lib: lib.bincount(lib.tensor([0, 1, 1, 3])))
    same_values(lambda lib: lib.tensor([0, 1, 1, 3]).bincount(minlength=6))
    same_values(lambda lib: lib.bincount(lib.tensor([], dtype=lib.int64)))
    same_values(lambda lib: lib.bincount(lib.tensor([0, 1, 1, 3]), lib.tensor([0.5, 0.5, 1.0, 2.0])))
    same_values(lambda lib: lib.bincount(lib.tensor([2, 1]), lib.tensor([0.5, 1.5], dtype=lib.float64), 4))
    same_values(lambda lib: lib.bincount(lib.tensor([0, 1, 1, 3]), lib.tensor([1, 2, 3, 4])))


@pytest.mark.parametrize(
    "data,bins,low,high",
    [
        ([1.0, 2.0, 1.0, 4.0], 4, 0, 3),
        ([1.0, 2.0, 1.0, 4.0], 3, 0, 0),
        ([2.0, 2.0], 4, 0, 0),
        ([[1.0, 2.0], [0.0, 3.0]], 3, 0, 0),
        ([1.0, NAN, 0.5], 3, 0, 2),
        ([], 3, 0, 0),
        (np.random.default_rng(0).standard_normal(1000).tolist(), 17, -1.5, 2.0),
    ],
)
def test_histc(data, bins, low, high):
    same_values(lambda lib: lib.histc(lib.tensor(data), bins=bins, min=low, max=high))
    same_values(lambda lib: lib.tensor(data, dtype=lib.float64).histc(bins, low, high))


def test_bucketize_and_searchsorted():
    values, boundaries = [[1, 3, 9], [3, 5, 6]], [1, 3, 5, 7, 9]
    for right in (False, True):
        same_values(lambda lib, r=right: lib.bucketize(lib.tensor(values), lib.tensor(boundaries), right=r))
        same_values(
            lambda lib, r=right: lib.searchsorted(lib.tensor(boundaries), lib.tensor(values), right=r)
        )
    same_values(lambda lib: lib.bucketize(4, lib.tensor([1, 3, 5])))
    same_values(lambda lib: lib.bucketize(lib.tensor([1.5]), lib.tensor([1, 3, 5]), out_int32=True))
    same_values(lambda lib: lib.searchsorted(lib.tensor([1.0, 3.0, 5.0]), 4.0))
    same_values(lambda lib: lib.searchsorted(lib.tensor([1, 3, 5]), lib.tensor([[3], [4]]), side="right"))
    same_values(
        lambda lib: lib.searchsorted(
            lib.tensor([5, 1, 3]), lib.tensor([3, 6, 0]), sorter=lib.tensor([1, 2, 0])
        )
    )


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_one_sequence_per_row(side):
    rng = np.random.default_rng(0)
    boundaries = np.sort(rng.integers(0, 10, (2, 3, 6)), axis=-1)
    values = rng.integers(-1, 11, (2, 3, 5))
    same_values(lambda lib: lib.searchsorted(lib.tensor(boundaries), lib.tensor(values), side=side))
    order = np.argsort(rng.standard_normal((2, 3, 6)), axis=-1)
    shuffled = np.take_along_axis(boundaries, np.argsort(order, axis=-1), axis=-1)
    same_values(
        lambda lib: lib.searchsorted(
            lib.tensor(shuffled), lib.tensor(values * 1.0), sorter=lib.tensor(order), out_int32=True
        )
    )


def test_out():
    out = dl.zeros(0, dtype=dl.int64)
    assert dl.bucketize(dl.tensor([2, 6]), dl.tensor([1, 5]), out=out) is out and out.tolist() == [1, 2]
    values, indices = dl.zeros(0), dl.zeros(0, dtype=dl.int64)
    dl.kthvalue(dl.tensor([[3.0, 1.0, 2.0]]), 2, out=(values, indices))
    assert values.tolist() == [2.0] and indices.tolist() == [2]
    assert dl.histc(dl.tensor([1.0]), 2, out=dl.zeros(2)).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.kthvalue(lib.ones(2, 3), 4),
        lambda lib: lib.kthvalue(lib.ones(2, 3), 0),
        lambda lib: lib.kthvalue(lib.ones(2, 3), 1, 2),
        lambda lib: lib.median(lib.ones(2, 0), 1),
        lambda lib: lib.mode(lib.ones(2, 0)),
        lambda lib: lib.unique(lib.ones(2, 2), dim=2),
        lambda lib: lib.bincount(lib.tensor([0, -1])),
        lambda lib: lib.bincount(lib.tensor([[0, 1]])),
        lambda lib: lib.bincount(lib.tensor([0.0, 1.0])),
        lambda lib: lib.bincount(lib.tensor([True, False])),
        lambda lib: lib.bincount(lib.tensor([1]), minlength=-1),
        lambda lib: lib.bincount(lib.tensor([1, 2]), lib.ones(3)),
        lambda lib: lib.histc(lib.tensor([1, 2]), bins=4),
        lambda lib: lib.histc(lib.tensor([1.0, 2.0]), bins=0),
        lambda lib: lib.histc(lib.tensor([1.0, 2.0]), bins=3, min=3, max=1),
        lambda lib: lib.histc(lib.tensor([1.0, float("inf")]), bins=3),
        lambda lib: lib.bucketize(lib.tensor([1]), lib.tensor([[1, 3, 5]])),
        lambda lib: lib.searchsorted(lib.tensor([1, 3]), lib.tensor([3]), side="left", right=True),
        lambda lib: lib.searchsorted(lib.tensor([1, 3]), lib.tensor([3]), side="foo"),
        lambda lib: lib.searchsorted(lib.tensor([[1, 3, 5], [1, 2, 3]]), lib.tensor([[3], [4], [5]])),
        lambda lib: lib.searchsorted(lib.tensor([[1, 3, 5]]), 4),
        lambda lib: lib.searchsorted(lib.tensor(1), lib.tensor([1])),
        lambda lib: lib.searchsorted(lib.tensor([5, 1, 3]), lib.tensor([3]), sorter=lib.tensor([1, 2])),
        lambda lib: lib.searchsorted(lib.tensor([5, 1, 3]), lib.tensor([3]), sorter=lib.tensor([1, 2, 5])),
    ],
)
def test_errors_match_pytorch(fn):
    same_error(fn)
