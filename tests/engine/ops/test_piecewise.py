import math
import warnings

import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op

torch = pytest.importorskip("torch")

BINARY_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 2))]


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize(
    "name,fn",
    [
        ("fmod", lambda lib, x, y: lib.fmod(x, y)),
        ("fmod_method", lambda lib, x, y: x.fmod(y)),
        ("copysign", lambda lib, x, y: lib.copysign(x, y - 1.5)),
        ("copysign_method", lambda lib, x, y: x.copysign(y - 1.5)),
    ],
)
def test_binary_broadcast(name, fn, shapes):
    # divisors in [0.5, 2] keep fmod away from its jumps at multiples of the divisor
    check_op(
        fn,
        *shapes,
        arrays=[
            np.random.default_rng(1).uniform(-3, 3, shapes[0]),
            np.random.default_rng(2).uniform(0.5, 2, shapes[1]),
        ],
    )


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()], ids=str)
def test_unary(shape):
    check_op(lambda lib, x: lib.frac(x * 3.3), shape)
    check_op(lambda lib, x: lib.nan_to_num(x), shape)
    check_op(lambda lib, x: (x / 0.1).fmod(1.7), shape)


def test_fmod_signs_and_integers_match_pytorch():
    x, y = [-3.0, 3.0, -3.5, 3.5, 7.0], [2.0, -2.0, 2.0, -2.0, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # x fmod 0 is nan, silently, as in PyTorch
        ours = dl.fmod(dl.tensor(x), dl.tensor(y)).numpy()
    np.testing.assert_array_equal(ours, torch.fmod(torch.tensor(x), torch.tensor(y)).numpy())
    ints = dl.fmod(dl.tensor([-3, 3, 7]), dl.tensor([2, -2, 5]))
    assert ints.dtype == dl.int64 and ints.tolist() == [-1, 1, 2]
    assert dl.fmod(dl.tensor([-3, 3]), 2.5).tolist() == [-0.5, 0.5]
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        dl.fmod(dl.tensor([1, 2]), dl.tensor([1, 0]))


def test_fmod_gradient_with_respect_to_the_divisor():
    x = dl.tensor([1.5, 2.5, -2.5], requires_grad=True)
    y = dl.tensor([1.0, 2.0, 2.0], requires_grad=True)
    dl.fmod(x, y).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0] and y.grad.tolist() == [-1.0, -1.0, 1.0]


def test_frac_and_signbit_match_pytorch():
    values = [-1.5, 2.25, -0.0, 0.0, -2.0, float("inf"), float("nan")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frac = dl.frac(dl.tensor(values)).numpy()
    np.testing.assert_array_equal(frac, torch.frac(torch.tensor(values)).numpy())
    signs = [-0.0, 0.0, -1.0, float("nan"), -float("nan"), float("-inf")]
    assert dl.signbit(dl.tensor(signs)).tolist() == torch.signbit(torch.tensor(signs)).tolist()
    assert dl.tensor([-2, 0, 3]).signbit().tolist() == [True, False, False]
    assert dl.signbit(dl.tensor([True])).tolist() == [False]
    with pytest.raises(NotImplementedError, match="\"frac_cpu\" not implemented for 'Long'"):
        dl.frac(dl.arange(3))


def test_copysign_zero_signs_dtypes_and_gradient_match_pytorch():
    x, y = [1.0, 2.0, 3.0, 0.0, -4.0], [-0.0, 0.0, -2.0, -1.0, 5.0]
    assert (
        dl.copysign(dl.tensor(x), dl.tensor(y)).tolist()
        == torch.copysign(torch.tensor(x), torch.tensor(y)).tolist()
    )
    assert dl.copysign(dl.arange(3), dl.arange(3)).dtype == dl.float32
    assert dl.copysign(dl.tensor([1.0, 2.0]), -1).tolist() == [-1.0, -2.0]
    a, b = dl.tensor(x, requires_grad=True), dl.tensor(y, requires_grad=True)
    a_ref, b_ref = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    dl.copysign(a, b).sum().backward()
    torch.copysign(a_ref, b_ref).sum().backward()
    assert a.grad.tolist() == a_ref.grad.tolist() and b.grad.tolist() == b_ref.grad.tolist()


def test_heaviside_matches_pytorch_and_records_no_gradient():
    x = [-1.0, 0.0, 2.0, float("nan"), -0.0]
    values = dl.tensor([0.5])
    ours = dl.heaviside(dl.tensor(x, requires_grad=True), values)
    assert ours.tolist()[:3] == torch.heaviside(torch.tensor(x), torch.tensor([0.5])).tolist()[:3]
    assert ours.tolist()[3:] == [0.0, 0.5] and not ours.requires_grad
    assert dl.heaviside(dl.tensor([-2, 0, 3]), dl.tensor([7])).tolist() == [0, 7, 1]
    with pytest.raises(
        RuntimeError, match="heaviside is not yet implemented for tensors with different dtypes."
    ):
        dl.heaviside(dl.ones(2), dl.ones(2, dtype=dl.float64))
    with pytest.raises(
        TypeError, match=r"heaviside\(\): argument 'values' \(position 2\) must be Tensor, not float"
    ):
        dl.heaviside(dl.ones(2), 0.5)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nan_to_num_defaults_follow_the_dtype(dtype):
    values = [float("nan"), float("inf"), float("-inf"), 1.5]
    ours = dl.nan_to_num(dl.tensor(values, dtype=getattr(dl, dtype))).tolist()
    assert ours == torch.nan_to_num(torch.tensor(values, dtype=getattr(torch, dtype))).tolist()
    assert ours[1] == float(np.finfo(dtype).max)
    assert dl.nan_to_num(dl.tensor(values), nan=2.0, posinf=3, neginf=-3).tolist() == [2.0, 3.0, -3.0, 1.5]
    assert dl.nan_to_num(dl.tensor([1, 2])).tolist() == [1, 2]


def test_nan_to_num_gradient_is_zero_where_replaced():
    x = dl.tensor([float("nan"), 2.5, float("inf")], requires_grad=True)
    dl.nan_to_num(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_inplace_twins_and_out():
    x = dl.tensor([float("nan"), 1.0])
    assert x.nan_to_num_(nan=-1.0) is x and x.tolist() == [-1.0, 1.0]
    x = dl.tensor([5.5, -5.5])
    x.fmod_(2)
    assert x.tolist() == [1.5, -1.5]
    x.frac_()
    assert x.tolist() == [0.5, -0.5]
    x.copysign_(dl.tensor([-1.0, -1.0]))
    assert x.tolist() == [-0.5, -0.5]
    x.heaviside_(dl.tensor([0.0]))
    assert x.tolist() == [0.0, 0.0]
    assert not hasattr(x, "signbit_")
    out = dl.empty(3, dtype=dl.bool)
    assert dl.signbit(dl.tensor([-1.0, 1.0, -0.0]), out=out) is out and out.tolist() == [True, False, True]
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        dl.frac(dl.tensor([1.5]), out=dl.empty(1, dtype=dl.int64))
    assert math.isclose(dl.fmod(dl.tensor([7.0]), 3, out=dl.empty(1)).item(), 1.0)
