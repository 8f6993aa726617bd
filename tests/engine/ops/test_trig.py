import math
import warnings

import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op

torch = pytest.importorskip("torch")

# name, function, low, high: each input kept inside the function's domain
UNARY = [
    ("tan", lambda lib, x: lib.tan(x), -1.2, 1.2),
    ("sinh", lambda lib, x: lib.sinh(x), -3, 3),
    ("cosh", lambda lib, x: x.cosh(), -3, 3),
    ("asin", lambda lib, x: lib.asin(x), -0.9, 0.9),
    ("acos", lambda lib, x: x.acos(), -0.9, 0.9),
    ("atan", lambda lib, x: lib.atan(x), -3, 3),
    ("asinh", lambda lib, x: lib.asinh(x), -3, 3),
    ("acosh", lambda lib, x: x.acosh(), 1.1, 4),
    ("atanh", lambda lib, x: lib.atanh(x), -0.9, 0.9),
    ("arcsin", lambda lib, x: lib.arcsin(x), -0.9, 0.9),
    ("arccos", lambda lib, x: x.arccos(), -0.9, 0.9),
    ("arctan", lambda lib, x: lib.arctan(x), -3, 3),
    ("arcsinh", lambda lib, x: x.arcsinh(), -3, 3),
    ("arccosh", lambda lib, x: lib.arccosh(x), 1.1, 4),
    ("arctanh", lambda lib, x: x.arctanh(), -0.9, 0.9),
    ("sinc", lambda lib, x: lib.sinc(x), -2.5, 2.5),
    ("deg2rad", lambda lib, x: x.deg2rad(), -360, 360),
    ("rad2deg", lambda lib, x: lib.rad2deg(x), -4, 4),
]


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()], ids=str)
@pytest.mark.parametrize("name,fn,low,high", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, low, high, shape):
    check_op(fn, shape, low=low, high=high)


BINARY_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4)), ((), (2, 2))]


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize(
    "name,fn",
    [
        ("atan2", lambda lib, x, y: lib.atan2(x, y)),
        ("arctan2_method", lambda lib, x, y: x.arctan2(y)),
        ("hypot", lambda lib, x, y: lib.hypot(x, y)),
        ("hypot_method", lambda lib, x, y: x.hypot(y)),
    ],
)
def test_binary_broadcast(name, fn, shapes):
    check_op(fn, *shapes, low=-2, high=2)


def test_second_derivatives_are_differentiable():
    for fn in (dl.tan, dl.asin, dl.atanh, dl.sinh, dl.sinc):
        x = dl.tensor([0.3, -0.6], dtype=dl.float64, requires_grad=True)
        assert dl.autograd.gradgradcheck(fn, [x])
    x = dl.tensor([0.3, -0.6], dtype=dl.float64, requires_grad=True)
    y = dl.tensor([0.5, 0.8], dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradgradcheck(dl.atan2, [x, y])


def test_values_at_the_edges_match_pytorch():
    points = [0.0, -0.0, 1.0, -1.0, 2.0, float("inf"), float("-inf"), float("nan")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nan outside the domain, silently, as in PyTorch
        for name in ("tan", "asin", "acos", "atanh", "acosh", "sinh", "cosh", "sinc", "asinh", "atan"):
            ours = getattr(dl, name)(dl.tensor(points)).numpy()
            ref = getattr(torch, name)(torch.tensor(points)).numpy()
            np.testing.assert_allclose(ours, ref, rtol=1e-6, err_msg=name)


def test_gradients_at_the_origin_match_pytorch():
    x = dl.tensor([0.0, 1.0], requires_grad=True)
    y = dl.tensor([0.0, 0.0], requires_grad=True)
    dl.atan2(x, y).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0] and y.grad.tolist() == [0.0, -1.0]
    z = dl.tensor([0.0, 0.5], requires_grad=True)
    dl.sinc(z).sum().backward()
    assert z.grad[0].item() == 0.0 and math.isclose(z.grad[1].item(), -4 / math.pi, rel_tol=1e-6)


def test_integers_compute_in_the_default_float_dtype():
    for name in ("tan", "sinh", "asin", "atanh", "sinc", "deg2rad", "rad2deg"):
        ours = getattr(dl, name)(dl.arange(3))
        ref = getattr(torch, name)(torch.arange(3))
        assert ours.dtype == dl.float32, name
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6, err_msg=name)
    assert dl.atan2(dl.arange(3), dl.ones(3, dtype=dl.float64)).dtype == dl.float64
    assert dl.atan2(dl.ones(2, dtype=dl.float16), dl.tensor(2.0)).dtype == dl.float16
    assert dl.sinc(dl.tensor([1.0])).item() == torch.sinc(torch.tensor([1.0])).item()


def test_inplace_twins_write_into_the_tensor():
    x = dl.tensor([0.1, 0.2])
    assert x.tan_() is x and np.allclose(x.numpy(), np.tan([0.1, 0.2]))
    x = dl.tensor([0.5, 1.0])
    x.atan2_(dl.tensor([1.0, 1.0], dtype=dl.float64))
    assert x.dtype == dl.float32 and np.allclose(x.numpy(), np.arctan2([0.5, 1.0], 1.0))
    x = dl.tensor([3.0, 4.0])
    x.hypot_(dl.tensor(4.0))
    assert x.tolist() == [5.0, pytest.approx(32**0.5)]
    leaf = dl.tensor([0.1], requires_grad=True)
    y = leaf * 1
    y.arcsinh_()
    y.backward(dl.ones(1))
    assert np.allclose(leaf.grad.numpy(), 1 / np.sqrt(1.01))


def test_errors_match_pytorch():
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        dl.arange(3).sinh_()
    with pytest.raises(
        RuntimeError, match=r"output with shape \[2\] doesn't match the broadcast shape \[2, 2\]"
    ):
        dl.ones(2).atan2_(dl.ones(2, 2))
    with pytest.raises(
        RuntimeError, match=r"The size of tensor a \(4\) must match the size of tensor b \(3\)"
    ):
        dl.atan2(dl.ones(4), dl.ones(3))
    with pytest.raises(
        TypeError, match=r"atan2\(\): argument 'other' \(position 2\) must be Tensor, not int"
    ):
        dl.atan2(dl.ones(2), 2)
    with pytest.raises(NotImplementedError, match="\"hypot_cpu\" not implemented for 'Long'"):
        dl.hypot(dl.arange(2), dl.arange(2))


def test_out_writes_into_the_given_tensor():
    out = dl.empty(3)
    assert dl.sinh(dl.tensor([0.0, 1.0, 2.0]), out=out) is out
    np.testing.assert_allclose(out.numpy(), np.sinh([0.0, 1.0, 2.0]), rtol=1e-6)
    out = dl.empty(2, 2, dtype=dl.float64)
    dl.atan2(dl.ones(2, 1), dl.ones(2), out=out)
    assert out.dtype == dl.float64 and np.allclose(out.numpy(), math.pi / 4)
