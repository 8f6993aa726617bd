import copy

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from dltool.engine.nn.parameter import UninitializedBuffer, UninitializedParameter, is_lazy
from tests.engine.nn.layer_check import check_layer

# (lazy constructor, regular constructor given the inferred size, input shape, inferred shapes)
LAZY_CASES = [
    (
        lambda lib: lib.nn.LazyLinear(3),
        lambda lib: lib.nn.Linear(5, 3),
        (2, 5),
        dict(weight=(3, 5), bias=(3,)),
    ),
    (
        lambda lib: lib.nn.LazyLinear(3, bias=False),
        lambda lib: lib.nn.Linear(4, 3, bias=False),
        (2, 6, 4),
        dict(weight=(3, 4)),
    ),
    (
        lambda lib: lib.nn.LazyConv1d(4, 3, padding=1),
        lambda lib: lib.nn.Conv1d(6, 4, 3, padding=1),
        (2, 6, 7),
        dict(weight=(4, 6, 3), bias=(4,)),
    ),
    (
        lambda lib: lib.nn.LazyConv2d(4, 3, groups=2),
        lambda lib: lib.nn.Conv2d(6, 4, 3, groups=2),
        (2, 6, 5, 5),
        dict(weight=(4, 3, 3, 3), bias=(4,)),
    ),
    (
        lambda lib: lib.nn.LazyBatchNorm1d(),
        lambda lib: lib.nn.BatchNorm1d(3),
        (4, 3, 5),
        dict(weight=(3,), running_mean=(3,)),
    ),
    (
        lambda lib: lib.nn.LazyBatchNorm2d(momentum=None),
        lambda lib: lib.nn.BatchNorm2d(3, momentum=None),
        (4, 3, 2, 2),
        dict(running_var=(3,)),
    ),
]
IDS = ["linear", "linear_3d_input", "conv1d", "conv2d_groups", "batchnorm1d", "batchnorm2d"]


@pytest.mark.parametrize("make_lazy,make_regular,shape,shapes", LAZY_CASES, ids=IDS)
def test_lazy_module_infers_shapes_and_becomes_the_regular_layer(make_lazy, make_regular, shape, shapes):
    x = dl.randn(*shape)
    lazy = make_lazy(dl)
    assert lazy.has_uninitialized_params()
    assert all(is_lazy(getattr(lazy, name)) for name in shapes)
    regular_type = type(make_regular(dl))
    lazy(x)
    assert type(lazy) is regular_type
    assert repr(lazy) == repr(make_regular(dl))
    for name, expected in shapes.items():
        assert not is_lazy(getattr(lazy, name)) and tuple(getattr(lazy, name).shape) == expected
    assert not lazy._forward_pre_hooks  # the inference hook is gone after the first forward


@pytest.mark.parametrize("make_lazy,make_regular,shape,shapes", LAZY_CASES, ids=IDS)
def test_lazy_module_is_initialized_as_the_regular_layer(make_lazy, make_regular, shape, shapes):
    x = dl.randn(*shape)
    dl.manual_seed(7)
    lazy = make_lazy(dl).eval()  # eval: the forward leaves the running statistics as initialized
    lazy(x)
    dl.manual_seed(7)
    regular = make_regular(dl)
    for (name, value), (ref_name, ref) in zip(
        lazy.state_dict().items(), regular.state_dict().items(), strict=True
    ):
        assert name == ref_name
        np.testing.assert_array_equal(value.numpy(), ref.numpy(), err_msg=name)


@pytest.mark.parametrize("make_lazy,make_regular,shape,shapes", LAZY_CASES, ids=IDS)
def test_lazy_module_after_dry_run_matches_pytorch(make_lazy, make_regular, shape, shapes):
    def make(lib):
        module = make_lazy(lib)
        module(lib.zeros(*shape))
        return module

    check_layer(make, shape)


@pytest.mark.parametrize("make_lazy,make_regular,shape,shapes", LAZY_CASES, ids=IDS)
def test_lazy_module_repr_and_state_dict_before_the_first_forward_match_pytorch(
    make_lazy, make_regular, shape, shapes
):
    torch = pytest.importorskip("torch")
    ours, ref = make_lazy(dl), make_lazy(torch)
    assert repr(ours) == repr(ref)
    assert [(k, repr(v)) for k, v in ours.state_dict().items()] == [
        (k, repr(v)) for k, v in ref.state_dict().items()
    ]


@pytest.mark.parametrize("make_lazy,make_regular,shape,shapes", LAZY_CASES, ids=IDS)
def test_state_dict_loads_into_an_uninitialized_lazy_module(make_lazy, make_regular, shape, shapes):
    source = make_regular(dl)
    source.train()(dl.randn(*shape))  # running statistics away from their initial values
    model = nn.Sequential(make_lazy(dl))
    model.load_state_dict(nn.Sequential(source).state_dict())
    assert not model[0].has_uninitialized_params()
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(model[0].state_dict()[name].numpy(), value.numpy(), err_msg=name)
    x = dl.randn(*shape)
    source.eval()
    model.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), source(x).detach().numpy())
    assert type(model[0]) is type(source) and repr(model[0]) == repr(source)


def test_uninitialized_parameter_refuses_use_with_pytorchs_errors():
    layer = nn.LazyLinear(3)
    with pytest.raises(
        ValueError, match="Attempted to use an uninitialized parameter.*UninitializedParameter"
    ):
        layer.weight + 1
    with pytest.raises(ValueError, match="Attempted to use an uninitialized parameter"):
        layer.weight.sum()
    with pytest.raises(ValueError, match="Attempted to use an uninitialized parameter"):
        nn.init.zeros_(layer.weight)
    with pytest.raises(ValueError, match="torch.nn.parameter.UninitializedBuffer"):
        nn.LazyBatchNorm1d().running_mean.numpy()
    with pytest.raises(RuntimeError, match="Can't access the shape of an uninitialized parameter or buffer"):
        _ = layer.weight.shape
    assert repr(layer.weight) == "<UninitializedParameter>" and layer.weight.requires_grad
    assert layer.weight.dtype == dl.float32 and layer.weight.device.type == "cpu"


def test_uninitialized_tensors_materialize_in_place():
    param = UninitializedParameter(dtype=dl.float64)
    param.materialize((2, 3))
    assert type(param) is nn.Parameter and tuple(param.shape) == (2, 3) and param.dtype == dl.float64
    assert param.requires_grad
    buffer = UninitializedBuffer()
    buffer.materialize((4,), dtype=dl.float64)
    assert type(buffer) is dl.Tensor and buffer.dtype == dl.float64 and not buffer.requires_grad
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        UninitializedParameter(dtype=dl.int64)


def test_lazy_module_follows_dtype_conversion_before_the_first_forward():
    model = nn.Sequential(nn.LazyLinear(3), nn.LazyBatchNorm1d()).double()
    assert is_lazy(model[0].weight) and is_lazy(model[1].running_mean)
    assert model[0].weight.dtype == dl.float64 and model[1].running_var.dtype == dl.float64
    out = model(dl.randn(4, 5, dtype=dl.float64))
    assert (
        out.dtype == dl.float64
        and model[0].weight.dtype == dl.float64
        and model[1].running_mean.dtype == dl.float64
    )
    assert nn.LazyConv1d(2, 3, dtype=dl.float64).weight.dtype == dl.float64


def test_optimizer_built_before_the_first_forward():
    # as in PyTorch: the parameters keep their identity when they materialize, so SGD or Adam built
    # before the dry run updates them; Adagrad sizes its state at construction and refuses
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2))
    optimizer = dl.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="Attempted to use an uninitialized parameter"):
        dl.optim.Adagrad(nn.LazyLinear(4).parameters())
    x = dl.randn(8, 3)
    model(x)
    before = model[0].weight.detach().numpy().copy()
    model(x).sum().backward()
    optimizer.step()
    assert optimizer.param_groups[0]["params"][0] is model[0].weight
    np.testing.assert_allclose(model[0].weight.detach().numpy(), before - 0.1 * model[0].weight.grad.numpy())


def test_lazy_module_errors_and_copies():
    with pytest.raises(
        RuntimeError, match="Expected 3D \\(unbatched\\) or 4D \\(batched\\) input to LazyConv2d"
    ):
        nn.LazyConv2d(4, 3)(dl.randn(2, 3))
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.LazyConv2d(4, 3, groups=2)(dl.randn(1, 3, 5, 5))
    original = nn.LazyLinear(2)
    clone = copy.deepcopy(original)
    clone(dl.randn(1, 6))
    assert tuple(clone.weight.shape) == (2, 6) and original.has_uninitialized_params()
    original(dl.randn(1, 3))
    assert tuple(original.weight.shape) == (2, 3)
