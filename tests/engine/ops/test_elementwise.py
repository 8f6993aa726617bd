import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op

BINARY = [
    ("add", lambda lib, x, y: lib.add(x, y, alpha=2)),
    ("sub", lambda lib, x, y: x - y),
    ("mul", lambda lib, x, y: x * y),
    ("div", lambda lib, x, y: x / y),
    ("maximum", lambda lib, x, y: lib.maximum(x, y)),
    ("minimum", lambda lib, x, y: lib.minimum(x, y)),
    ("where", lambda lib, x, y: lib.where(x > 0, x, y)),
    ("lerp", lambda lib, x, y: lib.lerp(x, y, 0.3)),
    ("addcmul", lambda lib, x, y: lib.addcmul(x, x, y, value=0.5)),
]


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 2))])
@pytest.mark.parametrize("name,fn", BINARY, ids=[n for n, _ in BINARY])
def test_binary_ops_broadcast(name, fn, shapes):
    check_op(fn, *shapes, low=0.5, high=2.0)


UNARY = [
    ("neg", lambda lib, x: -x, -2, 2),
    ("abs", lambda lib, x: x.abs(), 0.1, 2),
    ("exp", lambda lib, x: x.exp(), -2, 2),
    ("log", lambda lib, x: x.log(), 0.1, 3),
    ("log1p", lambda lib, x: lib.log1p(x), -0.5, 3),
    ("sqrt", lambda lib, x: x.sqrt(), 0.1, 3),
    ("rsqrt", lambda lib, x: x.rsqrt(), 0.1, 3),
    ("sin", lambda lib, x: x.sin(), -3, 3),
    ("cos", lambda lib, x: x.cos(), -3, 3),
    ("tanh", lambda lib, x: x.tanh(), -3, 3),
    ("sigmoid", lambda lib, x: x.sigmoid(), -5, 5),
    ("relu", lambda lib, x: x.relu(), -2, 2),
    ("pow_scalar", lambda lib, x: x**3, -2, 2),
    ("rpow", lambda lib, x: 2.0**x, -2, 2),
    ("pow_tensor", lambda lib, x: x**x, 0.5, 2),
    ("clamp", lambda lib, x: x.clamp(-0.5, 0.7), -2, 2),
    ("clamp_min", lambda lib, x: lib.clamp(x, min=0.2), -2, 2),
    ("rsub", lambda lib, x: 1 - x, -2, 2),
    ("rdiv", lambda lib, x: 1 / x, 0.5, 2),
    ("masked_fill", lambda lib, x: x.masked_fill(x > 0.5, -1.0), -2, 2),
    ("square", lambda lib, x: lib.square(x), -2, 2),
]


WITH_NUMBERS = [
    ("add_float", lambda lib, x: x + 0.25),
    ("radd_int", lambda lib, x: 3 + x),
    ("sub_float", lambda lib, x: x - 0.1),
    ("mul_int", lambda lib, x: x * 3),
    ("rmul_float", lambda lib, x: 1.5 * x),
    ("div_float", lambda lib, x: x / 0.3),
    ("chain", lambda lib, x: ((x * 1.001 + 0.5).tanh() - 0.1) / 7),
]


@pytest.mark.parametrize("name,fn", WITH_NUMBERS, ids=[w[0] for w in WITH_NUMBERS])
def test_ops_with_python_numbers(name, fn):
    check_op(fn, (2, 3))


@pytest.mark.parametrize("dtype", [dl.float32, dl.float64])
def test_python_numbers_keep_the_float_dtype_and_node_names(dtype):
    torch = pytest.importorskip("torch")
    x = dl.tensor([1.5, -2.0], dtype=dtype, requires_grad=True)
    ref = torch.tensor([1.5, -2.0], dtype=getattr(torch, str(dtype)), requires_grad=True)
    for op in (lambda t: t + 1, lambda t: t - 0.1, lambda t: t * 3, lambda t: t / 0.3):
        out, expected = op(x), op(ref)
        assert out.dtype == dtype and out.grad_fn.name() == expected.grad_fn.name()
        np.testing.assert_array_equal(out.detach().numpy(), expected.detach().numpy())
    assert (dl.tensor([1, 2]) * 1.5).dtype == dl.float32 and (dl.tensor([1.0]) * True).dtype == dl.float32
    assert (dl.tensor([1.0], dtype=dl.float16) / 3).dtype == dl.float16


NUMBERS = [1.001, 0.5, -0.1, 3, 1 / 3, 1e-30, 2**40 + 1, 65504.0, float("inf"), True, 0.0, -0.0, float("nan")]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numbers_given_to_numpy_as_cached_arrays_give_numpy_own_bits(dtype):
    """The scalar ops hand numpy a number as a cached 0-d array (``elementwise._operand``): each
    result is numpy's with the Python number, bit for bit (zeros' signs included) outside NaNs."""
    from dltool.engine.ops.elementwise import _operand

    data = np.random.default_rng(0).standard_normal(50).astype(dtype) * 10
    data[:3] = 0.0, -0.0, np.nan
    x = dl.tensor(data)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # 2**40 overflows float16
        for c in NUMBERS * 2:  # the second round reads the cache
            pairs = [(_operand(c, data) * data, c * data), (x + c, data + c), (x - c, data - c)]
            for got, want in [*pairs, (x * c, data * c), (x / c, data / c)]:
                got = got.numpy() if isinstance(got, dl.Tensor) else got
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
                number = ~np.isnan(want)
                np.testing.assert_array_equal(got[number].view(np.uint8), want[number].view(np.uint8))


def test_numbers_next_to_integer_arrays_stay_python_numbers():
    from dltool.engine.ops.elementwise import _operand

    assert _operand(0.5, np.arange(3)) == 0.5 and type(_operand(0.5, np.arange(3))) is float


def test_a_number_the_dtype_cannot_hold_warns_on_every_call():
    x = dl.tensor([1.0, 2.0], dtype=dl.float16)
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match="overflow"):
            assert np.isinf((x * 1e6).numpy()).all()


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()])
@pytest.mark.parametrize("name,fn,low,high", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops(name, fn, low, high, shape):
    check_op(fn, shape, low=low, high=high)


def test_sigmoid_is_stable_for_large_inputs():
    x = dl.tensor([-1000.0, 0.0, 1000.0])
    assert np.allclose(x.sigmoid().numpy(), [0.0, 0.5, 1.0])
    assert dl.isfinite(x.sigmoid()).all()


def test_maximum_splits_ties_evenly():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = dl.tensor([1.0, 0.0], requires_grad=True)
    dl.maximum(x, y).sum().backward()
    assert x.grad.tolist() == [0.5, 1.0]
    assert y.grad.tolist() == [0.5, 0.0]


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (dl.tensor([1, 2]), 1.5, dl.float32),
        (dl.tensor([1, 2]), 2, dl.int64),
        (dl.tensor([1.0], dtype=dl.float16), 2.0, dl.float16),
        (dl.tensor([1.0]), dl.tensor([1.0], dtype=dl.float64), dl.float64),
        (dl.tensor([1, 2], dtype=dl.int32), dl.tensor([1, 2]), dl.int64),
        (dl.tensor([1.0]), dl.tensor(2, dtype=dl.float64), dl.float32),
        (dl.tensor([True]), dl.tensor([2]), dl.int64),
        (dl.tensor([1, 2]), dl.tensor([0.5]), dl.float32),
    ],
)
def test_type_promotion_follows_pytorch(a, b, expected):
    assert (a + b).dtype == expected
    assert (b * a).dtype == expected


def test_integer_division_gives_float32():
    assert (dl.tensor([3]) / 2).dtype == dl.float32
    assert (dl.tensor([7]) // 2).tolist() == [3]
    assert (dl.tensor([-7.0]) % 3).tolist() == [2.0]


def test_comparisons_and_logic_give_bools_without_grad():
    x = dl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = (x > 1.5) & (x < 2.5)
    assert mask.dtype == dl.bool and not mask.requires_grad
    assert mask.tolist() == [False, True, False]
    assert (~mask).tolist() == [True, False, True]
    assert dl.isclose(x, x + 1e-9).all()
    assert dl.allclose(x, x.detach() + 1e-9)
    assert dl.equal(x, x.clone()) and not dl.equal(x, x[:2])
    assert dl.isnan(dl.tensor([float("nan"), 1.0])).tolist() == [True, False]
    assert not dl.isfinite(dl.tensor([float("inf")])).any()


def test_cast_is_differentiable_and_returns_grad_in_input_dtype():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3
    y.sum().backward()
    assert y.dtype == dl.float64 and x.grad.dtype == dl.float32
    assert x.grad.tolist() == [3.0, 3.0]


def test_clamp_without_bounds_is_an_error():
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        dl.clamp(dl.ones(2))


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, x, y: lib.float_power(x, y),
        lambda lib, x, y: x.float_power(2),
        lambda lib, x, y: lib.float_power(2.5, y),
    ],
    ids=["tensors", "method_number", "number_base"],
)
def test_float_power(fn):
    check_op(fn, (2, 3), (3,), low=0.5, high=2.0)


def test_float_power_computes_in_float64():
    torch = pytest.importorskip("torch")
    cases = [(dl.arange(4), 3), (dl.tensor([0.5, 1.5]), dl.tensor(2.0)), (2, dl.tensor([0.5, -1.0]))]
    for base, exponent in cases:
        ours = dl.float_power(base, exponent)
        to_torch = [torch.tensor(v.numpy()) if isinstance(v, dl.Tensor) else v for v in (base, exponent)]
        assert ours.dtype == dl.float64
        np.testing.assert_allclose(ours.numpy(), torch.float_power(*to_torch).numpy())
    x = dl.tensor([2.0, 3.0], dtype=dl.float64)
    assert x.float_power_(2) is x and x.tolist() == [4.0, 9.0]
    with pytest.raises(
        RuntimeError,
        match="the base given to float_power_ has dtype Float but the operation's result requires dtype Double",
    ):
        dl.ones(2).float_power_(2)
    with pytest.raises(
        RuntimeError,
        match="the output given to float_power has dtype Float but the operation's result requires dtype Double",
    ):
        dl.float_power(dl.ones(2), 2, out=dl.empty(2))
    out = dl.empty(2, dtype=dl.float64)
    assert dl.float_power(dl.ones(2), 2, out=out) is out and out.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_fmin_ignore_nan_and_route_the_gradient_to_the_number(name: str) -> None:
    torch = pytest.importorskip("torch")
    x = np.array([1.0, np.nan, 3.0, np.nan, 2.0])
    y = np.array([2.0, 5.0, np.nan, np.nan, 2.0])
    ours = [dl.tensor(a, requires_grad=True) for a in (x, y)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, y)]
    out, ref = getattr(dl, name)(*ours), getattr(torch, name)(*theirs)
    np.testing.assert_array_equal(out.detach().numpy(), ref.detach().numpy())
    out.sum().backward()
    ref.sum().backward()
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine.grad.numpy(), reference.grad.numpy())
    check_op(lambda lib, a, b: getattr(lib, name)(a, b), (3, 4), (4,))
