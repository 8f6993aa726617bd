import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from dltool.engine.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def _model_with_grads(seed=0):
    dl.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model(dl.randn(5, 3)).pow(2).sum().mul(10).backward()
    return model


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
def test_clip_grad_norm_matches_pytorch(norm_type):
    torch = pytest.importorskip("torch")
    model = _model_with_grads()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    params = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g)
    total = clip_grad_norm_(model.parameters(), 0.5, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(params, 0.5, norm_type)
    assert total.item() == pytest.approx(ref.item(), rel=1e-5)
    for p, r in zip(model.parameters(), params, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), r.grad.numpy(), rtol=1e-5)
        assert p.grad.dtype == dl.float32


def test_clip_grad_norm_leaves_small_gradients_and_flags_nonfinite():
    model = _model_with_grads()
    before = [p.grad.numpy().copy() for p in model.parameters()]
    clip_grad_norm_(model.parameters(), 1e9)
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), b, rtol=1e-6)
    model[0].weight.grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([nn.Parameter(dl.ones(2))], 1.0).item() == 0


def test_clip_grad_value():
    model = _model_with_grads()
    clip_grad_value_(model.parameters(), 0.1)
    assert all(p.grad.abs().max().item() <= np.float32(0.1) for p in model.parameters())
    assert any(p.grad.abs().max().item() == np.float32(0.1) for p in model.parameters())


def test_parameters_to_vector_round_trip():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    vec = parameters_to_vector(model.parameters())
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    vector_to_parameters(dl.arange(vec.numel()).float(), model.parameters())
    assert model[0].weight[0, 1].item() == 1 and model[1].bias[1].item() == vec.numel() - 1
    vec.sum().backward()
    assert (model[0].weight.grad.numpy() == 1).all()
    with pytest.raises(RuntimeError, match="expected a 1-D vector of 26 elements"):
        vector_to_parameters(dl.zeros(3), model.parameters())
