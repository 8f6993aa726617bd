import math
import warnings

import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op

torch = pytest.importorskip("torch")

UNARY = [
    ("erf", lambda lib, x: lib.erf(x), -3, 3),
    ("erfc", lambda lib, x: x.erfc(), -3, 3),
    ("erfinv", lambda lib, x: lib.erfinv(x), -0.95, 0.95),
    ("exp2", lambda lib, x: x.exp2(), -3, 3),
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
        ("logaddexp", lambda lib, x, y: lib.logaddexp(x, y)),
        ("logaddexp2", lambda lib, x, y: x.logaddexp2(y)),
        ("xlogy", lambda lib, x, y: lib.xlogy(x, y)),
        ("xlogy_method", lambda lib, x, y: x.xlogy(y)),
    ],
)
def test_binary_broadcast(name, fn, shapes):
    check_op(fn, *shapes, low=0.2, high=3)


def test_xlogy_with_a_number_on_either_side():
    check_op(lambda lib, y: lib.xlogy(2, y), (3,), low=0.5, high=2)
    check_op(lambda lib, x: lib.xlogy(x, 3.0), (3,))
    assert dl.xlogy(dl.arange(3), dl.arange(3)).dtype == dl.float32


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_erf_family_matches_pytorch_to_a_few_ulps(dtype):
    x = np.concatenate([np.linspace(-12, 12, 4001), [0.0, -0.0, 1e-30, -1e-8, 26.0, 30.0]]).astype(dtype)
    for name in ("erf", "erfc"):
        ours = getattr(dl, name)(dl.tensor(x)).numpy()
        ref = getattr(torch, name)(torch.tensor(x)).numpy()
        assert ours.dtype == np.dtype(dtype)
        # float32's erfc keeps a fast 1.2e-7 fit whose exp(-x*x) is itself float32 far out
        rtol = {"float64": 1e-14, "float32": 1e-6 if name == "erf" else 1e-4, "float16": 1e-3}[dtype]
        tiny = np.finfo(dtype).tiny  # subnormal results carry fewer digits
        np.testing.assert_allclose(
            ours, ref, rtol=rtol, atol=tiny * 1e3 if dtype != "float16" else 0, err_msg=name
        )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_erfinv_inverts_erf_to_float_precision(dtype):
    y = np.concatenate([np.linspace(-0.999, 0.999, 2001), [0.0, 1e-12, -1e-30, 1 - 1e-7]]).astype(dtype)
    ours = dl.erfinv(dl.tensor(y)).numpy()
    np.testing.assert_allclose(
        ours, torch.erfinv(torch.tensor(y)).numpy(), rtol=16 * np.finfo(dtype).eps, atol=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # +-inf at +-1 and nan outside, silently, as in PyTorch
        edges = dl.erfinv(dl.tensor([1.0, -1.0, 1.5, -2.0, float("nan")])).tolist()
    assert edges[:2] == [math.inf, -math.inf] and all(math.isnan(v) for v in edges[2:])


def test_logaddexp_is_stable_and_exact_at_infinities():
    big = dl.tensor([1000.0, -1000.0, float("-inf"), float("inf"), 0.0])
    for name in ("logaddexp", "logaddexp2"):
        ours = getattr(dl, name)(big, big).tolist()
        ref = getattr(torch, name)(torch.tensor(big.numpy()), torch.tensor(big.numpy())).tolist()
        assert ours == pytest.approx(ref) and ours[2:4] == [-math.inf, math.inf], name
    x = dl.tensor([1000.0], requires_grad=True)
    dl.logaddexp(x, dl.tensor([0.0])).backward()
    assert x.grad.tolist() == [1.0]


def test_xlogy_is_zero_where_x_is_zero_even_at_y_zero():
    values = [[0.0, 0.0, 0.0, 1.0, -1.0], [0.0, float("inf"), float("nan"), -1.0, 0.0]]
    x, y = (dl.tensor(v, requires_grad=True) for v in values)
    x_ref, y_ref = (torch.tensor(v, requires_grad=True) for v in values)
    ours, ref = dl.xlogy(x, y), torch.xlogy(x_ref, y_ref)
    np.testing.assert_array_equal(ours.detach().numpy(), ref.detach().numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0/0 in y's gradient is nan, as in PyTorch, with numpy's warning
        ours.sum().backward()
    ref.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), x_ref.grad.numpy())
    np.testing.assert_array_equal(y.grad.numpy(), y_ref.grad.numpy())


def test_second_derivatives_are_differentiable():
    x = dl.tensor([0.3, -0.6], dtype=dl.float64, requires_grad=True)
    for fn in (dl.erf, dl.erfc, dl.erfinv, dl.exp2):
        assert dl.autograd.gradgradcheck(fn, [x])
    y = dl.tensor([0.5, 0.8], dtype=dl.float64, requires_grad=True)
    for fn in (dl.logaddexp, dl.logaddexp2, dl.xlogy):
        assert dl.autograd.gradgradcheck(fn, [x, y])


def test_inplace_twins_and_out():
    x = dl.tensor([0.5, -0.25])
    assert x.erfinv_() is x and np.allclose(x.numpy(), torch.erfinv(torch.tensor([0.5, -0.25])).numpy())
    x = dl.tensor([1.0, 2.0])
    x.xlogy_(dl.tensor([2.0]))
    assert np.allclose(x.numpy(), [math.log(2), 2 * math.log(2)])
    out = dl.empty(2)
    assert dl.logaddexp(dl.zeros(2), dl.zeros(2), out=out) is out and np.allclose(out.numpy(), math.log(2))
    assert not hasattr(x, "logaddexp_")


def test_errors_match_pytorch():
    with pytest.raises(NotImplementedError, match="\"logaddexp_cpu\" not implemented for 'Long'"):
        dl.logaddexp(dl.arange(2), dl.arange(2))
    with pytest.raises(TypeError, match=r"logaddexp2\(\): argument 'other' \(position 2\) must be Tensor"):
        dl.logaddexp2(dl.ones(2), 1.0)
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        dl.arange(3).erf_()


def test_erf_moved_from_activation_stays_importable():
    from dltool.engine.ops.activation import erf, erfc

    assert erf is dl.erf and erfc is dl.erfc
