"""``compile``: a captured training step replays to the same weights as eager mode, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import dltool.engine as dl
from benchmarks.models import cnn, lenet, mlp
from dltool.engine.jit import Unsupported
from dltool.models.language import RNNLanguageModel


@pytest.fixture(autouse=True)
def fixed_threads(monkeypatch):
    """One BLAS thread throughout, never fitted to the load: a matrix product's bits depend on the
    thread count."""
    monkeypatch.delenv("DLTOOL_ADAPTIVE_THREADS", raising=False)
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _lm(lib, cell):
    return RNNLanguageModel(
        vocab_size=12, embedding_dim=8, hidden_size=8, num_layers=2, cell=cell, dropout=0.2
    )


class _Setup:
    """A model, Adam with a step scheduler, and a step function: loss, backward, clip, update."""

    def __init__(self, build, clip=None, hook=False):
        dl.manual_seed(0)
        self.model = build(dl)
        self.optimizer = dl.optim.Adam(self.model.parameters(), lr=1e-2)
        self.scheduler = dl.optim.lr_scheduler.StepLR(self.optimizer, step_size=10, gamma=0.5)
        self.loss_fn = dl.nn.CrossEntropyLoss()
        self.clip = clip
        if hook:  # doubles the first layer's weight gradient
            next(iter(self.model.parameters())).register_hook(lambda grad: grad * 2)

    def step(self, x, y):
        self.optimizer.zero_grad()
        out = self.model(x)
        if isinstance(out, tuple):  # a language model: logits and state
            out = out[0].reshape(-1, out[0].shape[-1])
        loss = self.loss_fn(out, y)
        loss.backward()
        if self.clip is not None:
            dl.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return loss


def _batches(kind, count, batch=4):
    rng = np.random.default_rng(1)
    for _ in range(count):
        if kind == "lm":
            x = dl.tensor(rng.integers(0, 12, (batch, 5)))
            y = dl.tensor(rng.integers(0, 12, batch * 5))
        else:
            shape = (batch, 784) if kind == "flat" else (batch, 1, 28, 28)
            x = dl.tensor(rng.standard_normal(shape).astype(np.float32))
            y = dl.tensor(rng.integers(0, 10, batch))
        yield x, y


def _train(build, kind, compiled, steps, **options):
    setup = _Setup(build, **options)
    step = dl.compile(setup.step) if compiled else setup.step
    losses = []
    for x, y in _batches(kind, steps):
        losses.append(step(x, y).item())
        setup.scheduler.step()
    state = {k: v.detach().numpy().copy() for k, v in setup.model.state_dict().items()}
    return losses, state, step, setup


def _assert_same(eager, compiled):
    assert eager[0] == compiled[0]
    assert eager[1].keys() == compiled[1].keys()
    for key in eager[1]:
        np.testing.assert_array_equal(eager[1][key], compiled[1][key], err_msg=key)


@pytest.mark.parametrize(
    ("build", "kind", "steps"),
    [
        (mlp, "flat", 50),
        (lenet, "image", 50),
        (cnn, "image", 50),  # BatchNorm's running statistics and two dropout masks per step
        (lambda lib: _lm(lib, "lstm"), "lm", 50),
        (lambda lib: _lm(lib, "gru"), "lm", 50),
    ],
    ids=["mlp", "lenet", "cnn", "lstm", "gru"],
)
def test_shipped_models_train_to_the_eager_weights(build, kind, steps):
    eager = _train(build, kind, False, steps, clip=1.0)
    compiled = _train(build, kind, True, steps, clip=1.0)
    _assert_same(eager, compiled)
    assert compiled[2].captures == 1  # every later step was a replay
    assert compiled[3].optimizer.param_groups[0]["lr"] < 1e-2  # the scheduler's lr reached the replay


def test_grad_clipping_and_parameter_hooks_replay():
    eager = _train(mlp, "flat", False, 10, clip=0.05, hook=True)
    compiled = _train(mlp, "flat", True, 10, clip=0.05, hook=True)
    _assert_same(eager, compiled)
    assert "GradOf" in str(compiled[2].graph) and "Write" in str(compiled[2].graph)


def test_a_hook_changes_the_replayed_result():
    """The hook is called on replay (the check above could not tell a skipped hook otherwise)."""
    plain = _train(mlp, "flat", True, 5)
    hooked = _train(mlp, "flat", True, 5, hook=True)
    assert plain[0][1:] != hooked[0][1:]


def test_post_accumulate_grad_hooks_run_on_replay():
    """Each replayed backward calls them after the accumulation, as DistributedDataParallel needs."""

    def train(compiled):
        calls = []

        def double(param):  # in place on the accumulated gradient, as DDP's averaging writes
            calls.append(1)
            param.grad._data *= 2

        setup = _Setup(mlp)
        next(iter(setup.model.parameters())).register_post_accumulate_grad_hook(double)
        step = dl.compile(setup.step) if compiled else setup.step
        for x, y in _batches("flat", 5):
            step(x, y)
        assert not compiled or step.captures == 1  # the later steps were replays
        return len(calls), {k: v.detach().numpy().copy() for k, v in setup.model.state_dict().items()}

    (eager_calls, eager), (compiled_calls, compiled) = train(False), train(True)
    assert eager_calls == compiled_calls == 5
    for key in eager:
        np.testing.assert_array_equal(eager[key], compiled[key], err_msg=key)


def test_dropout_draws_from_the_default_generator_stream():
    model = dl.nn.Dropout(0.5)
    f = dl.compile(lambda x: model(x) * 1.0)
    x = dl.ones(64)
    dl.manual_seed(3)
    replayed = [f(x).numpy() for _ in range(3)]
    dl.manual_seed(3)
    eager = [(model(x) * 1.0).numpy() for _ in range(3)]
    for a, b in zip(eager, replayed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(replayed[1], replayed[2])  # a new mask each step


def test_batchnorm_running_stats_update_on_replay():
    bn = dl.nn.BatchNorm1d(3)
    f = dl.compile(lambda x: bn(x).sum())
    rng = np.random.default_rng(0)
    with dl.no_grad():
        for _ in range(3):
            f(dl.tensor(rng.standard_normal((5, 3)).astype(np.float32)))
    assert f.captures == 1
    assert int(bn.num_batches_tracked) == 3
    reference = dl.nn.BatchNorm1d(3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        reference(dl.tensor(rng.standard_normal((5, 3)).astype(np.float32)))
    np.testing.assert_array_equal(bn.running_mean.numpy(), reference.running_mean.numpy())
    np.testing.assert_array_equal(bn.running_var.numpy(), reference.running_var.numpy())


def test_no_grad_evaluation_and_eval_mode_are_guarded():
    dl.manual_seed(0)
    model = cnn(dl)
    compiled = dl.compile(model)
    x = dl.tensor(np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32))
    model.eval()
    with dl.no_grad():
        first, again = compiled(x), compiled(x)
        expected = model(x)
    np.testing.assert_array_equal(first.numpy(), expected.numpy())
    np.testing.assert_array_equal(again.numpy(), expected.numpy())
    model.train()
    with dl.no_grad():
        compiled(x)  # training mode: batch statistics, a new capture
    assert compiled._compiled.captures == 2


def test_a_new_batch_size_captures_again():
    setup = _Setup(mlp)
    step = dl.compile(setup.step)
    for x, y in [*_batches("flat", 2, batch=4), *_batches("flat", 2, batch=3), *_batches("flat", 1, batch=4)]:
        step(x, y)
    assert step.captures == 2  # batch 4, batch 3; the last call replayed the first capture


def test_too_many_captures_fall_back_to_eager_once():
    f = dl.compile(lambda x: x * 2)
    with pytest.warns(UserWarning, match="cache_size_limit"):
        for n in range(1, 12):
            assert f(dl.ones(n)).shape == (n,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(f(dl.ones(20)).numpy(), np.full(20, 2.0, dtype=np.float32))


def test_reading_a_value_into_python_falls_back_with_one_warning():
    calls = []

    def step(x):
        calls.append(1)
        y = x * 2
        return y * 3 if float(y.sum()) > 0 else y

    f = dl.compile(step)
    with pytest.warns(UserWarning, match=r"runs eagerly: a tensor's value read into Python"):
        first = f(dl.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = f(-dl.ones(3))
    np.testing.assert_array_equal(first.numpy(), np.full(3, 6.0, dtype=np.float32))
    np.testing.assert_array_equal(second.numpy(), np.full(3, -2.0, dtype=np.float32))  # eager branch
    assert len(calls) == 2  # the capture's run is the step: nothing ran twice


def test_fullgraph_raises_and_outside_tensors_are_refused():
    outside = dl.tensor(np.arange(3, dtype=np.float32))
    with pytest.raises(Unsupported, match="no parameter or buffer"):
        dl.compile(lambda x: x + outside, fullgraph=True)(dl.ones(3))


def test_random_draws_other_than_dropout_are_refused():
    with pytest.raises(Unsupported, match="random draw"):
        dl.compile(lambda x: x + dl.rand(3), fullgraph=True)(dl.ones(3))


def test_graph_returned_for_an_outside_backward_runs_eagerly():
    model = dl.nn.Linear(3, 1)
    compiled = dl.compile(model)
    with pytest.warns(UserWarning, match="require grad"):
        out = compiled(dl.ones(2, 3))
    out.sum().backward()
    assert model.weight.grad is not None


def test_replayed_program_reads_the_inputs_it_is_given():
    setup = _Setup(mlp)
    step = dl.compile(setup.step)
    batches = list(_batches("flat", 3))
    losses = [step(x, y).item() for x, y in batches]
    assert len(set(losses)) == 3


def _hooked_step(compiled):
    """An intermediate's hook and a module's forward hook registered inside the step, an in-place
    ReLU on an intermediate, a detached alias of it, and a bare tensor as the parameter."""
    dl.manual_seed(0)
    w = dl.randn(4, 3, requires_grad=True)
    layer = dl.nn.Linear(3, 2)
    layer.register_forward_hook(lambda module, args, out: out * 2)
    optimizer = dl.optim.SGD([w, *layer.parameters()], lr=0.1, momentum=0.9)

    def step(x):
        optimizer.zero_grad()
        h = x @ w
        h.register_hook(lambda grad: grad * 0.5)
        h.relu_()
        loss = layer(h).sum() + (h.detach() * 3).sum()
        loss.backward()
        optimizer.step()
        return loss

    f = dl.compile(step) if compiled else step
    losses = [f(dl.ones(2, 4) * (i - 1.5)).item() for i in range(5)]
    return losses, [p.detach().numpy().copy() for p in (w, *layer.parameters())], f


def test_hooks_in_place_ops_and_aliases_inside_the_step_replay():
    eager, compiled = _hooked_step(False), _hooked_step(True)
    assert eager[0] == compiled[0]
    for a, b in zip(eager[1], compiled[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert compiled[2].captures == 1


def test_a_replayed_step_peaks_no_higher_than_an_eager_one():
    import tracemalloc

    setup = _Setup(mlp)
    step = dl.compile(setup.step)
    x, y = next(_batches("flat", 1, batch=64))
    peaks = []
    for fn in (setup.step, setup.step, step, step, step):
        tracemalloc.start()
        fn(x, y)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    eager, replayed = peaks[1], peaks[4]  # steady state: Adam's state exists, the capture is done
    kept = sum(array.nbytes for array in _buffers(step).arrays)  # allocated before, held throughout
    assert replayed + kept <= eager * 1.02


def test_tensor_keyword_arguments_of_an_op_are_read_at_replay():
    class AddScaled(dl.autograd.Function):
        @staticmethod
        def forward(ctx, x, *, other, scale):
            return x._data + other._data * scale

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output

    f = dl.compile(lambda x, y: AddScaled.apply(x, other=y * 2, scale=3.0))
    for i in range(3):
        x, y = dl.ones(3) * i, dl.ones(3) * (i + 1)
        np.testing.assert_array_equal(f(x, y).numpy(), (x + y * 6).numpy())
    assert f.captures == 1


def _carried_state_run(cell, compiled):
    """A language model whose state runs on from step to step, detached (truncated BPTT)."""
    setup = _Setup(lambda lib: _lm(lib, cell), clip=1.0)

    def step(x, y, state):
        setup.optimizer.zero_grad()
        logits, state = setup.model(x, state)
        loss = setup.loss_fn(logits.reshape(-1, logits.shape[-1]), y)
        loss.backward()
        dl.nn.utils.clip_grad_norm_(setup.model.parameters(), 1.0)
        setup.optimizer.step()
        detached = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        return loss, detached

    f = dl.compile(step) if compiled else step
    losses, state = [], None
    for x, y in _batches("lm", 50):
        loss, state = f(x, y, state)
        losses.append(loss.item())
        setup.scheduler.step()
    weights = {k: v.detach().numpy().copy() for k, v in setup.model.state_dict().items()}
    return losses, weights, f


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_recurrent_state_carried_across_steps_replays_to_the_eager_weights(cell):
    eager, compiled = _carried_state_run(cell, False), _carried_state_run(cell, True)
    _assert_same(eager, compiled)
    assert compiled[2].captures == 2  # the first step (no state) and the others


def _buffers(f):
    return next(iter(f._cache.values())).program.buffers


def test_kernels_write_into_buffers_allocated_once():
    x = dl.tensor(np.random.default_rng(0).random((4, 4), dtype=np.float32), requires_grad=True)

    def step(x):
        y = x
        for _ in range(6):
            y = ((y * 1.5 + 0.25).tanh() - 0.5).relu() * y
        loss = y.sum()
        loss.backward()
        return loss

    f = dl.compile(step)
    for _ in range(3):
        eager = step(x).item(), x.grad.numpy().copy()
        x.grad = None
        compiled = f(x).item(), x.grad.numpy().copy()
        x.grad = None
        assert eager[0] == compiled[0]
        np.testing.assert_array_equal(eager[1], compiled[1])
    buffers = _buffers(f)
    assert len(buffers.of) == 36  # every op's output but the sum's
    assert len(buffers.arrays) < 36  # values dead before backward share
    source = next(iter(f._cache.values())).program.source
    assert "out=B" in source
    assert "subtract(1, x, out=x)" in source  # tanh's backward, inline, its temporary reused


def test_an_escaping_view_of_a_kernel_output_is_not_overwritten_by_the_next_replay():
    f = dl.compile(lambda x: ((x * 2.0).reshape(-1), (x + 1.0).tanh().sum()))
    first = f(dl.ones(2, 3))
    kept = first[0].numpy().copy()
    for _ in range(2):
        again = f(dl.ones(2, 3) * 5)
    np.testing.assert_array_equal(first[0].numpy(), kept)
    np.testing.assert_array_equal(again[0].numpy(), np.full(6, 10.0, dtype=np.float32))
    assert f.captures == 1
    buffers = _buffers(f)
    assert len(buffers.of) == 2  # x + 1.0 and its tanh; x * 2.0 escapes through its view


@pytest.mark.parametrize("rows", [4, 512], ids=["buffered", "allocating"])
def test_every_inline_kernel_gives_the_eager_bits(rows):
    """Each op of ``_program.KERNELS``, small (into buffers) and large (allocated), and broadcast."""
    from dltool.engine.jit._program import KERNELS

    dl.manual_seed(0)
    layer = dl.nn.Linear(16, 16)
    b = dl.randn(16, requires_grad=True)

    def step(x):
        y = (x / 3.0 + b) - b * x / (b + 2.0)
        y = layer((y * 0.5 - 1.5).tanh().relu())
        loss = y.sum()
        loss.backward()
        return loss, y

    f = dl.compile(step)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = dl.tensor(rng.standard_normal((rows, 16)).astype(np.float32), requires_grad=True)
        results = []
        for fn in (step, f):
            loss, y = fn(x)
            arrays = (loss, y, x.grad, b.grad, layer.weight.grad)
            results.append([t.detach().numpy().copy() for t in arrays])
            x.grad = b.grad = layer.weight.grad = layer.bias.grad = None
        for a, c in zip(*results, strict=True):
            np.testing.assert_array_equal(a, c)
    source = next(iter(f._cache.values())).program.source
    for op in KERNELS:
        assert KERNELS[op][0].split("(")[0] + "(" in source, op.__name__
    assert ("tanh(B" in source) == (rows == 4)  # 4 x 16 into a buffer; 512 x 16 past BUFFER_LIMIT
    assert ("r = tanh(" in source) == (rows == 512)
