from collections import OrderedDict

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn


def test_sequential_indexing_slicing_and_mutation():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    model = nn.Sequential(a, b, c)
    assert len(model) == 3 and model[0] is a and model[-1] is c
    sliced = model[1:]
    assert isinstance(sliced, nn.Sequential) and list(sliced) == [b, c]
    assert list(sliced._modules) == ["1", "2"]
    model.append(nn.Sigmoid())
    assert len(model) == 4 and model(dl.randn(5, 2)).shape == (5, 1)
    model[1] = nn.Tanh()
    assert isinstance(model[1], nn.Tanh)
    del model[0]
    assert list(model._modules) == ["0", "1", "2"] and isinstance(model[0], nn.Tanh)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        model[5]
    model.insert(0, a)
    assert model[0] is a and model.pop(0) is a


def test_sequential_from_ordered_dict_keeps_names():
    model = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert list(model.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(model[1], nn.ReLU) and model.fc is model[0]


def test_module_list_registers_and_behaves_like_a_list():
    layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(3))
    assert len(list(layers.parameters())) == 6 and list(layers.state_dict())[0] == "0.weight"
    layers += [nn.ReLU()]
    layers.extend([nn.Tanh()])
    assert len(layers) == 5 and isinstance(layers[-1], nn.Tanh)
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert list(layers._modules) == ["0", "1", "2", "3"]
    with pytest.raises(NotImplementedError):
        layers(dl.ones(1))


def test_module_dict():
    heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
    heads["c"] = nn.Identity()
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert [k for k, _ in heads.items()] == list(heads.keys())
    assert heads.pop("c") is not None and "c" not in heads
    heads.update([("d", nn.ReLU())])
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    heads.clear()
    assert len(heads) == 0


def _torch_repr(module, types: dict) -> str:
    """PyTorch's repr of ``module`` with its type names replaced by dltool's."""
    text = repr(module)
    for theirs, ours in types.items():
        text = text.replace(theirs, ours)
    return text


def test_parameter_list_registers_and_behaves_like_pytorchs():
    torch = pytest.importorskip("torch")
    first = nn.Parameter(dl.randn(2, 3))
    params = nn.ParameterList([first, dl.randn(3), "not a tensor"])
    ref = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(2, 3)), torch.randn(3), "not a tensor"])
    assert len(params) == 3 and params[0] is first and params[-1] == "not a tensor"
    assert isinstance(params[1], nn.Parameter) and params[1].requires_grad
    assert list(params.state_dict()) == list(ref.state_dict()) == ["0", "1"]
    assert repr(params) == _torch_repr(ref, {"torch.float32": str(dl.float32)})
    assert repr(nn.ParameterList()) == repr(torch.nn.ParameterList())
    params.append(dl.ones(1))
    params.extend([nn.Parameter(dl.zeros(2))])
    params += [dl.zeros(4)]
    assert len(params) == 6 and [p.shape for p in params[3:]] == [(1,), (2,), (4,)]
    assert isinstance(params[1:3], nn.ParameterList) and len(params[::2]) == 3
    params[4] = dl.full((2,), 5.0)
    assert isinstance(params[4], nn.Parameter) and params.state_dict()["4"].tolist() == [5.0, 5.0]
    assert len(list(params.parameters())) == 5 and [p for p in params][0] is first
    assert "0" not in dir(params)
    with pytest.raises(IndexError, match="index 6 is out of range"):
        params[6]
    with pytest.raises(
        TypeError, match="ParameterList.extend should be called with an iterable, but got Tensor"
    ):
        params.extend(dl.ones(2))
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        params(dl.ones(1))


def test_parameter_list_in_a_module_moves_and_loads():
    torch = pytest.importorskip("torch")

    def make(lib):
        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.scales = lib.nn.ParameterList(lib.nn.Parameter(lib.randn(3)) for _ in range(2))

            def forward(self, x):
                return x * self.scales[0] + self.scales[1]

        return Net()

    net, ref = make(dl), make(torch)
    assert list(net.state_dict()) == list(ref.state_dict()) == ["scales.0", "scales.1"]
    net.load_state_dict({k: dl.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    net.double()
    assert all(p.dtype == dl.float64 for p in net.parameters())
    x = np.random.default_rng(0).standard_normal(3)
    np.testing.assert_allclose(
        net(dl.tensor(x)).detach().numpy(), ref.double()(torch.tensor(x)).detach().numpy()
    )
    net(dl.tensor(x)).sum().backward()
    assert net.scales[1].grad.tolist() == [1.0, 1.0, 1.0]


def test_parameter_dict_registers_and_behaves_like_pytorchs():
    torch = pytest.importorskip("torch")
    values = {"b": np.ones(2), "a": np.zeros((1, 2))}
    params = nn.ParameterDict({k: dl.tensor(v, dtype=dl.float32) for k, v in values.items()})
    ref = torch.nn.ParameterDict({k: torch.tensor(v, dtype=torch.float32) for k, v in values.items()})
    assert list(params) == list(ref) == ["a", "b"]  # a plain dict's keys are sorted, as in PyTorch
    assert list(params.state_dict()) == list(ref.state_dict())
    assert repr(params) == _torch_repr(ref, {"torch.FloatTensor": params["a"].type()})
    ordered = nn.ParameterDict(OrderedDict([("z", dl.ones(1)), ("y", dl.ones(1))]))
    assert list(ordered.keys()) == ["z", "y"] and list(nn.ParameterDict([("q", dl.ones(1)), ("p", 3)])) == [
        "q",
        "p",
    ]
    assert isinstance(params["a"], nn.Parameter) and "a" in params and "c" not in params
    params["c"] = dl.full((3,), 2.0)
    params.update([("d", "plain value")])
    assert len(params) == 4 and params["d"] == "plain value" and list(params.state_dict()) == ["a", "b", "c"]
    assert params.get("missing", 7) == 7 and params.setdefault("e", dl.ones(1)) is params["e"]
    assert params.popitem()[0] == "e" and params.pop("d") == "plain value"
    assert [k for k, _ in params.items()] == list(params.keys()) == ["a", "b", "c"]
    assert list(reversed(params)) == ["c", "b", "a"] and len(list(params.values())) == 3
    copy = params.copy()
    assert list(copy) == ["a", "b", "c"] and copy["a"] is params["a"]
    assert list(params.fromkeys(["x", "y"], dl.ones(2))) == ["x", "y"]
    del params["b"]
    assert list(params.state_dict()) == ["a", "c"] and not hasattr(params, "b")
    with pytest.raises(TypeError, match="Index given to ParameterDict cannot be used as a key"):
        params[1] = dl.ones(1)
    with pytest.raises(
        ValueError, match="ParameterDict update sequence element #0 has length 3; 2 is required"
    ):
        params.update([("x", dl.ones(1), 3)])
    with pytest.raises(TypeError, match="ParametersDict.update should be called with an iterable"):
        params.update(5)
    with pytest.raises(RuntimeError, match="ParameterDict should not be called."):
        params(dl.ones(1))
    params.clear()
    assert len(params) == 0 and list(params.parameters()) == []


def test_parameter_dict_moves_with_to_and_keeps_gradients():
    params = nn.ParameterDict({"w": dl.randn(2, 2), "b": dl.zeros(2)})
    params.to(dl.float64)
    assert params["w"].dtype == dl.float64 and params["w"].is_leaf
    (params["w"].sum() + params["b"].sum()).backward()
    assert params["b"].grad.tolist() == [1.0, 1.0]
