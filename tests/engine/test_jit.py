"""``jit.trace``: the recorded graph, bit-for-bit replay, live parameters, guards and warnings."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import jit
from dltool.engine.autograd import function
from dltool.engine.utils._structure import leaves
from dltool.models.cnn import CNN
from dltool.models.language import RNNLanguageModel
from dltool.models.mlp import MLP


def _same(a: dl.Tensor, b: dl.Tensor) -> bool:
    return a.shape == b.shape and np.array_equal(a.detach().numpy(), b.detach().numpy())


def test_the_graph_and_code_name_each_op_its_values_and_the_parameters() -> None:
    model = MLP((1, 4, 4), 3, hidden_sizes=(5,)).eval()
    traced = jit.trace(model, dl.randn(2, 1, 4, 4))
    text = str(traced.graph)
    assert text.startswith("graph(%x : float32[2, 1, 4, 4],")
    assert "%layers.1.weight : float32[5, 16]" in text
    assert "%0 : float32[2, 16] = Reshape(%x, shape=(2, 16))" in text
    assert "= Linear(%0, %layers.1.weight, %layers.1.bias)" in text
    assert text.rstrip().endswith("return %3")
    assert [n.kind for n in traced.graph.nodes] == ["Reshape", "Linear", "Relu", "Linear"]
    code = traced.code
    assert (
        code.startswith("def forward(x):")
        and "v1 = ops.linalg.Linear(v0, layers_1_weight, layers_1_bias)" in code
    )


@pytest.mark.parametrize(
    ("make", "inputs"),
    [
        (lambda: CNN((1, 8, 8), 4, channels=(3,), hidden_size=6), lambda n: dl.randn(n, 1, 8, 8)),
        (
            lambda: RNNLanguageModel(11, embedding_dim=4, hidden_size=5, num_layers=2),
            lambda n: dl.randint(0, 11, (n, 6)),
        ),
        (
            lambda: RNNLanguageModel(11, embedding_dim=4, hidden_size=5, cell="gru"),
            lambda n: dl.randint(0, 11, (n, 6)),
        ),
    ],
    ids=["cnn", "lstm", "gru"],
)
def test_replay_equals_eager_bit_for_bit_and_follows_a_new_batch_size(make, inputs) -> None:
    model = make().eval()
    traced = jit.trace(model, inputs(3))
    for n in (3, 5, 3):
        x = inputs(n)
        with dl.no_grad():
            want, got = model(x), traced(x)
        want, got = leaves(want, dl.Tensor), leaves(got, dl.Tensor)
        assert len(want) == len(got) and all(_same(w, g) for w, g in zip(want, got, strict=True))


def test_a_shape_seen_before_replays_without_running_python() -> None:
    calls = []

    def double(x: dl.Tensor) -> dl.Tensor:
        calls.append(x.shape)
        return x * 2 + 1

    traced = jit.trace(double, dl.ones(2), check_trace=False)
    assert _same(traced(dl.tensor([1.0, 2.0])), dl.tensor([3.0, 5.0]))
    assert _same(traced(dl.ones(3)), dl.full((3,), 3.0))  # a new shape records again
    assert _same(traced(dl.zeros(3)), dl.ones(3))
    assert calls == [(2,), (3,)]


def test_parameters_are_read_live_after_an_optimizer_step() -> None:
    model = MLP((6,), 2, hidden_sizes=(4,), dropout=0.0)
    traced = jit.trace(model, dl.randn(3, 6))
    optimizer = dl.optim.SGD(model.parameters(), lr=0.5)
    x = dl.randn(3, 6)
    before = traced(x).detach()
    traced(x).sum().backward()  # the replay keeps autograd, through the same parameters
    optimizer.step()
    after = traced(x)
    assert not _same(before, after) and _same(after, model(x))


def test_replay_with_autograd_gives_the_eager_gradients() -> None:
    model = CNN((1, 8, 8), 4, channels=(3,), hidden_size=6).eval()
    x = dl.randn(2, 1, 8, 8)
    traced = jit.trace(model, x)
    model(x).square().sum().backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    traced(x).square().sum().backward()
    assert all(_same(e, p.grad) for e, p in zip(eager, model.parameters(), strict=True))


def test_a_replaced_parameter_or_a_mode_change_records_again() -> None:
    model = MLP((6,), 2, hidden_sizes=(4,), dropout=0.5).eval()
    traced = jit.trace(model, dl.randn(3, 6))
    model.layers[1].weight = dl.nn.Parameter(dl.zeros(4, 6))
    x = dl.randn(3, 6)
    assert _same(traced(x), model(x))
    model.layers[4] = dl.nn.Linear(4, 2)
    assert _same(traced(x), model(x))
    traced.train()
    dl.manual_seed(1)
    dropped = traced(x)
    dl.manual_seed(1)
    assert _same(dropped, model(x)) and model.training


def test_reading_a_traced_value_into_python_warns() -> None:
    def clipped(x: dl.Tensor) -> dl.Tensor:
        return x * 2 if x.sum() > 0 else -x

    with pytest.warns(jit.TracerWarning, match="Converting a tensor to a Python boolean"):
        traced = jit.trace(clipped, dl.ones(3), check_trace=False)
    assert _same(traced(-dl.ones(3)), -dl.full((3,), 2.0))  # the branch taken while tracing stays


def test_the_check_finds_work_done_outside_the_engines_ops() -> None:
    with pytest.raises(jit.TracingCheckError, match="differs from the Python function's"):
        jit.trace(lambda x: x.data.exp() + 1, dl.randn(4))


def test_an_in_place_change_of_a_traced_tensor_is_refused() -> None:
    def bump(x: dl.Tensor) -> dl.Tensor:
        y = x * 2
        y.add_(1)
        return y * 3

    with pytest.raises(RuntimeError, match="in-place change of a traced tensor"):
        jit.trace(bump, dl.ones(2))
    assert function._trace_hook is None  # the hook is off again after a failed trace


def _shift_input(x: dl.Tensor) -> dl.Tensor:
    y = x * 2
    x.add_(1)
    return y


def _write_into_input(x: dl.Tensor) -> dl.Tensor:
    y = x * 3
    x[:1].mul_(5)  # through a view
    return y


_TOTAL = dl.zeros(2)


def _accumulate_outside(x: dl.Tensor) -> dl.Tensor:
    _TOTAL.add_(x)
    return x * 2


@pytest.mark.parametrize(
    ("fn", "name"),
    [(_shift_input, "x"), (_write_into_input, "x"), (_accumulate_outside, "constant0")],
    ids=["input", "input-view", "outside"],
)
def test_an_in_place_change_of_an_input_or_an_outside_tensor_is_refused(fn, name) -> None:
    with pytest.raises(
        RuntimeError,
        match=rf"in-place change of an input or of a tensor held from outside the function \({name}\)",
    ):
        jit.trace(fn, dl.ones(2), check_trace=False)


def test_a_uniform_tensor_held_from_outside_is_read_at_each_replay() -> None:
    bias = dl.zeros(3)  # all one value, as a bias starts
    traced = jit.trace(lambda x: x + bias, dl.ones(3))
    bias.add_(dl.tensor([1.0, 2.0, 3.0]))
    x = dl.randn(3)
    assert _same(traced(x), x + bias) and "Full" not in str(traced.graph)
    made = jit.trace(lambda x: x + dl.zeros(3), dl.ones(3))  # made by the call: a Full node
    assert [n.kind for n in made.graph.nodes] == ["Full", "Add"]


@pytest.mark.parametrize(
    ("fn", "index", "other"),
    [
        (lambda x, i: x[i] * 2, dl.tensor([0, 1]), dl.tensor([2, 2])),
        (lambda x, i: x[i] * 2, dl.tensor(0), dl.tensor(2)),
        (lambda x, i: x[:, i + 1], dl.tensor([0]), dl.tensor([-1])),
    ],
    ids=["rows", "0-dim", "derived"],
)
def test_an_index_tensor_is_read_at_each_replay(fn, index, other) -> None:
    x = dl.arange(9.0).reshape(3, 3).requires_grad_()
    traced = jit.trace(fn, (x, index), check_trace=False)
    want, got = fn(x, other), traced(x, other)
    assert _same(got, want)
    (want_grad,) = dl.autograd.grad(want.sum(), x)
    (got_grad,) = dl.autograd.grad(got.sum(), x)
    assert _same(got_grad, want_grad)


def test_a_mask_index_warns_and_the_check_catches_it() -> None:
    with (
        pytest.warns(jit.TracerWarning, match="indices of its True elements"),
        pytest.raises(jit.TracingCheckError),
    ):
        jit.trace(lambda x: x[x > 0].sum(), dl.tensor([0.01, -0.01, 0.01, -0.01]))


def test_training_mode_batchnorm_warns_that_running_stats_are_not_replayed() -> None:
    model = dl.nn.Sequential(dl.nn.Conv2d(1, 2, 3), dl.nn.BatchNorm2d(2))
    with pytest.warns(
        jit.TracerWarning, match=r"changed 1\.num_batches_tracked, 1\.running_mean, 1\.running_var in place"
    ):
        jit.trace(model, dl.randn(2, 1, 5, 5))


def test_a_non_tensor_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"example_inputs\[1\] must be a Tensor, got int"):
        jit.trace(lambda x, n: x * n, (dl.ones(2), 3))


def test_a_traced_loss_follows_new_targets() -> None:
    loss = lambda logits, target: dl.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)  # noqa: E731
    logits = dl.randn(5, 4)
    traced = jit.trace(loss, (logits, dl.tensor([0, 1, 2, 3, 0])))
    other = dl.tensor([3, 3, 1, 0, 2])
    np.testing.assert_array_equal(traced(logits, other).numpy(), loss(logits, other).numpy())


def test_traced_dropout_draws_a_new_mask_each_call_from_the_eager_stream() -> None:
    model = dl.nn.Sequential(dl.nn.Linear(3, 3), dl.nn.Dropout(0.5)).train()
    x = dl.randn(64, 3)
    traced = jit.trace(model, (x,))
    assert "KeepMask" in str(traced.graph)
    with dl.no_grad():
        first, second = traced(x), traced(x)
        assert not np.array_equal(first.numpy(), second.numpy())
        dl.manual_seed(5)
        eager = model(x)
        dl.manual_seed(5)
        np.testing.assert_array_equal(traced(x).numpy(), eager.numpy())
