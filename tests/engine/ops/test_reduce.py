import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.ops.parity import same_error, same_values
from tests.op_check import check_op

REDUCTIONS = [
    ("sum_all", lambda lib, x: x.sum()),
    ("sum_dim", lambda lib, x: x.sum(1)),
    ("sum_neg_dim", lambda lib, x: lib.sum(x, -1)),
    ("sum_tuple_keepdim", lambda lib, x: x.sum(dim=(0, -1), keepdim=True)),
    ("mean_all", lambda lib, x: x.mean()),
    ("mean_tuple", lambda lib, x: lib.mean(x, (0, 1))),
    ("mean_keepdim", lambda lib, x: x.mean(-1, keepdim=True)),
    ("var_all", lambda lib, x: x.var()),
    ("var_dim", lambda lib, x: x.var(0)),
    ("var_correction0", lambda lib, x: lib.var(x, -1, correction=0, keepdim=True)),
    ("var_unbiased_false", lambda lib, x: x.var(1, unbiased=False)),
    ("std_all", lambda lib, x: x.std()),
    ("std_tuple", lambda lib, x: lib.std(x, dim=(0, 1), correction=2)),
    ("prod_all", lambda lib, x: x.prod()),
    ("prod_dim", lambda lib, x: lib.prod(x, -1, keepdim=True)),
    ("max_all", lambda lib, x: x.max()),
    ("max_dim", lambda lib, x: x.max(1)),
    ("max_dim_keepdim", lambda lib, x: lib.max(x, dim=-1, keepdim=True)),
    ("min_all", lambda lib, x: lib.min(x)),
    ("min_dim", lambda lib, x: x.min(0)),
    ("amax_all", lambda lib, x: x.amax()),
    ("amax_tuple", lambda lib, x: lib.amax(x, dim=(0, -1))),
    ("amin_keepdim", lambda lib, x: x.amin(-1, keepdim=True)),
    ("logsumexp_dim", lambda lib, x: x.logsumexp(-1)),
    ("logsumexp_tuple", lambda lib, x: lib.logsumexp(x, dim=(0, 1), keepdim=True)),
    ("norm_fro", lambda lib, x: x.norm()),
    ("norm_2_dim", lambda lib, x: lib.norm(x, 2, dim=-1)),
    ("norm_1", lambda lib, x: x.norm(p=1, dim=0, keepdim=True)),
    ("norm_3_tuple", lambda lib, x: lib.norm(x, p=3, dim=(0, 1))),
    ("norm_inf", lambda lib, x: x.norm(p=float("inf"), dim=-1)),
    ("norm_neg_inf", lambda lib, x: x.norm(p=float("-inf"))),
    ("softmax", lambda lib, x: x.softmax(-1)),
    ("softmax_dim0", lambda lib, x: lib.softmax(x, dim=0)),
    ("log_softmax", lambda lib, x: x.log_softmax(-1)),
    ("log_softmax_dim0", lambda lib, x: lib.log_softmax(x, 0)),
    ("var_unbiased_positional", lambda lib, x: lib.var(x, False)),
    ("var_dim_unbiased_keepdim_positional", lambda lib, x: x.var(-1, False, True)),
    ("std_unbiased_positional", lambda lib, x: x.std(True)),
    ("var_mean_dim", lambda lib, x: lib.var_mean(x, -1, correction=0)),
    ("std_mean_all", lambda lib, x: lib.std_mean(x)),
    ("std_mean_tuple_keepdim", lambda lib, x: lib.std_mean(x, (0, -1), keepdim=True)),
    ("nansum_all", lambda lib, x: x.nansum()),
    ("nansum_dim", lambda lib, x: lib.nansum(x, -1, keepdim=True)),
    ("nanmean_all", lambda lib, x: lib.nanmean(x)),
    ("nanmean_tuple", lambda lib, x: x.nanmean((0, 1))),
    ("aminmax_all", lambda lib, x: x.aminmax()),
    ("aminmax_dim", lambda lib, x: lib.aminmax(x, dim=-1, keepdim=True)),
]


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[n for n, _ in REDUCTIONS])
def test_reductions(name, fn, shape):
    check_op(fn, shape)


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1))])
@pytest.mark.parametrize("name", ["max", "min"])
def test_two_tensor_max_min(name, shapes):
    check_op(lambda lib, x, y: getattr(lib, name)(x, y), *shapes)


def test_max_with_dim_returns_values_and_indices():
    x = dl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = dl.max(x, dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    result = x.min(0, keepdim=True)
    assert result.values.tolist() == [[1.0, 0.0, 2.0]] and result.indices.tolist() == [[0, 1, 0]]
    assert result.indices.dtype == dl.int64 and not result.indices.requires_grad


@pytest.mark.parametrize(
    "array",
    [
        [[0.0, 2.0, 3.0], [0.0, 0.0, 2.0], [1.0, 2.0, 3.0]],  # one zero, two zeros, none
        [[1.5, 0.0, -2.0], [0.5, 3.0, 0.0], [0.0, 0.0, 0.0]],
    ],
)
@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_with_zeros(array, dim):
    fn = (lambda lib, x: x.prod()) if dim is None else (lambda lib, x: x.prod(dim))
    check_op(fn, arrays=[np.array(array)])


def test_argmax_argmin():
    x = dl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    assert x.argmax().item() == 3 and dl.argmin(x).item() == 4
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert dl.argmin(x, dim=-1, keepdim=True).tolist() == [[0], [1]]
    assert x.argmax(0).dtype == dl.int64


def test_all_any_and_count_nonzero():
    x = dl.tensor([[True, False], [True, True]])
    assert not x.all().item() and x.any().item()
    assert x.all(dim=1).tolist() == [False, True]
    assert dl.any(x, 0, keepdim=True).tolist() == [[True, True]]
    assert dl.count_nonzero(dl.tensor([0.0, 1.5, -2.0])).item() == 2


def test_sum_dtype_rules():
    assert dl.tensor([True, True, False]).sum().dtype == dl.int64
    assert dl.tensor([1, 2], dtype=dl.int32).sum().dtype == dl.int64
    assert dl.ones(2).sum().dtype == dl.float32
    assert dl.ones(2).sum(dtype=dl.float64).dtype == dl.float64


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "int32", "int64"])
def test_integer_sums_are_int64_as_in_pytorch(dtype):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(0).integers(0, 100, (3, 4)).astype(dtype)
    x = dl.from_numpy(values)
    for dim, keepdim in ((None, False), (1, False), ((0, 1), True), (-2, True)):
        got = x.sum() if dim is None else x.sum(dim, keepdim=keepdim)
        expected = torch.from_numpy(values)
        expected = expected.sum() if dim is None else expected.sum(dim, keepdim=keepdim)
        assert got.dtype == dl.int64 and got.tolist() == expected.tolist()
    assert dl.tensor([100, 100], dtype=dl.int8).sum().item() == 200  # no int8 wrap-around


def test_mean_of_integers_is_an_error():
    with pytest.raises(RuntimeError, match="Input dtype must be either a floating point"):
        dl.tensor([1, 2]).mean()


def test_reduction_dim_out_of_range():
    with pytest.raises(
        IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"
    ):
        dl.ones(2, 3).sum(2)


def test_amax_of_empty_tensor_is_an_error():
    with pytest.raises(RuntimeError, match="numel\\(\\) == 0"):
        dl.ones(0).amax()


# numpy's names, which PyTorch accepts for dim and keepdim
ALIASES = [
    lambda lib, x: lib.sum(x, axis=0, keepdims=True),
    lambda lib, x: x.mean(axis=(0, 1)),
    lambda lib, x: lib.std(x, axis=1, keepdims=True),
    lambda lib, x: x.var(axis=-1),
    lambda lib, x: lib.prod(x, axis=1),
    lambda lib, x: x.amax(axis=0, keepdims=True),
    lambda lib, x: lib.amin(x, axis=1),
    lambda lib, x: lib.max(x, axis=1),
    lambda lib, x: x.min(axis=0, keepdims=True),
    lambda lib, x: lib.logsumexp(x, axis=1),
    lambda lib, x: x.softmax(axis=0),
    lambda lib, x: lib.log_softmax(x, axis=-1),
    lambda lib, x: lib.nansum(x, axis=1),
    lambda lib, x: lib.nanmean(x, axis=0, keepdims=True),
    lambda lib, x: lib.var_mean(x, axis=1),
    lambda lib, x: lib.aminmax(x, axis=1),
]


@pytest.mark.parametrize("fn", ALIASES)
def test_numpy_axis_and_keepdims(fn):
    check_op(fn, (3, 4))


def test_numpy_aliases_on_integer_results():
    same_values(lambda lib: lib.argmax(lib.tensor([[1, 5], [7, 0]]), axis=1, keepdims=True))
    same_values(lambda lib: lib.tensor([[1, 5], [7, 0]]).argmin(axis=0))
    same_values(lambda lib: lib.all(lib.tensor([[True, False]]), axis=1))
    same_values(lambda lib: lib.tensor([[True, False]]).any(axis=0, keepdims=True))
    same_values(lambda lib: lib.count_nonzero(lib.tensor([[0, 2], [1, 1]]), axis=0))


def test_nan_reductions_match_pytorch():
    data = [[1.0, float("nan"), 2.0], [float("nan")] * 3]
    same_values(lambda lib: lib.nansum(lib.tensor(data), 1))
    same_values(lambda lib: lib.nanmean(lib.tensor(data), 1))
    same_values(lambda lib: lib.nansum(lib.tensor([1, 2], dtype=lib.int32)))
    x = dl.tensor(data, requires_grad=True)
    dl.nanmean(x).backward()
    assert x.grad.tolist() == [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]


def test_aminmax_and_std_mean_write_out():
    low, high = dl.zeros(0), dl.zeros(0)
    result = dl.aminmax(dl.tensor([[1.0, 5.0], [3.0, 0.0]]), dim=0, out=(low, high))
    assert result.min is low and low.tolist() == [1.0, 0.0] and high.tolist() == [3.0, 5.0]
    std, mean = dl.zeros(0), dl.zeros(0)
    dl.std_mean(dl.tensor([1.0, 3.0]), out=(std, mean))
    assert mean.item() == 2.0 and std.item() == pytest.approx(2**0.5)
    assert dl.nansum(dl.tensor([1.0, float("nan")]), out=dl.zeros(())).item() == 1.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.sum(lib.ones(2), dim=0, axis=0),
        lambda lib: lib.nanmean(lib.tensor([1, 2])),
        lambda lib: lib.aminmax(lib.ones(0)),
        lambda lib: lib.aminmax(lib.ones(2, 2), 0),
        lambda lib: lib.amax(lib.ones(2, 0), dim=1),
        lambda lib: lib.amin(lib.ones(2, 0), 1),
        lambda lib: lib.max(lib.ones(2, 0), 1),
        lambda lib: lib.min(lib.ones(0, 2), 0),
    ],
)
def test_errors_match_pytorch(fn):
    same_error(fn)


def test_extremes_over_an_empty_dim_of_a_non_empty_result():
    same_values(lambda lib: lib.amax(lib.ones(2, 0), dim=0))


def test_amax_shares_gradient_between_ties():
    x = dl.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.amax().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5]


def test_logsumexp_and_softmax_are_stable():
    x = dl.tensor([1000.0, 1000.0, -1000.0])
    assert np.allclose(x.logsumexp(0).item(), 1000.0 + np.log(2.0))
    assert np.allclose(x.softmax(0).numpy(), [0.5, 0.5, 0.0])
    assert dl.isfinite(x.log_softmax(0)[:2]).all()
    assert dl.logsumexp(dl.tensor([-float("inf")] * 2), 0).item() == -float("inf")


def test_softmax_keeps_float32():
    assert dl.randn(2, 3).softmax(-1).dtype == dl.float32
    assert dl.randn(2, 3).log_softmax(-1, dtype=dl.float64).dtype == dl.float64


@pytest.mark.parametrize("shape,dim", [((300, 10), 1), ((3, 100), 1), ((4, 5, 6), 1), ((7, 3), 0)])
def test_row_reduce_equals_numpy_reduce(shape, dim):
    from dltool.engine.ops._utils import row_reduce

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for ufunc in (np.maximum, np.add):
        expected = ufunc.reduce(x, axis=dim, keepdims=True)
        np.testing.assert_allclose(row_reduce(ufunc, x, dim), expected, rtol=1e-6, atol=1e-6)
