"""The GPU path: the same op code on cupy arrays. The GPU tests skip where cupy or a GPU is missing."""

import ast
from pathlib import Path

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import autograd

OPS_DIR = Path(dl.__file__).parent / "ops"


def test_ops_never_call_numpy_on_tensor_data():
    """Op code gets its array module from the backend, so it runs on cupy unchanged."""
    offenders = []
    for path in sorted(OPS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "np"):
                continue
            arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
            if any(
                isinstance(n, ast.Attribute) and n.attr == "_data" for a in arguments for n in ast.walk(a)
            ):
                offenders.append(f"{path.name}:{node.lineno} np.{node.func.attr}")
    assert not offenders, f"numpy called on tensor data: {offenders}"


def requires_gpu(test):
    skip = pytest.mark.skipif(not dl.cuda.is_available(), reason="needs cupy and an NVIDIA GPU")
    return pytest.mark.gpu(skip(test))


def _index(x, values):
    """An index tensor on ``x``'s device."""
    return dl.tensor(values, device=x.device)


GRAPHS = [
    (
        "elementwise",
        lambda x: (x * x.exp() / (x + 1) - x.sqrt().log() + x.sigmoid().tanh() ** 2).relu().sum(),
    ),
    ("reductions", lambda x: x.var(1).sum() + x.amax(0).sum() + x.logsumexp(-1).sum() + x.norm() + x.prod()),
    (
        "max_min",
        lambda x: x.max(1).values.sum() + dl.minimum(x, x.t().sum(1)).sum() + x.clamp(0.8, 1.5).sum(),
    ),
    ("softmax", lambda x: (x.softmax(-1) * x.log_softmax(0)).sum()),
    ("matmul", lambda x: (x @ x.t()).sum() + (x.unsqueeze(0) @ x.t().unsqueeze(0)).mean() + x[0].dot(x[1])),
    ("shape", lambda x: dl.cat([x, x.flip(0)], 1).repeat(2, 1).permute(1, 0).reshape(-1)[::3].sum()),
    (
        "indexing",
        lambda x: x[[0, 0, 2]].sum() + x[x > 1].sum() + x.gather(1, _index(x, [[0], [1], [0]])).sum(),
    ),
    (
        "scatter_add",
        lambda x: x.scatter_add(1, _index(x, [[0, 0], [1, 1], [3, 3]]), x[:, :2] ** 2).pow(2).sum(),
    ),
    ("inplace_view", lambda x: _buffer_filled_through_a_view(x)),
]


def _buffer_filled_through_a_view(x):
    buffer = dl.zeros(3, 4, dtype=x.dtype, device=x.device)
    buffer[:, 1:].mul_(2).add_(x[:, 1:] * 3)
    return (buffer * x).sum()


@requires_gpu
@pytest.mark.parametrize("name,graph", GRAPHS, ids=[g[0] for g in GRAPHS])
def test_graph_on_gpu_matches_cpu(name, graph):
    array = np.random.default_rng(0).uniform(0.5, 2.0, (3, 4))
    results = []
    for device in ("cpu", "cuda"):
        x = dl.tensor(array, dtype=dl.float64, device=device, requires_grad=True)
        out = graph(x)
        out.backward()
        assert out.device.type == x.grad.device.type == device
        results.append((out.item(), x.grad.cpu().numpy()))
    (value, grad), (gpu_value, gpu_grad) = results
    np.testing.assert_allclose(gpu_value, value, rtol=1e-10)
    np.testing.assert_allclose(gpu_grad, grad, rtol=1e-10, atol=1e-12)


@requires_gpu
def test_moving_between_devices_keeps_gradients_flowing():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x.cuda() * 3
    assert y.device == dl.device("cuda:0") and y.is_cuda and "device='cuda:0'" in repr(y)
    z = y.cpu() + y.to("cpu")
    z.sum().backward()
    assert x.grad.device.type == "cpu" and x.grad.tolist() == [6.0, 6.0]
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        dl.ones(1, device="cuda").numpy()


@requires_gpu
def test_factories_on_gpu():
    for tensor in (
        dl.zeros(2, device="cuda"),
        dl.ones(2, device="cuda"),
        dl.eye(2, device="cuda"),
        dl.arange(3, device="cuda"),
        dl.full((2,), 3.0, device="cuda"),
        dl.rand(2, device="cuda"),
    ):
        assert tensor.device.type == "cuda"
    first = dl.randn(4, device="cuda", generator=dl.Generator().manual_seed(1))
    again = dl.randn(4, device="cuda", generator=dl.Generator().manual_seed(1))
    assert dl.equal(first, again) and first.dtype == dl.float32


@requires_gpu
def test_gradcheck_on_gpu():
    x = dl.randn(3, 4, dtype=dl.float64, device="cuda", requires_grad=True)
    w = dl.randn(4, 2, dtype=dl.float64, device="cuda", requires_grad=True)
    assert autograd.gradcheck(lambda x, w: (x @ w).tanh().softmax(-1), (x, w))
    assert autograd.gradgradcheck(lambda x, w: (x @ w).sigmoid(), (x, w))


@requires_gpu
def test_deep_chain_on_gpu():
    x = dl.ones(1, device="cuda", requires_grad=True)
    y = x
    for _ in range(2000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0
