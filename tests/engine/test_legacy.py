"""What older PyTorch code still calls: Variable, FloatTensor and kin, type strings, torch.save(model)."""

import io

import numpy as np
import pytest

import dltool.engine as dl

_LEGACY = ["FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ShortTensor",
           "CharTensor", "ByteTensor", "BoolTensor"]  # fmt: skip


def _raises(fn, *args):
    """The type and message of what ``fn(*args)`` raises."""
    with pytest.raises(Exception) as info:
        fn(*args)
    return type(info.value), str(info.value)


# ---------------------------------------------------------------- Variable


def test_variable_returns_a_leaf_tensor_sharing_storage():
    x = dl.ones(2, 3)
    v = dl.autograd.Variable(x, requires_grad=True)
    assert type(v) is dl.Tensor and v is not x and v.requires_grad and v.is_leaf and not x.requires_grad
    assert v.data_ptr() == x.data_ptr()
    (v * 2).sum().backward()
    assert v.grad.tolist() == [[2.0] * 3] * 2
    assert not dl.autograd.Variable(x).requires_grad
    assert isinstance(x, dl.autograd.Variable) and not isinstance(x.numpy(), dl.autograd.Variable)


def test_variable_errors_and_volatile_as_pytorch():
    torch = pytest.importorskip("torch")
    assert _raises(lambda: dl.autograd.Variable([1.0])) == _raises(lambda: torch.autograd.Variable([1.0]))
    assert dl.autograd.Variable().shape == tuple(torch.autograd.Variable().shape) == (0,)
    with pytest.warns(UserWarning, match="volatile was removed"):
        dl.autograd.Variable(dl.ones(1), volatile=True)
    with pytest.raises(RuntimeError, match="floating point"):
        dl.autograd.Variable(dl.tensor([1]), requires_grad=True)


# ---------------------------------------------------------------- FloatTensor and kin


@pytest.mark.parametrize("name", _LEGACY)
def test_legacy_constructors_match_pytorch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = getattr(dl, name), getattr(torch, name)
    for args in [(2, 3), (4,), (), ([1, 0, 2],), ([[1.7, 2.0], [0.0, 3.5]],), (np.array([1.0, 2.0]),)]:
        x, expected = ours(*args), theirs(*args)
        assert x.shape == tuple(expected.shape) and str(x.dtype) == str(expected.dtype).removeprefix("torch.")
        if args and not isinstance(args[0], int):  # the sized ones are uninitialized in PyTorch
            np.testing.assert_array_equal(x.numpy(), expected.numpy())
    assert ours(dl.zeros(2, 5).size()).shape == (2, 5)  # FloatTensor(x.size()): a shape, as in PyTorch
    assert ours(3, device="cpu").shape == (3,)


def test_legacy_constructor_errors_match_pytorch():
    torch = pytest.importorskip("torch")
    for call in [
        lambda lib: lib.FloatTensor(-1),
        lambda lib: lib.LongTensor(2.5),
        lambda lib: lib.FloatTensor(True),
        lambda lib: lib.FloatTensor(2, device="cuda"),
    ]:
        assert _raises(call, dl) == _raises(call, torch)
    with pytest.raises(TypeError, match=r"expected torch\.FloatTensor \(got torch\.DoubleTensor\)"):
        dl.FloatTensor(dl.ones(2, dtype=dl.float64))
    with pytest.raises(TypeError, match="size"):
        dl.FloatTensor(2, 3.0)


def test_legacy_constructor_of_a_tensor_is_that_tensor():
    x = dl.ones(2, requires_grad=True)
    assert dl.FloatTensor(x) is x and dl.LongTensor(dl.tensor([1, 2])).tolist() == [1, 2]


def test_isinstance_tests_dtype_and_device_as_pytorch():
    torch = pytest.importorskip("torch")
    values = [[1.0, 2.0], [1, 2], [True], 1.5]
    for name in _LEGACY:
        for value in values:
            for dtype in (None, "float64", "int32", "uint8"):
                x = dl.tensor(value, dtype=dtype and getattr(dl, dtype))
                expected = torch.tensor(value, dtype=dtype and getattr(torch, dtype))
                assert isinstance(x, getattr(dl, name)) == isinstance(expected, getattr(torch, name)), (
                    name,
                    x,
                )
                assert isinstance(x, getattr(dl.cuda, name)) is False
    assert not isinstance(np.ones(2, np.float32), dl.FloatTensor)
    assert isinstance(dl.nn.Parameter(dl.ones(2)), dl.FloatTensor)


@pytest.mark.gpu
@pytest.mark.skipif(not dl.cuda.is_available(), reason="needs cupy and a GPU")
def test_cuda_legacy_types_on_gpu():
    x = dl.cuda.FloatTensor([1.0, 2.0])
    assert x.is_cuda and isinstance(x, dl.cuda.FloatTensor) and not isinstance(x, dl.FloatTensor)
    assert x.type() == "torch.cuda.FloatTensor" and dl.cuda.LongTensor(2, 3).shape == (2, 3)
    assert x.type("torch.DoubleTensor").device == dl.device("cpu")
    assert dl.ones(2).type(dl.cuda.FloatTensor).is_cuda


@pytest.mark.skipif(dl.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_legacy_types_without_gpu():
    assert not isinstance(dl.ones(2), dl.cuda.FloatTensor)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        dl.cuda.FloatTensor(2)


# ---------------------------------------------------------------- Tensor.type


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]
)
def test_type_string_is_pytorchs(dtype):
    torch = pytest.importorskip("torch")
    assert dl.zeros(2, dtype=getattr(dl, dtype)).type() == torch.zeros(2, dtype=getattr(torch, dtype)).type()


def test_type_casts_as_pytorch():
    torch = pytest.importorskip("torch")
    x, expected = dl.tensor([1.5, -2.0]), torch.tensor([1.5, -2.0])
    for target in ["torch.LongTensor", "torch.DoubleTensor", "LongTensor", "float64"]:
        ours = x.type(target if target[0] == "t" else getattr(dl, target))
        theirs = expected.type(target if target[0] == "t" else getattr(torch, target))
        assert ours.type() == theirs.type() and ours.tolist() == theirs.tolist()
    assert x.type("torch.FloatTensor") is x and x.type(dl.FloatTensor) is x
    assert _raises(lambda: x.type("torch.Foo")) == _raises(lambda: expected.type("torch.Foo"))


# ---------------------------------------------------------------- torch.save(model)


@pytest.mark.parametrize(
    "make",
    [lambda: dl.nn.Linear(2, 3), lambda: dl.optim.SGD(dl.nn.Linear(2, 3).parameters(), lr=0.1)],
    ids=["module", "optimizer"],
)
def test_saving_a_whole_object_says_to_save_its_state_dict(make):
    obj = make()
    buffer = io.BytesIO()
    with pytest.raises(TypeError) as info:
        dl.save({"model": obj}, buffer)
    message = str(info.value)
    assert f"cannot store a {type(obj).__name__} at obj['model']" in message
    assert "save model.state_dict() instead" in message and "load_state_dict(load(f))" in message
    assert buffer.getvalue() == b""
    buffer = io.BytesIO()
    dl.save(obj.state_dict(), buffer)  # what the message says works
    buffer.seek(0)
    assert dl.load(buffer, weights_only=True).keys() == obj.state_dict().keys()


def test_saving_another_object_names_what_a_checkpoint_holds():
    with pytest.raises(TypeError, match="cannot store a object at obj; a dltool checkpoint holds dicts"):
        dl.save(object(), io.BytesIO())


def test_safe_globals_are_accepted(tmp_path):
    path = tmp_path / "weights.pt"
    dl.save({"w": dl.ones(2)}, path)
    dl.serialization.add_safe_globals([dl.nn.Linear])
    assert dl.serialization.get_safe_globals() == []
    with dl.serialization.safe_globals([dl.nn.Linear]):
        assert dl.load(path, weights_only=True)["w"].tolist() == [1.0, 1.0]
