import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.nn.layer_check import check_layer, gradcheck_layer


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_pytorch(shape, bias):
    check_layer(lambda lib: lib.nn.Linear(4, 3, bias=bias), shape)


def test_linear_gradcheck_and_init_bounds():
    gradcheck_layer(nn.Linear(3, 2), (2, 3))
    layer = nn.Linear(64, 128)
    bound = 1 / 8
    w = layer.weight.detach().numpy()
    assert layer.weight.shape == (128, 64) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.03 * bound
    assert np.abs(layer.bias.detach().numpy()).max() <= bound


def test_linear_errors():
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied \\(2x5 and 4x3\\)"):
        nn.Linear(4, 3)(dl.randn(2, 5))
    with pytest.raises(RuntimeError, match="must have the same dtype"):
        nn.Linear(4, 3)(dl.randn(2, 4, dtype=dl.float64))


def test_identity_flatten_unflatten():
    x = dl.randn(2, 3, 4, 5)
    assert nn.Identity(54, unused=True)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)


def test_embedding_matches_pytorch():
    indices = np.array([[1, 2, 0], [4, 0, 1]])
    check_layer(lambda lib: lib.nn.Embedding(5, 3), arrays=[indices])
    check_layer(lambda lib: lib.nn.Embedding(5, 3, padding_idx=0), arrays=[indices])
    check_layer(lambda lib: lib.nn.Embedding(5, 3, padding_idx=-1, scale_grad_by_freq=True), arrays=[indices])


def test_embedding_init_padding_and_max_norm():
    torch = pytest.importorskip("torch")
    emb = nn.Embedding(1000, 16, padding_idx=3)
    w = emb.weight.detach().numpy()
    assert (w[3] == 0).all() and abs(w.std() - 1) < 0.02 and abs(w.mean()) < 0.02
    weight = np.random.default_rng(0).standard_normal((6, 4)) * 3
    ours = nn.Embedding.from_pretrained(dl.tensor(weight), max_norm=1.5)
    ref = torch.nn.Embedding.from_pretrained(torch.tensor(weight), max_norm=1.5)
    idx = np.array([0, 2, 2, 5])
    np.testing.assert_allclose(ours(dl.tensor(idx)).numpy(), ref(torch.tensor(idx)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.weight.detach().numpy(), ref.weight.detach().numpy(), rtol=1e-6)
    assert not ours.weight.requires_grad
    assert repr(nn.Embedding(10, 3, padding_idx=2)) == repr(torch.nn.Embedding(10, 3, padding_idx=2))
    with pytest.raises(IndexError, match="index out of range"):
        nn.Embedding(4, 2)(dl.tensor([4]))
    with pytest.raises(RuntimeError, match="'indices' to have one of the following scalar types"):
        nn.Embedding(4, 2)(dl.tensor([1.0]))
