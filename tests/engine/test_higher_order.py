"""Second derivatives (create_graph), a gradient penalty, and the backward engine on deep graphs."""

import gc
import weakref

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import autograd
from dltool.engine.autograd.function import _RELEASED
from dltool.engine.ops.shape import pad


def _inputs(*specs, seed=0):
    """float64 tensors requiring grad, one per ``(shape, low, high)``."""
    rng = np.random.default_rng(seed)
    return [dl.tensor(rng.uniform(low, high, shape), requires_grad=True) for shape, low, high in specs]


ANY, POSITIVE = (-2.0, 2.0), (0.5, 2.0)

SECOND_ORDER = [
    # elementwise
    ("mul", lambda x, y: x * y, [((2, 3),) + ANY, ((3,),) + ANY]),
    ("div", lambda x, y: x / y, [((2, 3),) + ANY, ((3,),) + POSITIVE]),
    ("pow", lambda x, y: x**y, [((2, 3),) + POSITIVE, ((3,),) + POSITIVE]),
    ("pow_scalar", lambda x: x**3, [((4,),) + ANY]),
    ("python_numbers", lambda x: ((x * 1.5 + 2) / 3 - 0.5) * x, [((4,),) + ANY]),
    ("exp", lambda x: x.exp(), [((4,),) + ANY]),
    ("log", lambda x: x.log(), [((4,),) + POSITIVE]),
    ("log1p", lambda x: x.log1p(), [((4,),) + POSITIVE]),
    ("sqrt", lambda x: x.sqrt(), [((4,),) + POSITIVE]),
    ("rsqrt", lambda x: x.rsqrt(), [((4,),) + POSITIVE]),
    ("sin_cos", lambda x: x.sin() * x.cos(), [((4,),) + ANY]),
    ("tanh", lambda x: x.tanh(), [((4,),) + ANY]),
    ("sigmoid", lambda x: x.sigmoid(), [((4,),) + ANY]),
    ("abs", lambda x: x.abs() * x, [((4,),) + POSITIVE]),
    ("relu", lambda x: x.relu() * x, [((4,),) + ANY]),
    ("clamp", lambda x: x.clamp(-1, 1) * x, [((4,),) + ANY]),
    ("maximum", lambda x, y: dl.maximum(x, y) * x, [((4,),) + ANY, ((4,),) + ANY]),
    ("where", lambda x, y: dl.where(x > 0, x * x, y * y), [((4,),) + ANY, ((4,),) + ANY]),
    # matrix products
    ("matmul", lambda x, y: x @ y, [((2, 3),) + ANY, ((3, 2),) + ANY]),
    ("matmul_batched_vector", lambda x, y: (x @ y) ** 2, [((2, 2, 3),) + ANY, ((3,),) + ANY]),
    ("dot", lambda x, y: dl.dot(x, y) ** 2, [((3,),) + ANY, ((3,),) + ANY]),
    ("mm_square", lambda x: dl.mm(x, x), [((2, 2),) + ANY]),
    ("cross_entropy", lambda x: dl.nn.functional.cross_entropy(x, dl.tensor([0, 2]), label_smoothing=0.2), [((2, 3),) + ANY]),
    ("cross_entropy_none", lambda x: dl.nn.functional.cross_entropy(x, dl.tensor([1, 0]), reduction="none"), [((2, 3),) + ANY]),
    ("cross_entropy_probs", lambda x, t: dl.nn.functional.cross_entropy(x, t.softmax(1)), [((2, 3),) + ANY, ((2, 3),) + ANY]),
    ("linear", lambda x, w, b: dl.nn.functional.linear(x, w, b).tanh(), [((2, 2, 3),) + ANY, ((2, 3),) + ANY, ((2,),) + ANY]),
    # reductions
    ("sum", lambda x: x.sum(1) ** 2, [((2, 3),) + ANY]),
    ("mean", lambda x: x.mean((0, 1), keepdim=True) * x, [((2, 3),) + ANY]),
    ("var", lambda x: x.var(1), [((2, 3),) + ANY]),
    ("std", lambda x: x.std(), [((2, 3),) + ANY]),
    ("prod", lambda x: x.prod(1), [((2, 3),) + ANY]),
    ("amax", lambda x: x.amax(1) ** 2, [((2, 3),) + ANY]),
    ("max_dim", lambda x: x.max(1).values ** 2, [((2, 3),) + ANY]),
    ("logsumexp", lambda x: x.logsumexp(1), [((2, 3),) + ANY]),
    ("norm", lambda x: x.norm(dim=1), [((2, 3),) + ANY]),
    # softmax
    ("softmax", lambda x: x.softmax(-1), [((2, 3),) + ANY]),
    ("log_softmax", lambda x: x.log_softmax(0), [((2, 3),) + ANY]),
    # shape and indexing
    ("getitem_repeated", lambda x: x[[0, 0, 1]] ** 2, [((2, 3),) + ANY]),
    ("gather", lambda x: x.gather(1, dl.tensor([[0, 0], [2, 1]])) ** 2, [((2, 3),) + ANY]),
    (
        "scatter_add",
        lambda x, s: x.scatter_add(1, dl.tensor([[0, 0], [2, 1]]), s * s),
        [((2, 3),) + ANY, ((2, 2),) + ANY],
    ),
    (
        "cat_flip_repeat",
        lambda x, y: dl.cat([x, y]).flip(0).repeat(2, 1) ** 2,
        [((2, 3),) + ANY, ((1, 3),) + ANY],
    ),
    ("expand_permute", lambda x: x.expand(2, 3).permute(1, 0) ** 2, [((1, 3),) + ANY]),
    ("pad", lambda x: pad(x, (1, 1)) ** 2, [((2, 2),) + ANY]),
]


@pytest.mark.parametrize("name,fn,specs", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_gradgradcheck(name, fn, specs):
    assert autograd.gradgradcheck(fn, _inputs(*specs))


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class FrozenSquare(autograd.Function):
        """x**2 whose backward is right but not differentiable (it detaches x)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x._data**2

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 2 * x.detach()

    (x,) = _inputs(((3,),) + ANY)
    assert autograd.gradcheck(FrozenSquare.apply, (x,))
    assert not autograd.gradgradcheck(FrozenSquare.apply, (x,), raise_exception=False)


def test_hessian_vector_product():
    x = dl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = autograd.grad((x**3).sum(), x, create_graph=True)
    v = dl.tensor([1.0, 0.0, 2.0])
    (hv,) = autograd.grad((g * v).sum(), x)
    assert hv.tolist() == [6.0, 0.0, 36.0]


# ---------------------------------------------------------------- gradient penalty (WGAN-GP)


def _critic(lib, x, w1, b1, w2):
    return (x @ w1 + b1).tanh() @ w2


def _gradient_penalty(lib, real, fake, eps, w1, b1, w2):
    """``E[(|grad_x critic(x_hat)| - 1)^2]`` at points between real and fake samples."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_()
    scores = _critic(lib, x_hat, w1, b1, w2)
    (grad,) = lib.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def _penalty_setup(seed=0):
    rng = np.random.default_rng(seed)
    data = [rng.standard_normal(s) for s in ((4, 3), (4, 3), (4, 1))]
    params = [rng.standard_normal(s) for s in ((3, 5), (5,), (5, 1))]
    return data, params


def test_gradient_penalty_gradients_match_finite_differences():
    data, params = _penalty_setup()
    real, fake, eps = (dl.tensor(a) for a in data)
    weights = [dl.tensor(p, requires_grad=True) for p in params]
    assert autograd.gradcheck(lambda *w: _gradient_penalty(dl, real, fake, eps, *w), weights)


def test_gradient_penalty_matches_pytorch():
    torch = pytest.importorskip("torch")
    data, params = _penalty_setup(seed=1)
    results = []
    for lib in (dl, torch):
        weights = [lib.tensor(p, requires_grad=True) for p in params]
        penalty = _gradient_penalty(lib, *(lib.tensor(a) for a in data), *weights)
        penalty.backward()
        results.append([penalty.item()] + [w.grad.numpy() for w in weights])
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- the engine on deep graphs


def test_a_chain_of_100000_ops_backpropagates_and_frees_its_buffers():
    x, one = dl.tensor([1.0], requires_grad=True), dl.tensor([1.0])
    y = x
    for i in range(100_000):
        y = y * one if i % 2 else y + 0.5  # a tensor operand: Mul saves both inputs
    last_saved = weakref.ref(y.grad_fn._saved[0][0])  # the intermediate the last Mul saved
    y.backward()
    assert x.grad.tolist() == [1.0]
    node, visited = y.grad_fn, 0
    while node.name() != "AccumulateGrad":
        assert node._saved in (None, _RELEASED)  # freed without retain_graph
        node = next(child for child, _ in node.next_functions if child is not None)
        visited += 1
    assert visited == 100_000
    gc.collect()
    assert last_saved() is None


def test_saved_intermediates_die_after_backward_but_not_with_retain_graph():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    for retain, alive_after in ((False, False), (True, True)):
        hidden = x * 2
        out = hidden.sin().sum()  # sin saves hidden, which only the graph holds after `del`
        ref = weakref.ref(hidden)
        del hidden
        gc.collect()
        assert ref() is not None
        out.backward(retain_graph=retain)
        gc.collect()
        assert (ref() is not None) == alive_after
