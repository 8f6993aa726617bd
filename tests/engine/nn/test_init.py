import math

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from dltool.engine.nn import init


def _sample(fn, shape=(400, 500), **kwargs):
    t = dl.empty(*shape)
    out = fn(t, **kwargs)
    assert out is t and t.dtype == dl.float32
    return t.numpy()


def test_uniform_normal_constant():
    u = _sample(init.uniform_, a=-2.0, b=3.0)
    assert u.min() >= -2 and u.max() <= 3 and abs(u.mean() - 0.5) < 0.02
    n = _sample(init.normal_, mean=1.0, std=0.5)
    assert abs(n.mean() - 1) < 0.01 and abs(n.std() - 0.5) < 0.01
    assert (_sample(init.constant_, val=0.3) == np.float32(0.3)).all()
    assert (_sample(init.zeros_) == 0).all() and (_sample(init.ones_) == 1).all()
    assert (_sample(init.eye_, shape=(3, 4)) == np.eye(3, 4)).all()
    t = _sample(init.trunc_normal_, std=2.0, a=-1.0, b=1.5)
    assert t.min() >= -1 and t.max() <= 1.5


def test_xavier_and_kaiming_match_pytorch_formulas():
    fan_in, fan_out = 500 * 9, 40 * 9
    shape = (40, 500, 3, 3)
    x = _sample(init.xavier_uniform_, shape=shape, gain=2.0)
    bound = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(x).max() <= bound and abs(x.std() - bound / math.sqrt(3)) < 0.01 * bound
    x = _sample(init.xavier_normal_, shape=shape)
    assert abs(x.std() - math.sqrt(2 / (fan_in + fan_out))) < 0.01 * x.std()
    k = _sample(init.kaiming_uniform_, shape=shape, a=math.sqrt(5))
    bound = math.sqrt(6 / ((1 + 5) * fan_in))
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.99 * bound
    k = _sample(init.kaiming_normal_, shape=shape, mode="fan_out", nonlinearity="relu")
    assert abs(k.std() - math.sqrt(2 / fan_out)) < 0.01 * k.std()


def test_orthogonal():
    for shape in ((6, 10), (10, 6), (4, 2, 3)):
        q = _sample(init.orthogonal_, shape=shape, gain=2.0).reshape(shape[0], -1)
        small = min(q.shape)
        gram = q @ q.T if q.shape[0] == small else q.T @ q
        np.testing.assert_allclose(gram, 4 * np.eye(small), atol=1e-5)


def test_calculate_gain_matches_pytorch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


def test_generator_makes_init_reproducible_and_errors():
    a, b = dl.empty(3, 4), dl.empty(3, 4)
    init.kaiming_uniform_(a, generator=dl.Generator().manual_seed(7))
    init.kaiming_uniform_(b, generator=dl.Generator().manual_seed(7))
    assert np.array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(dl.empty(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(dl.empty(3, 3), mode="fan_avg")
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(dl.empty(0, 3))


def test_init_on_parameters_records_no_graph():
    layer = nn.Linear(3, 3)
    init.xavier_uniform_(layer.weight)
    assert layer.weight.is_leaf and layer.weight.requires_grad and layer.weight.grad_fn is None


def test_default_layer_inits_follow_pytorch_distributions():
    rnn = nn.GRU(10, 25)
    for p in rnn.parameters():
        assert np.abs(p.detach().numpy()).max() <= 1 / 5
    bn = nn.BatchNorm2d(4)
    assert (bn.weight.detach().numpy() == 1).all() and (bn.bias.detach().numpy() == 0).all()
    conv = nn.ConvTranspose2d(8, 4, 3)
    bound = 1 / math.sqrt(4 * 9)  # fan_in of a transposed conv weight (in, out, k, k) is out * k * k
    assert np.abs(conv.weight.detach().numpy()).max() <= bound
