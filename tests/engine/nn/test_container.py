from collections import OrderedDict

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
