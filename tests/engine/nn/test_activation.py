import math

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import backend, nn
from dltool.engine.ops.activation import erf, erfc
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
    ]
    x = np.random.default_rng(0).standard_normal((3, 4))
    for make in makers:
        assert repr(make(dl)) == repr(make(torch))
        ours = make(dl)(dl.tensor(x)).numpy()
        np.testing.assert_allclose(ours, make(torch)(torch.tensor(x)).numpy(), atol=1e-6, rtol=1e-6)


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
