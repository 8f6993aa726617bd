from collections import namedtuple

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.utils.data import default_collate, default_convert

Point = namedtuple("Point", ["x", "y"])


def _plain(value, lib):
    """A collated structure with tensors as (dtype name, values), to compare dltool with PyTorch."""
    if isinstance(value, lib.Tensor):
        return (str(value.dtype).removeprefix("torch."), value.numpy().tolist())
    if isinstance(value, dict):
        return {k: _plain(v, lib) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_plain(v, lib) for v in value]
    return value


def _samples(lib):
    return [
        {
            "image": lib.tensor([[1.0, 2.0]]) * (i + 1),
            "label": i,
            "weight": 0.5 * i,
            "flag": i % 2 == 0,
            "array": np.full(3, i, dtype=np.int32),
            "scalar": np.float32(i),
            "name": f"item{i}",
            "pair": (lib.tensor([i]), [i, -i]),
            "point": Point(i, float(i)),
        }
        for i in range(3)
    ]


def test_nested_structures_collate_as_in_pytorch():
    torch = pytest.importorskip("torch")
    expected = _plain(torch.utils.data.default_collate(_samples(torch)), torch)
    got = _plain(default_collate(_samples(dl)), dl)
    assert got == expected


def test_collate_values_and_types():
    batch = default_collate(_samples(dl))
    assert batch["image"].shape == (3, 1, 2) and batch["image"].dtype == dl.float32
    assert batch["label"].dtype == dl.int64 and batch["weight"].dtype == dl.float64
    assert batch["flag"].dtype == dl.bool and batch["array"].dtype == dl.int32
    assert batch["name"] == ["item0", "item1", "item2"]
    assert isinstance(batch["pair"], list) and batch["pair"][1][1].tolist() == [0, -1, -2]
    assert isinstance(batch["point"], Point) and batch["point"].y.tolist() == [0.0, 1.0, 2.0]


def test_collate_errors():
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        default_collate([dl.zeros(2), dl.zeros(3)])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy arrays, numbers"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_collate_keeps_gradients_of_sample_tensors():
    x = dl.ones(2, requires_grad=True)
    default_collate([x, x * 2]).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_default_convert_turns_arrays_into_tensors_in_place():
    converted = default_convert({"a": np.arange(3), "b": (np.float64(1.5), "s"), "c": 4})
    assert isinstance(converted["a"], dl.Tensor) and converted["a"].tolist() == [0, 1, 2]
    assert isinstance(converted["b"], list) and converted["b"][0].item() == 1.5 and converted["b"][1] == "s"
    assert converted["c"] == 4
