import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import autograd

# ---------------------------------------------------------------- the graph


def test_requires_grad_spreads_and_leaves_have_no_grad_fn():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    c = dl.tensor([3.0, 4.0])
    y = x * c + 1
    assert x.is_leaf and x.grad_fn is None and c.is_leaf and not c.requires_grad
    assert y.requires_grad and not y.is_leaf
    assert not (c * 2).requires_grad and (c * 2).is_leaf
    assert not (x > 1).requires_grad and not x.argmax().requires_grad


def test_grad_fn_names_and_next_functions_walk_the_graph():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    z = (x * 2).sum()
    assert z.grad_fn.name() == "SumBackward0"
    (mul, _), *_ = z.grad_fn.next_functions
    assert mul.name() == "MulBackward0"
    (accumulate, nr), (none, _) = mul.next_functions
    assert accumulate.name() == "AccumulateGrad" and accumulate.variable is x and nr == 0
    assert none is None  # the constant 2 has no node


def test_gradients_accumulate_into_grad():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    x.grad = None
    (x + x).sum().backward()  # a leaf used twice in one graph
    assert x.grad.tolist() == [2.0, 2.0]


def test_grad_of_a_leaf_owns_its_storage():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    upstream = dl.tensor([1.0, 1.0])
    (x * 1).backward(upstream)
    x.grad.add_(1)
    assert upstream.tolist() == [1.0, 1.0]


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


class _Double(autograd.Function):
    """2 * x, noting where its backward put the input gradient (an address holds no reference)."""

    addresses: list = []

    @staticmethod
    def forward(ctx, x):
        return x.detach().numpy() * 2

    @staticmethod
    def backward(ctx, grad_output):
        grad = grad_output * 2
        _Double.addresses.append(_address(grad.numpy()))
        return grad


def test_a_gradient_nothing_else_holds_becomes_grad_without_a_copy():
    x = dl.ones(3, requires_grad=True)
    _Double.addresses.clear()
    _Double.apply(x).sum().backward()
    assert _address(x.grad.numpy()) == _Double.addresses[0]
    linear = dl.nn.Linear(4, 2)
    linear(dl.ones(5, 4)).sum().backward()
    assert linear.weight.grad.numpy().base is None and linear.weight.grad.tolist() == [[5.0] * 4] * 2


def test_a_gradient_held_elsewhere_is_copied_into_grad():
    kept = []
    x = dl.ones(3, requires_grad=True)
    x.register_hook(kept.append)
    _Double.addresses.clear()
    _Double.apply(x).sum().backward()
    assert _address(x.grad.numpy()) != _Double.addresses[0]
    x.grad.add_(1)
    assert kept[0].tolist() == [2.0] * 3

    a, b = dl.ones(3, requires_grad=True), dl.ones(3, requires_grad=True)
    (a + b).sum().backward()  # add hands the same gradient to both leaves
    a.grad.mul_(3)
    assert b.grad.tolist() == [1.0] * 3

    h = a * 1.0
    h.retain_grad()
    (h + 0.0).sum().backward()
    assert not np.shares_memory(h.grad.numpy(), a.grad.numpy())


def test_retain_grad_keeps_non_leaf_gradients():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = y * 2
    (y * y).sum().backward()
    assert y.retains_grad and y.grad.tolist() == [4.0, 8.0]
    assert z.grad is None and x.grad.tolist() == [8.0, 16.0]
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        dl.ones(1).retain_grad()


def test_backward_with_gradient_argument():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(gradient=dl.tensor([1.0, 0.5]))
    assert x.grad.tolist() == [3.0, 1.5]


def test_non_scalar_backward_needs_gradient():
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (dl.ones(2, requires_grad=True) * 2).backward()
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of \(3,\)"):
        (dl.ones(2, requires_grad=True) * 2).backward(dl.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad and does not have a grad_fn"):
        dl.ones(1).backward()


@pytest.mark.parametrize("make", [lambda x: (x * x).sum(), lambda x: (x + 1).sum(), lambda x: x.exp().mean()])
def test_second_backward_through_freed_graph_raises(make):
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    z = make(x)
    z.backward()
    with pytest.raises(RuntimeError, match="Specify retain_graph=True"):
        z.backward()


def test_retain_graph_keeps_buffers_and_grads_accumulate():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_shared_subgraph_gets_the_sum_of_its_gradients():
    x = dl.tensor([2.0], requires_grad=True)
    y = x * x
    (y + y * 3 + y.exp()).backward()
    assert np.allclose(x.grad.numpy(), [2 * 2.0 * (4 + np.exp(4.0))])


# ---------------------------------------------------------------- grad modes


def test_grad_modes_as_context_managers():
    x = dl.ones(1, requires_grad=True)
    with dl.no_grad():
        assert not (x * 2).requires_grad and not dl.is_grad_enabled()
        with dl.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with dl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    with dl.inference_mode():
        assert not (x * 2).requires_grad
    with dl.inference_mode(False):
        assert (x * 2).requires_grad
    with pytest.raises(ValueError), dl.no_grad():
        raise ValueError("the mode comes back after an exception")
    assert dl.is_grad_enabled()


def test_grad_modes_as_decorators():
    x = dl.ones(1, requires_grad=True)

    @dl.no_grad()
    def without():
        return (x * 2).requires_grad

    @dl.no_grad
    def bare():
        return (x * 2).requires_grad

    @dl.set_grad_enabled(False)
    def disabled():
        return (x * 2).requires_grad

    @dl.inference_mode()
    def inference():
        return (x * 2).requires_grad

    assert dl.is_grad_enabled()  # decorating switched nothing
    assert not without() and not bare() and not disabled() and not inference()
    assert dl.is_grad_enabled()
    with dl.no_grad():
        assert dl.enable_grad()(lambda: (x * 2).requires_grad)()
    assert without.__name__ == "without"


def test_set_grad_enabled_as_a_call():
    try:
        dl.set_grad_enabled(False)
        assert not dl.is_grad_enabled()
    finally:
        dl.set_grad_enabled(True)
    assert dl.is_grad_enabled()


def test_detach_and_requires_grad_():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = dl.tensor([1.0]).requires_grad_()
    assert y.requires_grad and y.is_leaf
    assert not y.requires_grad_(False).requires_grad
    with pytest.raises(RuntimeError, match="only change requires_grad flags of leaf variables"):
        (x * 2).requires_grad_(False)


# ---------------------------------------------------------------- hooks


def test_tensor_hook_can_replace_the_gradient_and_be_removed():
    x = dl.tensor([1.0], requires_grad=True)
    handle = x.register_hook(lambda grad: grad * 10)
    (x * 2).backward()
    assert x.grad.tolist() == [20.0]
    handle.remove()
    x.grad = None
    (x * 2).backward()
    assert x.grad.tolist() == [2.0]
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        dl.ones(1).register_hook(lambda grad: grad)


def test_hook_on_intermediate_tensor_changes_what_flows_on():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.register_hook(lambda grad: grad * 0)
    (y * y).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_hook_order_node_hooks_before_leaf_tensor_hooks():
    order = []
    x = dl.tensor([1.0], requires_grad=True)
    x.register_hook(lambda grad: order.append("leaf tensor hook"))
    y = x * 2
    y.register_hook(lambda grad: order.append("y tensor hook"))
    y.grad_fn.register_prehook(lambda grad_outputs: order.append("node prehook"))
    y.grad_fn.register_hook(lambda grad_inputs, grad_outputs: order.append("node hook"))
    y.backward()
    assert order == ["y tensor hook", "node prehook", "node hook", "leaf tensor hook"]


def test_node_hooks_can_replace_gradients():
    x = dl.tensor([1.0], requires_grad=True)
    y = x * 3
    y.grad_fn.register_prehook(lambda grad_outputs: (grad_outputs[0] * 10,))
    y.grad_fn.register_hook(lambda grad_inputs, grad_outputs: (grad_inputs[0] + 1, None))
    y.backward()
    assert x.grad.tolist() == [31.0]


def _post_accumulate_story(lib):
    """When a post-accumulate-grad hook fires and what ``.grad`` holds then, with ``lib``."""
    seen = []
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda grad: grad * 10)  # runs before the accumulation the post hook sees
    handle = x.register_post_accumulate_grad_hook(lambda p: seen.append(("first", p.grad.tolist())))
    x.register_post_accumulate_grad_hook(lambda p: seen.append(("second", p.grad.tolist())))
    ((x * x).sum() + (x * 3).sum()).backward()  # x reached twice, accumulated once
    (x * 2).sum().backward()  # adds to .grad
    lib.autograd.grad((x * x).sum(), x)  # accumulates nothing: no hook
    handle.remove()
    x.grad = None
    (x * 4).sum().backward()
    # the documented use: an optimizer step inside backward, in place on the parameter
    w = lib.tensor([1.0, 2.0], requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda p: p.add_(p.grad, alpha=-0.5))
    (w * w).sum().backward()
    return seen, w.detach().tolist()


def test_post_accumulate_grad_hook_fires_after_accumulation_as_in_torch():
    torch = pytest.importorskip("torch")
    seen, stepped = _post_accumulate_story(dl)
    assert (seen, stepped) == _post_accumulate_story(torch)
    assert seen[:2] == [("first", [50.0, 70.0]), ("second", [50.0, 70.0])]


@pytest.mark.parametrize("make", [lambda lib: lib.ones(1), lambda lib: lib.ones(1, requires_grad=True) * 2])
def test_post_accumulate_grad_hook_only_on_leaves_that_require_grad(make):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as expected:
        make(torch).register_post_accumulate_grad_hook(lambda p: None)
    with pytest.raises(RuntimeError, match=str(expected.value)):
        make(dl).register_post_accumulate_grad_hook(lambda p: None)


# ---------------------------------------------------------------- custom Function


class ScaledMul(autograd.Function):
    @staticmethod
    def forward(ctx, x, y, scale):
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        ctx.seen_needs = ctx.needs_input_grad
        return x * y * scale

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        x_grad = grad_output * y * ctx.scale if ctx.needs_input_grad[0] else None
        y_grad = grad_output * x * ctx.scale if ctx.needs_input_grad[1] else None
        return x_grad, y_grad, None


def test_custom_function_with_ctx():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = dl.tensor([3.0, 4.0])
    z = ScaledMul.apply(x, y, 2.0)
    assert z.tolist() == [6.0, 16.0] and z.grad_fn.name() == "ScaledMulBackward"
    assert z.grad_fn.needs_input_grad == (True, False, False)
    z.sum().backward()
    assert x.grad.tolist() == [6.0, 8.0] and y.grad is None
    x64 = dl.tensor([1.0, 2.0], dtype=dl.float64, requires_grad=True)
    y64 = dl.tensor([0.5, -1.0], dtype=dl.float64, requires_grad=True)
    assert autograd.gradcheck(lambda a, b: ScaledMul.apply(a, b, 3.0), (x64, y64))


class SortWithIndices(autograd.Function):
    @staticmethod
    def forward(ctx, x):
        indices = x._data.argsort()
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(dl.tensor(indices))
        return x._data[indices], indices

    @staticmethod
    def backward(ctx, grad_values, grad_indices):
        (indices,) = ctx.saved_tensors
        grad = dl.zeros_like(grad_values)
        grad[indices] = grad_values
        return grad


def test_mark_non_differentiable_outputs():
    x = dl.tensor([3.0, 1.0, 2.0], requires_grad=True)
    values, indices = SortWithIndices.apply(x)
    assert values.requires_grad and not indices.requires_grad
    (values * dl.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 1.0, 2.0]


def test_custom_function_errors():
    class WrongCount(autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, grad_output):
            return (grad_output,)

    class WrongShape(autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output

    a, b = dl.ones(2, requires_grad=True), dl.ones(2, requires_grad=True)
    with pytest.raises(
        RuntimeError,
        match=r"WrongCountBackward returned an incorrect number of gradients \(expected 2, got 1\)",
    ):
        WrongCount.apply(a, b).sum().backward()
    with pytest.raises(
        RuntimeError, match=r"WrongShapeBackward returned an invalid gradient at index 0 - got \[\]"
    ):
        (WrongShape.apply(a * 1) * 2).backward()


def test_saved_tensors_are_checked_for_inplace_changes_in_custom_functions():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = dl.tensor([3.0, 4.0])
    z = ScaledMul.apply(x, y, 1.0)
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*ScaledMulBackward.*version 1"):
        z.sum().backward()


# ---------------------------------------------------------------- autograd.grad


def test_autograd_grad_with_grad_outputs_does_not_touch_grad():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    (g,) = autograd.grad(x * x, x, grad_outputs=dl.tensor([1.0, 3.0]))
    assert g.tolist() == [2.0, 12.0] and x.grad is None and not g.requires_grad


def test_autograd_grad_retain_graph_and_allow_unused():
    x, unused = dl.tensor([1.0], requires_grad=True), dl.tensor([1.0], requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph"):
        autograd.grad(y, [x, unused], retain_graph=True)
    gx, gu = autograd.grad(y, [x, unused], allow_unused=True, retain_graph=True)
    assert gx.tolist() == [2.0] and gu is None
    _, zeros = autograd.grad(y, [x, unused], allow_unused=True, materialize_grads=True, retain_graph=True)
    assert zeros.tolist() == [0.0]
    autograd.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        autograd.grad(y, x)
    with pytest.raises(
        RuntimeError, match=r"One of the differentiated Tensors \(index 0\) does not require grad"
    ):
        autograd.grad((x * 2).sum(), dl.ones(1))


def test_autograd_grad_of_an_intermediate_and_of_several_outputs():
    x = dl.tensor([2.0], requires_grad=True)
    y = x * 3
    z = y * y
    (gy,) = autograd.grad(z, y, retain_graph=True)
    assert gy.tolist() == [12.0]
    (gx,) = autograd.grad([z, y], x, grad_outputs=[dl.ones(1), dl.ones(1)])
    assert gx.tolist() == [2 * 9 * 2.0 + 3]


def test_create_graph_gives_differentiable_gradients():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    (g,) = autograd.grad((x**3).sum(), x, create_graph=True)
    assert g.requires_grad and g.tolist() == [3.0, 12.0]
    (gg,) = autograd.grad(g.sum(), x)
    assert gg.tolist() == [6.0, 12.0]
    x.grad = None
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    first = x.grad
    x.grad = None
    first.sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]


def test_backward_without_create_graph_records_nothing():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    (x.exp() * x).sum().backward()
    assert not x.grad.requires_grad and x.grad.grad_fn is None


def test_plain_backward_matches_create_graph_and_hooks_still_see_tensors():
    # Sum, DivScalar, AddScalar, Tanh and MulScalar pass arrays in a plain backward; the hooks
    # between them must still get Tensors, and the gradients must not change.
    start = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    seen = []

    def loss(x):
        y = (x * 2.0).tanh()
        y.register_hook(lambda g: seen.append(type(g)))
        y.grad_fn.register_hook(lambda grad_inputs, grad_outputs: seen.append(type(grad_inputs[0])))
        return (y / 3.0 + 1.0).sum()

    x = dl.tensor(start, requires_grad=True)
    loss(x).backward()
    twin = dl.tensor(start, requires_grad=True)
    (expected,) = dl.autograd.grad(loss(twin), twin, create_graph=True)
    assert seen == [dl.Tensor, dl.Tensor] * 2
    assert type(x.grad) is dl.Tensor and x.grad.dtype == dl.float32
    np.testing.assert_array_equal(x.grad.numpy(), expected.detach().numpy())


def test_node_hooks_and_autograd_grad_see_tensors_from_backwards_that_make_arrays():
    # mul and linear compute their plain gradients on arrays; what hooks and grad() get is Tensors
    x, w = dl.ones(2, 3, requires_grad=True), dl.full((4, 3), 0.5, requires_grad=True)
    product = x * x
    seen = []
    product.grad_fn.register_hook(lambda grad_inputs, grad_outputs: seen.extend(map(type, grad_inputs)))
    out = dl.nn.functional.linear(product, w).sum()
    grads = dl.autograd.grad(out, (x, w), retain_graph=True)
    assert [type(g) for g in grads] == [dl.Tensor, dl.Tensor]
    out.backward()
    assert seen == [dl.Tensor, dl.Tensor] * 2
    np.testing.assert_array_equal(x.grad.numpy(), grads[0].numpy())
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 4.0, np.float32))  # 2x * sum_j w_j
