import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.block = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
        self.register_buffer("steps", dl.zeros(1))
        self.register_buffer("cache", dl.zeros(2), persistent=False)
        self.scale = nn.Parameter(dl.ones(1))
        self.note = "plain attribute"

    def forward(self, x):
        return self.block(self.fc1(x)) * self.scale


def test_registration_by_assignment():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "fc1.weight", "fc1.bias", "block.0.weight", "block.0.bias"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "cache"]
    assert [n for n, _ in net.named_children()] == ["fc1", "block"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "block", "block.0", "block.1"]
    assert net.note == "plain attribute" and "note" not in net._parameters
    assert isinstance(net.fc1.weight, nn.Parameter) and isinstance(net.fc1.weight, dl.Tensor)
    assert len(list(net.parameters(recurse=False))) == 1


def test_reassignment_moves_between_registries_and_rejects_wrong_types():
    net = Net()
    net.fc1 = None
    assert "fc1" in net._modules and net.fc1 is None
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.scale = dl.ones(1)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'block'"):
        net.block = 3
    with pytest.raises(TypeError, match="cannot assign 'str' as buffer 'steps'"):
        net.steps = "x"
    net.steps = dl.ones(1)
    assert net.steps.item() == 1
    with pytest.raises(KeyError, match="attribute 'note' already exists"):
        net.register_buffer("note", dl.zeros(1))
    with pytest.raises(KeyError, match="buffer name can.*t contain"):
        net.register_buffer("a.b", dl.zeros(1))
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'missing'"):
        _ = net.missing
    del net.scale
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(AttributeError, match="cannot assign parameters before Module.__init__"):

        class Broken(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(dl.ones(1))

        Broken()


def test_shared_parameters_are_listed_once_but_saved_under_every_name():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(model.named_modules(remove_duplicate=False))) == 4


def test_state_dict_keys_match_pytorch_for_a_small_cnn():
    torch = pytest.importorskip("torch")

    def make(lib):
        return lib.nn.Sequential(
            lib.nn.Conv2d(1, 4, 3), lib.nn.BatchNorm2d(4), lib.nn.ReLU(), lib.nn.Flatten(), lib.nn.Linear(4 * 6 * 6, 10)
        )

    ours, ref = make(dl), make(torch)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert repr(ours) == repr(ref)
    # weights round-trip both ways
    ours.load_state_dict({k: dl.tensor(v.numpy()) for k, v in ref.state_dict().items()})
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    ours.eval(), ref.eval()
    np.testing.assert_allclose(ours(dl.tensor(x)).detach().numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_state_dict_values_share_storage_and_are_detached():
    net = Net()
    state = net.state_dict()
    assert "cache" not in state and isinstance(state, OrderedDict)
    assert not state["fc1.weight"].requires_grad
    state["fc1.weight"][0, 0] = 42.0
    assert net.fc1.weight[0, 0].item() == 42.0
    assert net.state_dict(keep_vars=True)["fc1.weight"] is net.fc1.weight
    assert list(net.state_dict(prefix="model."))[:2] == ["model.scale", "model.steps"]


def test_load_state_dict_copies_in_place_and_reports_keys():
    source, target = Net(), Net()
    weight = target.fc1.weight
    result = target.load_state_dict(source.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert target.fc1.weight is weight
    np.testing.assert_array_equal(target.fc1.weight.detach().numpy(), source.fc1.weight.detach().numpy())
    state = source.state_dict()
    del state["fc1.bias"]
    state["extra"] = dl.zeros(1)
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["fc1.bias"] and result.unexpected_keys == ["extra"]


def test_load_state_dict_strict_errors_match_pytorch_text():
    torch = pytest.importorskip("torch")

    def make(lib):
        return lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.Linear(3, 1))

    def error(lib, state):
        with pytest.raises(RuntimeError) as info:
            make(lib).load_state_dict(state)
        return str(info.value)

    state = {"0.weight": np.zeros((3, 2), np.float32), "1.bias": np.zeros(1, np.float32), "2.weight": np.zeros(1, np.float32)}
    ours = error(dl, {k: dl.tensor(v) for k, v in state.items()})
    ref = error(torch, {k: torch.tensor(v) for k, v in state.items()})
    assert ours == ref
    assert ours.startswith("Error(s) in loading state_dict for Sequential:\n\tMissing key(s) in state_dict: \"0.bias\", \"1.weight\". ")
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: copying a param with shape \(4, 2\) from checkpoint, the shape in current model is \(3, 2\)"):
        make(dl).load_state_dict({"0.weight": dl.zeros(4, 2)}, strict=False)


def test_load_state_dict_accepts_arrays_and_assign():
    model = nn.Linear(2, 2)
    model.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})
    assert model.weight.dtype == dl.float32 and np.array_equal(model.weight.detach().numpy(), np.eye(2))
    new_weight = dl.ones(2, 2)
    model.load_state_dict({"weight": new_weight, "bias": dl.zeros(2)}, assign=True)
    assert isinstance(model.weight, nn.Parameter) and model.weight.requires_grad


def test_train_eval_apply_and_requires_grad():
    net = Net()
    drop = nn.Dropout()
    net.block.append(drop)
    assert net.eval() is net and not drop.training and not net.training
    net.train()
    assert drop.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Linear", "ReLU", "Dropout", "Sequential", "Net"]
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_zero_grad_and_to_dtype_keep_parameter_objects():
    net = Net()
    net(dl.randn(2, 4)).sum().backward()
    assert net.fc1.weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert net.fc1.weight.grad.sum().item() == 0
    net.zero_grad()
    assert net.fc1.weight.grad is None
    weight = net.fc1.weight
    assert net.double() is net and net.fc1.weight is weight and weight.dtype == dl.float64
    assert net.steps.dtype == dl.float64
    net.to(dl.float32).to("cpu")
    assert weight.dtype == dl.float32
    with pytest.raises(TypeError, match="only accepts floating point dtypes"):
        net.to(dl.int64)


def test_forward_hooks():
    layer = nn.Linear(2, 2)
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out + 1)
    y = layer(dl.ones(3, 2))
    np.testing.assert_allclose(y.detach().numpy(), np.broadcast_to(layer.bias.detach().numpy() + 1, (3, 2)))
    assert calls == [(3, 2)]
    pre.remove()
    post.remove()
    assert np.allclose(layer(dl.ones(1, 2)).detach().numpy(), (dl.ones(1, 2) @ layer.weight.t() + layer.bias).detach().numpy())
    order = []
    layer.register_forward_hook(lambda m, a, o: order.append("second"))
    layer.register_forward_hook(lambda m, a, o: order.append("first"), prepend=True)
    layer.register_forward_pre_hook(lambda m, a, k: (a, {**k}), with_kwargs=True)
    layer(dl.ones(1, 2))
    assert order == ["first", "second"]


def test_repr_tree_and_extra_repr_match_pytorch():
    torch = pytest.importorskip("torch")

    def make(lib):
        return lib.nn.Sequential(
            OrderedDict(
                conv=lib.nn.Conv2d(3, 8, 3, padding=1),
                inner=lib.nn.Sequential(lib.nn.ReLU(), lib.nn.MaxPool2d(2)),
                heads=lib.nn.ModuleList([lib.nn.Linear(8, 2), lib.nn.Dropout(0.1)]),
                named=lib.nn.ModuleDict({"emb": lib.nn.Embedding(10, 3, padding_idx=0), "ln": lib.nn.LayerNorm(3)}),
                id=lib.nn.Identity(),
                unflat=lib.nn.Unflatten(1, (2, 4)),
            )
        )

    assert repr(make(dl)) == repr(make(torch))


def test_missing_forward_and_unexpected_init_args():
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(1)
    with pytest.raises(TypeError, match="unexpected arguments"):
        nn.Module(3)


def test_parameter_behaves_as_a_leaf_tensor_everywhere():
    p = nn.Parameter(dl.tensor([1.0, 2.0]))
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    y = (p * p + p).sum() + dl.where(p > 1, p, 0.0).sum() + (p == p).sum()
    assert type(y) is dl.Tensor and y.grad_fn is not None
    y.backward()
    np.testing.assert_allclose(p.grad.numpy(), [3.0, 6.0])
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        p.add_(1)
    with dl.no_grad():
        p.add_(1)
    assert p.tolist() == [2.0, 3.0]
    frozen = nn.Parameter(dl.ones(2), requires_grad=False)
    assert not frozen.requires_grad
    assert nn.Parameter().shape == (0,)
    with pytest.raises(ValueError, match="Cannot assign non-leaf Tensor"):
        nn.Module().register_parameter("w", _non_leaf_parameter())


def _non_leaf_parameter():
    """A Parameter that claims a grad_fn, as one made by an op in PyTorch would have."""
    param = nn.Parameter(dl.ones(1))
    param.grad_fn = (param * 2).grad_fn
    return param


def test_deepcopy_and_pickle_keep_parameters():
    net = Net()
    clone = copy.deepcopy(net)
    assert isinstance(clone.fc1.weight, nn.Parameter) and clone.fc1.weight is not net.fc1.weight
    np.testing.assert_array_equal(clone.fc1.weight.detach().numpy(), net.fc1.weight.detach().numpy())
    with dl.no_grad():
        clone.fc1.weight.fill_(0.0)
    assert net.fc1.weight.abs().sum().item() > 0
    restored = pickle.loads(pickle.dumps(nn.Linear(2, 3)))
    assert isinstance(restored.weight, nn.Parameter) and restored.weight.requires_grad


def test_get_submodule_parameter_and_buffer():
    net = Net()
    assert net.get_submodule("block.0") is net.block[0]
    assert net.get_parameter("block.0.bias") is net.block[0].bias
    assert net.get_buffer("steps") is net.steps
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        net.get_submodule("block.nope")


FLOAT32_LAYERS = [
    (lambda: nn.Linear(4, 3), (2, 4)),
    (lambda: nn.Conv1d(2, 3, 3, padding="same", padding_mode="reflect"), (2, 2, 6)),
    (lambda: nn.Conv2d(2, 4, 3, stride=2, groups=2), (2, 2, 7, 7)),
    (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1), (2, 2, 3, 3)),
    (lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 2, 7, 7)),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 2, 7, 7)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 2, 7, 7)),
    (lambda: nn.BatchNorm1d(4), (3, 4)),
    (lambda: nn.GroupNorm(2, 4), (2, 4, 3)),
    (lambda: nn.LayerNorm(4), (2, 4)),
    (lambda: nn.GELU(), (2, 4)),
    (lambda: nn.ELU(), (2, 4)),
    (lambda: nn.Softplus(), (2, 4)),
    (lambda: nn.LeakyReLU(), (2, 4)),
    (lambda: nn.Dropout2d(0.3), (2, 4, 2, 2)),
    (lambda: nn.GRU(4, 3, bidirectional=True), (5, 2, 4)),
]


@pytest.mark.parametrize("make,shape", FLOAT32_LAYERS)
def test_every_layer_keeps_float32(make, shape):
    layer = make()
    x = dl.randn(*shape, requires_grad=True)
    out = layer(x)
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    assert out.dtype == dl.float32 and x.grad.dtype == dl.float32
    assert all(p.grad.dtype == dl.float32 for p in layer.parameters())
    assert all(b.dtype in (dl.float32, dl.int64) for b in layer.buffers())


def test_small_cnn_learns_with_manual_sgd():
    dl.manual_seed(0)
    rng = np.random.default_rng(0)
    # two classes of 6x6 images: a bright vertical or a bright horizontal bar, plus noise
    labels = rng.integers(0, 2, 64)
    images = rng.normal(0, 0.3, (64, 1, 6, 6)).astype(np.float32)
    for i, label in enumerate(labels):
        if label:
            images[i, 0, :, 2] += 1.0
        else:
            images[i, 0, 2, :] += 1.0
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 2)
    )
    x, y = dl.tensor(images), dl.tensor(labels)
    losses = []
    for _ in range(30):
        loss = nn.CrossEntropyLoss()(model(x), y)
        model.zero_grad()
        loss.backward()
        with dl.no_grad():
            for p in model.parameters():
                p.sub_(p.grad * 0.5)
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy > 0.95
