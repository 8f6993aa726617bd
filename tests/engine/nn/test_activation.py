import math

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import backend, nn
from dltool.engine.ops.activation import erf, erfc
from tests.engine.nn.layer_check import check_layer
from tests.op_check import check_op

ACTIVATIONS = [
    ("leaky_relu", lambda lib, x: lib.nn.functional.leaky_relu(x, 0.2)),
    ("elu", lambda lib, x: lib.nn.functional.elu(x, 0.7)),
    ("selu", lambda lib, x: lib.nn.functional.selu(x)),
    ("gelu", lambda lib, x: lib.nn.functional.gelu(x)),
    ("gelu_tanh", lambda lib, x: lib.nn.functional.gelu(x, approximate="tanh")),
    ("silu", lambda lib, x: lib.nn.functional.silu(x)),
    ("mish", lambda lib, x: lib.nn.functional.mish(x)),
    ("softplus", lambda lib, x: lib.nn.functional.softplus(x)),
    ("softplus_beta", lambda lib, x: lib.nn.functional.softplus(x, beta=2.0, threshold=3.0)),
    ("hardtanh", lambda lib, x: lib.nn.functional.hardtanh(x, -0.5, 0.8)),
    ("relu6", lambda lib, x: lib.nn.functional.relu6(x * 4)),
    ("relu", lambda lib, x: lib.nn.functional.relu(x)),
    ("softmax", lambda lib, x: lib.nn.functional.softmax(x, dim=-1)),
    ("log_softmax", lambda lib, x: lib.nn.functional.log_softmax(x, dim=0)),
    ("normalize", lambda lib, x: lib.nn.functional.normalize(x, dim=-1)),
    ("celu", lambda lib, x: lib.nn.functional.celu(x, 0.6)),
    ("hardsigmoid", lambda lib, x: lib.nn.functional.hardsigmoid(x * 2)),
    ("hardswish", lambda lib, x: lib.nn.functional.hardswish(x * 2)),
    ("hardshrink", lambda lib, x: lib.nn.functional.hardshrink(x, 0.7)),
    ("softshrink", lambda lib, x: lib.nn.functional.softshrink(x, 0.7)),
    ("tanhshrink", lambda lib, x: lib.nn.functional.tanhshrink(x)),
    ("softsign", lambda lib, x: lib.nn.functional.softsign(x)),
    ("logsigmoid", lambda lib, x: lib.nn.functional.logsigmoid(x)),
    ("threshold", lambda lib, x: lib.nn.functional.threshold(x, 0.4, -2.0)),
    ("softmin", lambda lib, x: lib.nn.functional.softmin(x, dim=1)),
    ("glu", lambda lib, x: lib.nn.functional.glu(x[:, :4], dim=1)),
    ("rrelu_eval", lambda lib, x: lib.nn.functional.rrelu(x, 0.1, 0.3)),
]


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_pytorch(name, fn):
    # gelu's erf is an approximation (1.2e-7 relative), so its tolerances are float32-sized
    tol = dict(atol=1e-6, rtol=1e-6) if name == "gelu" else {}
    check_op(fn, (3, 5), low=-3, high=3, **tol)


def test_gelu_float32_parity_and_accuracy_over_a_wide_range():
    torch = pytest.importorskip("torch")
    x = np.linspace(-12, 12, 20001, dtype=np.float32)
    ours = dl.nn.functional.gelu(dl.tensor(x)).numpy()
    ref = torch.nn.functional.gelu(torch.tensor(x)).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(erf(dl.tensor(x.astype(np.float64))).numpy() - exact).max() < 2e-7
    tail = np.array([math.erfc(v) for v in (3.0, 5.0, 8.0)])
    np.testing.assert_allclose(erfc(dl.tensor([3.0, 5.0, 8.0], dtype=dl.float64)).numpy(), tail, rtol=2e-7)


def test_stable_activations_do_not_overflow():
    x = dl.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], requires_grad=True)
    for fn in (dl.nn.functional.elu, dl.nn.functional.softplus, dl.nn.functional.silu, dl.nn.functional.gelu):
        y = fn(x)
        y.sum().backward()
        assert dl.isfinite(y).all() and dl.isfinite(x.grad).all(), fn.__name__
        x.grad = None


def test_inplace_activations_write_into_the_input():
    x = dl.randn(4, 3)
    before = x.clone()
    y = nn.ReLU(inplace=True)(x)
    assert y is x and np.array_equal(x.numpy(), np.maximum(before.numpy(), 0))
    x = dl.randn(4, 3, requires_grad=True)
    h = x * 2
    nn.LeakyReLU(0.1, inplace=True)(h).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(x.detach().numpy() > 0, 2.0, 0.2), rtol=1e-6)


def test_activation_modules_and_reprs_match_pytorch():
    torch = pytest.importorskip("torch")
    makers = [
        lambda lib: lib.nn.ReLU(),
        lambda lib: lib.nn.ReLU(inplace=True),
        lambda lib: lib.nn.LeakyReLU(0.2),
        lambda lib: lib.nn.ELU(alpha=0.5, inplace=True),
        lambda lib: lib.nn.GELU(approximate="tanh"),
        lambda lib: lib.nn.SiLU(),
        lambda lib: lib.nn.Sigmoid(),
        lambda lib: lib.nn.Tanh(),
        lambda lib: lib.nn.Softmax(dim=1),
        lambda lib: lib.nn.LogSoftmax(dim=1),
        lambda lib: lib.nn.Softplus(beta=2),
        lambda lib: lib.nn.Hardtanh(-2.0, 2.0),
        lambda lib: lib.nn.ReLU6(),
        lambda lib: lib.nn.SELU(),
        lambda lib: lib.nn.Mish(),
        lambda lib: lib.nn.CELU(0.5),
        lambda lib: lib.nn.Hardsigmoid(inplace=True),
        lambda lib: lib.nn.Hardswish(),
        lambda lib: lib.nn.Hardshrink(0.3),
        lambda lib: lib.nn.Softshrink(),
        lambda lib: lib.nn.Tanhshrink(),
        lambda lib: lib.nn.Softsign(),
        lambda lib: lib.nn.LogSigmoid(),
        lambda lib: lib.nn.Threshold(0.1, 20),
        lambda lib: lib.nn.Softmin(dim=0),
        lambda lib: lib.nn.GLU(dim=1),
        lambda lib: lib.nn.RReLU(0.1, 0.2).eval(),
        lambda lib: lib.nn.PReLU(),
    ]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    for make in makers:
        assert repr(make(dl)) == repr(make(torch))
        ours = make(dl)(dl.tensor(x)).detach().numpy()
        ref = make(torch)(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=1e-6)


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    dl.manual_seed(3)
    drop = nn.Dropout(0.25)
    x = dl.ones(2000, 50)
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert y.dtype == np.float32
    assert drop.eval()(x) is x
    channels = nn.Dropout2d(0.5)(dl.ones(8, 64, 3, 3)).numpy()
    per_channel = channels.reshape(8, 64, 9)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()
    assert nn.Dropout(1.0)(x).sum().item() == 0
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_dropout_mask_follows_the_memory_order_of_its_input():
    x = dl.ones(30, 4, 5, 200).permute(3, 0, 1, 2)  # stored batch-innermost, as a conv output
    dl.manual_seed(0)
    y = dl.nn.functional.dropout(x, 0.5).numpy()
    assert y.strides == x.numpy().strides
    assert set(np.unique(y)) <= {0.0, 2.0} and abs((y == 0).mean() - 0.5) < 0.02
    dl.manual_seed(0)  # a C-ordered input draws its mask in the same order as before
    first = dl.nn.functional.dropout(dl.ones(2, 3), 0.5).numpy()
    dl.manual_seed(0)
    draws = backend.rng(None).random((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(first == 0, draws < 0.5)


def test_dropout_gradient_uses_the_same_mask():
    x = dl.randn(50, 40, requires_grad=True)
    y = dl.nn.functional.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (y.detach().numpy() != 0) * 2.0)


def test_new_activations_are_not_instances_of_one_another():
    assert not isinstance(nn.Mish(), nn.SiLU) and not isinstance(nn.CELU(), nn.ELU)
    assert not isinstance(nn.Softmin(1), nn.Softmax) and not isinstance(nn.Hardswish(), nn.Hardsigmoid)
    assert isinstance(nn.ReLU6(), nn.Hardtanh)


def test_inplace_forms_of_new_activations():
    x = dl.randn(4, 3, requires_grad=True)
    for make, fn in (
        (lambda: nn.CELU(0.5, inplace=True), lambda t: dl.nn.functional.celu(t, 0.5)),
        (lambda: nn.Hardswish(inplace=True), dl.nn.functional.hardswish),
        (lambda: nn.Threshold(0.2, 5.0, inplace=True), lambda t: dl.nn.functional.threshold(t, 0.2, 5.0)),
    ):
        h = x * 2
        y = make()(h)
        assert y is h
        np.testing.assert_allclose(y.detach().numpy(), fn(x * 2).detach().numpy())


@pytest.mark.parametrize(
    "input_shape,weight_shape", [((3, 4, 5), (4,)), ((3, 4), (1,)), ((2, 3, 4, 2), (3,)), ((5,), (1,))]
)
def test_prelu_matches_pytorch(input_shape, weight_shape):
    check_op(lambda lib, x, w: lib.nn.functional.prelu(x, w), input_shape, weight_shape)


@pytest.mark.parametrize("num_parameters,shape", [(1, (3, 4, 5)), (4, (3, 4, 5)), (3, (2, 3))])
def test_prelu_layer_matches_pytorch(num_parameters, shape):
    layer, _ = check_layer(lambda lib: lib.nn.PReLU(num_parameters, init=0.1), shape)
    assert layer.weight.shape == (num_parameters,)


def test_prelu_errors_match_pytorch():
    with pytest.raises(RuntimeError, match="Found parameter numbers = 4 and channel size = 3"):
        dl.nn.functional.prelu(dl.randn(2, 3, 4), dl.randn(4))
    with pytest.raises(
        RuntimeError, match="Expected `weight` to be a scalar or 1D tensor, but got: ndim = 2"
    ):
        dl.nn.functional.prelu(dl.randn(2, 3), dl.randn(3, 1))


def test_rrelu_draws_a_slope_per_negative_element_in_training():
    x = dl.tensor(np.linspace(-3, 3, 4000).reshape(40, 100))
    layer = nn.RReLU(0.1, 0.3)
    dl.manual_seed(5)
    y = layer(x).numpy()
    slope = y[x.numpy() < 0] / x.numpy()[x.numpy() < 0]
    assert slope.min() >= 0.1 and slope.max() <= 0.3 and slope.std() > 0.05
    np.testing.assert_array_equal(y[x.numpy() >= 0], x.numpy()[x.numpy() >= 0])
    dl.manual_seed(5)
    np.testing.assert_array_equal(layer(x).numpy(), y)  # the draws come from dltool's generator
    np.testing.assert_allclose(layer.eval()(x).numpy(), dl.nn.functional.leaky_relu(x, 0.2).numpy())


def test_rrelu_gradient_in_training_with_a_fixed_noise():
    def fn(x):
        dl.manual_seed(0)  # the same slopes at every finite-difference probe
        return dl.nn.functional.rrelu(x, 0.1, 0.4, training=True)

    x = dl.tensor(np.random.default_rng(0).uniform(-2, 2, (3, 5)), requires_grad=True)
    assert dl.autograd.gradcheck(fn, (x,))
    fn(x).sum().backward()
    slope = fn(x.detach()).numpy() / x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), slope)


def test_new_activation_errors_match_pytorch():
    F = dl.nn.functional
    with pytest.raises(RuntimeError, match="Lower bound should be less than or equal to the upper bound"):
        F.rrelu(dl.randn(3), 0.5, 0.1)
    with pytest.raises(RuntimeError, match="Halving dimension must be even, but dimension 1 is size 3"):
        F.glu(dl.randn(2, 3))
    with pytest.raises(RuntimeError, match="glu does not support scalars"):
        F.glu(dl.tensor(1.0))
    with pytest.raises(IndexError, match="Dimension out of range"):
        F.glu(dl.randn(2, 4), dim=2)
    with pytest.raises(
        RuntimeError,
        match="lambda must be in range \\[0, 3.40282e\\+38\\] for input dtype float32, but found -1",
    ):
        F.softshrink(dl.randn(3), -1.0)
    with pytest.raises(RuntimeError, match="alpha cannot be 0 for CELU"):
        F.celu(dl.randn(3), 0.0)


def test_logsigmoid_is_stable_for_large_inputs():
    x = dl.tensor([-1000.0, -30.0, 0.0, 30.0, 1000.0], requires_grad=True)
    y = dl.nn.functional.logsigmoid(x)
    y.sum().backward()
    np.testing.assert_allclose(
        y.detach().numpy(), [-1000.0, -30.0, -math.log(2), -math.exp(-30), 0.0], rtol=1e-6
    )
    # NOTE: sigmoid(-30) underflows to 0 in dltool's float32 sigmoid (PyTorch: 9.4e-14)
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, 0.5, math.exp(-30), 0.0], rtol=1e-6, atol=1e-12)


def test_dropout2d_on_2d_input_warns_and_drops_elements_as_pytorch():
    dl.manual_seed(0)
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d, which is deprecated"):
        y = nn.Dropout2d(0.5)(dl.ones(200, 100)).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and abs((y == 0).mean() - 0.5) < 0.02
    assert 0 < (y == 0).sum(1).min() and (y == 0).sum(1).max() < 100  # elements, not rows, dropped
    with pytest.warns(UserWarning, match="Received a 1-D input"):
        assert dl.nn.functional.dropout2d(dl.ones(5), 0.5, training=False).numpy().sum() == 5
    with (
        pytest.warns(UserWarning),
        pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"),
    ):
        dl.nn.functional.dropout2d(dl.ones(5), 0.5)


def test_dropout2d_on_3d_input_drops_channels_of_a_batch_as_pytorch():
    with pytest.warns(UserWarning, match="interpreted as shape \\(N, C, L\\)"):
        y = dl.nn.functional.dropout2d(dl.ones(8, 64, 10), 0.5).numpy()
    assert (y.min(-1) == y.max(-1)).all()
    assert 0 < (y[..., 0] == 0).sum(1).min()  # different channels dropped in each sample
