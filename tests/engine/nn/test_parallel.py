"""nn.DataParallel: a pass-through on one device, with PyTorch's attributes and state_dict keys."""

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn


def _model(lib):
    return lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4), lib.nn.ReLU(), lib.nn.Linear(4, 2))


def test_names_as_in_pytorch():
    assert nn.DataParallel is nn.parallel.DataParallel
    import dltool.engine.nn.parallel as parallel

    assert parallel.DataParallel is nn.DataParallel


@pytest.mark.skipif(dl.cuda.is_available(), reason="PyTorch's answers without a GPU")
def test_without_gpu_wraps_as_pytorch():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("PyTorch sees a GPU that dltool does not")
    model, expected = nn.DataParallel(_model(dl)), torch.nn.DataParallel(_model(torch))
    assert model.device_ids == expected.device_ids == []
    assert list(model.state_dict()) == list(expected.state_dict())
    assert [name for name, _ in model.named_parameters()] == [name for name, _ in expected.named_parameters()]
    single, expected_single = (
        nn.DataParallel(dl.nn.Linear(2, 3)),
        torch.nn.DataParallel(torch.nn.Linear(2, 3)),
    )
    assert repr(single) == repr(expected_single)


def test_forward_backward_and_state_dict_pass_through():
    inner = _model(dl)
    model = nn.DataParallel(inner)
    assert model.module is inner and isinstance(model, nn.Module)
    x = dl.randn(5, 3)
    out = model(x)
    np.testing.assert_array_equal(out.detach().numpy(), inner(x).detach().numpy())
    out.sum().backward()
    assert all(p.grad is not None for p in inner.parameters())
    assert set(model.state_dict()) == {f"module.{key}" for key in inner.state_dict()}
    clone = nn.DataParallel(_model(dl))
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    np.testing.assert_array_equal(clone(x).detach().numpy(), model(x).detach().numpy())
    plain = _model(dl)
    plain.load_state_dict(model.module.state_dict())  # the usual way to drop the prefix
    assert not clone.module.training and not inner.training


def test_keyword_inputs_pass_through():
    class Scale(nn.Module):
        def forward(self, x, *, factor):
            return {"out": x * factor}

    result = nn.DataParallel(Scale())(dl.ones(2), factor=3.0)
    assert result["out"].tolist() == [3.0, 3.0]


@pytest.mark.gpu
@pytest.mark.skipif(not dl.cuda.is_available(), reason="needs cupy and a GPU")
def test_on_gpu_inputs_move_to_the_first_device():
    model = nn.DataParallel(dl.nn.Linear(3, 2), device_ids=[0])
    assert model.device_ids == [0] and model.output_device == 0 and model.dim == 0
    assert all(p.is_cuda for p in model.parameters())
    out = model(dl.randn(4, 3))  # a CPU batch goes to cuda:0, as PyTorch scatters it
    assert out.is_cuda and out.shape == (4, 2)
    out.sum().backward()
    assert model.module.weight.grad.is_cuda
    stray = nn.DataParallel(dl.nn.Linear(3, 2), device_ids=[0, 0])  # several ids: the module stays put
    with pytest.raises(RuntimeError, match=r"module must have its parameters and buffers on device cuda:0"):
        stray(dl.randn(4, 3))
