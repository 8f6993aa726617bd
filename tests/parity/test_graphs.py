"""Whole graphs written with raw ops, run on dltool and on PyTorch: values and gradients must agree.

Each graph is a function of the library, so the very same code runs on both.
"""

import numpy as np
import pytest

import dltool.engine as dl

torch = pytest.importorskip("torch")


def _run(graph, arrays, dtype_name):
    """Run ``graph(lib, *tensors)`` on both libraries; return outputs and input gradients of each."""
    results = []
    for lib in (dl, torch):
        dtype = getattr(lib, dtype_name)
        inputs = [lib.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
        out = graph(lib, *inputs)
        out.backward()
        results.append((out.detach().numpy(), [x.grad.numpy() for x in inputs]))
    return results


def _assert_same(graph, arrays, dtype_name="float64", rtol=1e-9, atol=1e-11):
    (out, grads), (ref, ref_grads) = _run(graph, arrays, dtype_name)
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)
    for i, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def _mlp(lib, x, w1, b1, w2, b2, target):
    """Two-layer MLP, hand-written cross-entropy against soft targets, and an L2 penalty."""
    hidden = (x @ w1.t() + b1).relu()
    logits = hidden @ w2.t() + b2
    log_probs = logits - logits.logsumexp(dim=1, keepdim=True)
    return -(log_probs * target.softmax(-1)).sum(dim=1).mean() + 1e-3 * (w1 * w1).sum()


def _mlp_arrays(rng):
    return [
        rng.standard_normal((8, 5)),  # x
        rng.standard_normal((16, 5)) * 0.5,
        rng.standard_normal(16) * 0.1,  # layer 1
        rng.standard_normal((3, 16)) * 0.5,
        rng.standard_normal(3) * 0.1,  # layer 2
        rng.standard_normal((8, 3)),  # soft targets (logits)
    ]


@pytest.mark.parametrize("dtype_name,rtol,atol", [("float64", 1e-9, 1e-11), ("float32", 1e-4, 1e-5)])
def test_mlp_forward_backward(dtype_name, rtol, atol):
    _assert_same(_mlp, _mlp_arrays(np.random.default_rng(0)), dtype_name, rtol, atol)


def _attention(lib, q, k, v, w_out):
    """Scaled dot-product attention with a causal mask, then a projection and a norm."""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    n = scores.shape[-1]
    causal = lib.arange(n).unsqueeze(1) >= lib.arange(n).unsqueeze(0)
    scores = scores.masked_fill(~causal, float("-inf"))
    weights = scores.softmax(dim=-1)
    mixed = weights @ v  # (batch, heads, n, d)
    merged = mixed.permute(0, 2, 1, 3).flatten(2)  # (batch, n, heads * d)
    out = merged @ w_out
    return (out.norm(dim=-1) + out.std(dim=1).sum()).mean()


def test_attention_like_graph():
    rng = np.random.default_rng(1)
    b, h, n, d = 2, 2, 4, 3
    arrays = [rng.standard_normal((b, h, n, d)) for _ in range(3)] + [rng.standard_normal((h * d, 5))]
    _assert_same(_attention, arrays)


def _indexing_heavy(lib, table, x):
    """Embedding lookup with repeats, gather/scatter_add, masks, and mixed indexing."""
    tokens = lib.tensor([[0, 3, 3, 1], [2, 2, 0, 4]])
    embedded = table[tokens]  # (2, 4, d), repeated rows
    pooled = embedded.sum(dim=1) / 4
    picked = x.gather(1, lib.tensor([[0, 0, 2], [1, 2, 2], [3, 3, 0]]))
    scattered = lib.zeros(3, 4, dtype=x.dtype).scatter_add(
        1, lib.tensor([[1, 1, 0], [3, 3, 3], [0, 2, 2]]), picked * 2
    )
    masked = x[x > 0.1].sum() + x[:, [1, 1, 3]][1:].pow(2).sum()
    selected = table.index_select(0, lib.tensor([4, 0, 4])).flip(0)
    mixed = table[1:, [0, 2]][lib.tensor([True, False, True, True])]
    return (pooled @ selected.t()).sum() + scattered.max(dim=1).values.sum() + masked + mixed.abs().mean()


def test_indexing_heavy_graph():
    rng = np.random.default_rng(2)
    _assert_same(_indexing_heavy, [rng.standard_normal((5, 3)), rng.standard_normal((3, 4))])


def _elementwise_zoo(lib, x, y):
    """A long chain through most elementwise ops, broadcasting and reductions."""
    a = (x * y + x / (y.abs() + 1) - 2**x).tanh()
    b = lib.where(a > 0, a.sigmoid(), (a * 3).exp()) + lib.maximum(x, y.flip(0)).clamp(-1, 1)
    c = (b.abs() + 0.1).log1p().sqrt() * (x.sin() - y.cos().mean())
    d = (
        c.reshape(2, -1).var(dim=1, correction=0).rsqrt()
        + lib.minimum(c, lib.ones(4, dtype=c.dtype) * 0.5).amax(dim=0).sum()
    )
    return d.prod() + c.norm(p=3) + lib.cat([c, b], dim=1).log_softmax(dim=1).mean()


def test_elementwise_chain_graph():
    rng = np.random.default_rng(3)
    _assert_same(_elementwise_zoo, [rng.standard_normal((3, 4)), rng.standard_normal(4) + 0.1])


def test_second_order_graph():
    """A gradient inside the graph (create_graph), then backward through it."""

    def graph(lib, x, w):
        y = ((x @ w).tanh() ** 2).sum()
        (g,) = lib.autograd.grad(y, w, create_graph=True)
        return (g * g).sum() + y

    rng = np.random.default_rng(4)
    _assert_same(graph, [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))])
