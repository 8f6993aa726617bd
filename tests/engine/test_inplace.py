"""In-place ops: values and gradients, the version counter, and in-place changes through views."""

import numpy as np
import pytest

import dltool.engine as dl
from tests.op_check import check_op, torch


def _inplace(update):
    """``x * 1`` changed in place by ``update(lib, y, other)``, then squared (so backward needs it)."""

    def fn(lib, x, other):
        y = x * 1
        update(lib, y, other)
        return y * y

    return fn


INPLACE = [
    ("add_", lambda lib, y, o: y.add_(o, alpha=2)),
    ("sub_", lambda lib, y, o: y.sub_(o)),
    ("mul_", lambda lib, y, o: y.mul_(o)),
    ("div_", lambda lib, y, o: y.div_(o)),
    ("pow_", lambda lib, y, o: y.pow_(o)),
    ("iadd", lambda lib, y, o: y.__iadd__(o)),
    ("isub", lambda lib, y, o: y.__isub__(o)),
    ("imul", lambda lib, y, o: y.__imul__(o)),
    ("itruediv", lambda lib, y, o: y.__itruediv__(o)),
    ("ipow", lambda lib, y, o: y.__ipow__(2)),
    ("copy_", lambda lib, y, o: y.copy_(o * 3)),
    ("zero_", lambda lib, y, o: y.zero_()),
    ("fill_", lambda lib, y, o: y.fill_(0.5)),
    ("clamp_", lambda lib, y, o: y.clamp_(-0.5, 0.5)),
    ("clamp_min_", lambda lib, y, o: y.clamp_(min=0.1)),
    ("setitem_slice", lambda lib, y, o: y.__setitem__((slice(None), 0), o[:, 1])),
    ("setitem_mask", lambda lib, y, o: y.__setitem__(y > 0, 1.0)),
    ("setitem_tensor_value", lambda lib, y, o: y.__setitem__(1, o[0])),
    ("chain", lambda lib, y, o: y.mul_(2).add_(o).sub_(1)),
]


@pytest.mark.parametrize("name,update", INPLACE, ids=[n for n, _ in INPLACE])
def test_inplace_values_and_gradients(name, update):
    check_op(_inplace(update), (3, 4), (3, 4), low=0.5, high=2.0)


def test_inplace_with_broadcast_operand():
    check_op(_inplace(lambda lib, y, o: y.mul_(o)), (3, 4), (4,), low=0.5, high=2.0)


@pytest.mark.parametrize("method", ["normal_", "uniform_"])
def test_random_fills_cut_the_gradient_to_the_old_values(method):
    x = dl.ones(1000, requires_grad=True)
    y = x * 1
    getattr(y, method)()
    (y * 2).sum().backward()
    assert x.grad.abs().sum().item() == 0.0 and y.requires_grad
    assert 0.0 <= dl.ones(100).uniform_(0, 1).min().item() and dl.ones(100).uniform_(2, 3).min().item() >= 2.0
    assert abs(dl.ones(4000).normal_(3.0, 0.5).mean().item() - 3.0) < 0.05


def test_inplace_bumps_the_version_counter():
    x = dl.zeros(3)
    assert x._version == 0
    x.add_(1)
    x += 1
    x[0] = 5.0
    x.zero_()
    assert x._version == 4
    assert x.tolist() == [0.0, 0.0, 0.0]
    x.fill_(2).mul_(3)  # in-place ops return the tensor itself
    assert x.tolist() == [6.0] * 3


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_fill_outside_autograd_writes_the_same_storage_as_torch_would(dtype):
    value = 2.7 if dtype != "bool" else 1
    ours = dl.zeros(2, 3, dtype=getattr(dl, dtype))
    storage, version = ours._data, ours._version
    ours[0].fill_(value)  # a view: the write reaches the base
    assert ours._data is storage and ours._version == version + 1
    if torch is not None:
        theirs = torch.zeros(2, 3, dtype=getattr(torch, dtype))
        theirs[0].fill_(value)
        assert ours.tolist() == theirs.tolist()
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        dl.ones(3).expand(2, 3).zero_()


@pytest.mark.parametrize(
    "modify",
    [
        lambda t: t.add_(1),
        lambda t: t.mul_(2),
        lambda t: t.zero_(),
        lambda t: t.copy_(dl.ones(2)),
        lambda t: t.clamp_(0, 1),
        lambda t: t.__setitem__(0, 3.0),
        lambda t: t.__isub__(1),
        lambda t: t.view(2)[0].fill_(1.0),
    ],
)
def test_changing_a_tensor_backward_needs_raises_at_backward(modify):
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    z = y * y  # saves y
    modify(y)  # no error yet, as in PyTorch
    with pytest.raises(
        RuntimeError,
        match=r"modified by an inplace operation: \[float32 \[2\]\], which is saved by MulBackward0",
    ):
        z.sum().backward()


def test_changing_an_output_that_backward_needs_raises():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # saves its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match="saved by ExpBackward0, is at version 1; expected version 0"):
        y.sum().backward()


def test_changing_a_tensor_backward_does_not_need_is_fine():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = x + 1  # add saves nothing
    y.mul_(3)
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


@pytest.mark.parametrize(
    "modify",
    [
        lambda t: t.add_(1),
        lambda t: t.zero_(),
        lambda t: t.normal_(),
        lambda t: t.__setitem__(0, 1.0),
        lambda t: t.__imul__(2),
        lambda t: t.copy_(dl.ones(2)),
    ],
)
def test_inplace_on_a_leaf_that_requires_grad_raises(modify):
    w = dl.ones(2, requires_grad=True)
    with pytest.raises(
        RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"
    ):
        modify(w)
    with dl.no_grad():
        modify(w)  # what optimizers do
    assert w.requires_grad and w.is_leaf and w.grad_fn is None


def test_inplace_on_a_view_of_a_leaf_that_requires_grad_raises():
    w = dl.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        w[0].add_(1)


def test_inplace_with_an_operand_that_requires_grad_gives_history_to_a_plain_tensor():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    buffer = dl.zeros(2)
    buffer.add_(x * 3)
    assert buffer.requires_grad and buffer.grad_fn is not None
    buffer.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_inplace_into_an_expanded_tensor_is_refused():
    with pytest.raises(
        RuntimeError,
        match="more than one element of the written-to tensor refers to a single memory location",
    ):
        dl.ones(3, 1).expand(3, 4).add_(1)


# ---------------------------------------------------------------- views


VIEW_CASES = [
    ("slice_mul", lambda lib, b, x: b[1:3].mul_(x)),
    ("select_fill", lambda lib, b, x: b[0].fill_(2.0)),
    ("view_of_view", lambda lib, b, x: b[1:][1:3].mul_(x)),
    ("reshape_view", lambda lib, b, x: b.view(3, 2)[1].add_(x)),
    ("transpose_view", lambda lib, b, x: b.view(2, 3).t()[1].mul_(x)),
    ("setitem_on_view", lambda lib, b, x: b.view(2, 3)[:, 1].__setitem__(slice(None), x)),
    ("narrow_copy", lambda lib, b, x: b.narrow(0, 2, 2).copy_(x * x)),
    ("base_changed_after_view", None),
]


@pytest.mark.parametrize("name,update", VIEW_CASES, ids=[c[0] for c in VIEW_CASES])
def test_inplace_through_views_reaches_the_base(name, update):
    def fn(lib, a, x):
        b = a * 1
        if update is None:
            view = b[1:3]
            b.mul_(2)
            return view * x  # the view sees, and differentiates through, the base's change
        update(lib, b, x)
        return b * b

    check_op(fn, (6,), (2,))


def test_view_of_a_plain_buffer_filled_from_a_tensor_that_requires_grad():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    out = dl.zeros(2, 3)
    out[:, 1:].t()[0].copy_(x)  # a view of a view of a buffer without history
    assert out.tolist() == [[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]] and out.requires_grad
    (out * dl.arange(6.0).view(2, 3)).sum().backward()
    assert x.grad.tolist() == [1.0, 4.0]


def test_views_share_the_version_counter_with_their_base():
    x = dl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    base = x * 1
    row = base[1:]
    z = row * row  # saves the view
    base.add_(1)  # the base changes the memory the view covers
    assert row._version == base._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_advanced_indexing_copies_and_is_not_a_view():
    x = dl.arange(4.0)
    picked = x[[0, 1]]
    picked.add_(10)
    assert x.tolist() == [0.0, 1.0, 2.0, 3.0] and picked._version == 1 and x._version == 0


def test_reshape_of_a_non_contiguous_tensor_copies():
    x = dl.arange(6.0).view(2, 3)
    flat = x.t().reshape(-1)
    flat.zero_()
    assert x.sum().item() == 15.0
    assert np.shares_memory(x.view(-1).numpy(), x.numpy())


def test_a_view_given_new_data_or_detached_in_place_stops_following_its_base():
    x = dl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    base = x * 1
    view = base[1:]
    view.data = dl.zeros(2)
    view.add_(5.0)
    assert base.tolist() == [1.0, 2.0, 3.0] and view.tolist() == [5.0, 5.0]
    other = base[:2].detach_()
    assert not other.requires_grad and other.grad_fn is None
