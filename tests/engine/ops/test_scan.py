import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.ops.scan import scan
from tests.engine.ops.parity import same_error, same_values
from tests.op_check import check_op

SCAN_OPS = [
    ("cumsum", lambda lib, x: x.cumsum(0), (3, 4)),
    ("cumsum_neg_dim", lambda lib, x: lib.cumsum(x, -1), (2, 3, 4)),
    ("cumsum_dtype", lambda lib, x: lib.cumsum(x, dim=1, dtype=lib.float64), (2, 3)),
    ("cumsum_axis", lambda lib, x: lib.cumsum(x, axis=1), (2, 3)),
    ("cumsum_0d", lambda lib, x: lib.cumsum(x.sum(), 0), (3,)),
    ("cumprod", lambda lib, x: x.cumprod(1), (3, 4)),
    ("cumprod_neg_dim", lambda lib, x: lib.cumprod(x, -3), (3, 2, 2)),
    ("cummax", lambda lib, x: x.cummax(1), (3, 4)),
    ("cummax_neg_dim", lambda lib, x: lib.cummax(x, -1), (2, 3, 4)),
    ("cummin", lambda lib, x: lib.cummin(x, 0), (4, 3)),
    ("cummin_0d", lambda lib, x: lib.cummin(x.sum(), -1), (3,)),
    ("logcumsumexp", lambda lib, x: x.logcumsumexp(1), (3, 4)),
    ("logcumsumexp_neg_dim", lambda lib, x: lib.logcumsumexp(x * 30, -3), (3, 2, 2)),
    ("diff", lambda lib, x: x.diff(), (3, 4)),
    ("diff_n2_dim0", lambda lib, x: lib.diff(x, 2, 0), (4, 3)),
    ("diff_neg_dim", lambda lib, x: lib.diff(x, dim=-2), (2, 3, 4)),
    ("diff_n_past_length", lambda lib, x: lib.diff(x, 5) + 1, (2, 3)),
    ("diff_n0", lambda lib, x: lib.diff(x, 0) * 1, (2, 3)),
    ("diff_prepend_append", lambda lib, x: lib.diff(x, 1, 0, prepend=x[:1] * 2, append=x * x), (2, 3)),
]


@pytest.mark.parametrize("name,fn,shape", SCAN_OPS, ids=[s[0] for s in SCAN_OPS])
def test_scan_ops(name, fn, shape):
    check_op(fn, shape)


@pytest.mark.parametrize(
    "values",
    [[2.0, 0.0, 3.0, -1.0], [0.0, 2.0, 3.0, 4.0], [2.0, 0.0, 0.0, 4.0], [1.5, -2.0, 3.0, 0.0], [0.0] * 4],
)
def test_cumprod_gradient_with_zeros(values):
    arrays = [np.array([values, values[::-1]])]
    check_op(lambda lib, x: lib.cumprod(x, 1), arrays=arrays)
    check_op(lambda lib, x: lib.cumprod(x * x, 1).sum(1), arrays=arrays)  # second use of the formula


def test_running_extremes_of_ties_and_nans_match_pytorch():
    # ties are deterministic in PyTorch (the later index wins) and NaNs propagate
    nan = float("nan")
    for data in (
        [1.0, 1.0, 0.0, 1.0, 2.0, 2.0],
        [1.0, nan, 3.0, nan, 0.0],
        [2, 1, 3, 3],
        [False, True, True],
    ):
        same_values(lambda lib, data=data: lib.cummax(lib.tensor(data), 0))
        same_values(lambda lib, data=data: lib.cummin(lib.tensor(data), 0))


def test_integer_and_bool_scans_match_pytorch():
    same_values(lambda lib: lib.cumsum(lib.tensor([1, 2, 3], dtype=lib.int32), 0))
    same_values(lambda lib: lib.cumsum(lib.tensor([True, True, False]), 0))
    same_values(lambda lib: lib.cumprod(lib.tensor([[1, 2], [3, 4]], dtype=lib.int8), 1))
    same_values(lambda lib: lib.diff(lib.tensor([True, False, False, True])))
    same_values(lambda lib: lib.diff(lib.tensor([1, 5, 2], dtype=lib.int8)))
    same_values(lambda lib: lib.diff(lib.tensor([[1, 2]]), prepend=lib.ones(1, 1)))


def test_logcumsumexp_is_stable():
    same_values(lambda lib: lib.logcumsumexp(lib.tensor([-1000.0, 0.0, 1000.0]), 0))
    same_values(lambda lib: lib.logcumsumexp(lib.tensor([float("-inf"), float("-inf"), 0.0]), 0))


def test_scan_matches_accumulate_for_any_length():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 8, 13):
        array = rng.standard_normal((3, n))
        np.testing.assert_array_equal(scan(np.maximum, array, 1), np.maximum.accumulate(array, 1))
        np.testing.assert_allclose(scan(np.logaddexp, array.T, 0), np.logaddexp.accumulate(array.T, 0))


def test_in_place_and_out():
    x = dl.tensor([1.0, 2.0, 3.0])
    assert x.cumsum_(0) is x and x.tolist() == [1.0, 3.0, 6.0]
    assert x.cumprod_(dim=0).tolist() == [1.0, 3.0, 18.0]
    out = dl.zeros(0)
    assert dl.cumsum(dl.ones(3), 0, out=out) is out and out.tolist() == [1.0, 2.0, 3.0]
    values, indices = dl.zeros(0), dl.zeros(0, dtype=dl.int64)
    result = dl.cummax(dl.tensor([1.0, 3.0, 2.0]), 0, out=(values, indices))
    assert result.values is values and indices.tolist() == [0, 1, 1]
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        dl.cumsum(dl.ones(2, requires_grad=True), 0, out=dl.zeros(2))
    # without dtype=, a sum accumulates in out's dtype, as in PyTorch
    same_values(lambda lib: lib.cumsum(lib.tensor([1.5, 2.5]), 0, out=lib.zeros(2, dtype=lib.int64)))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        dl.cumsum(dl.ones(2), 0, dtype=dl.float64, out=dl.zeros(2, dtype=dl.int64))


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.cumsum(lib.ones(2, 3), 2),
        lambda lib: lib.cummax(lib.ones(2, 3), -3),
        lambda lib: lib.logcumsumexp(lib.tensor([1, 2]), 0),
        lambda lib: lib.diff(lib.ones(2, 3), -1),
        lambda lib: lib.diff(lib.tensor(1.0)),
        lambda lib: lib.diff(lib.ones(2, 3), prepend=lib.tensor(1.0)),
        lambda lib: lib.diff(lib.ones(2, 3), append=lib.ones(3, 1)),
    ],
)
def test_errors_match_pytorch(fn):
    same_error(fn)
