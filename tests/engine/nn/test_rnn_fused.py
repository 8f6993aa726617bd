"""The fused recurrence node (``ops.recurrence``) and the recurrent layers that run on it."""

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.ops.recurrence import lstm_cell, recurrence
from tests.engine.nn.layer_check import check_layer
from tests.op_check import check_op

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _inputs(mode, steps=3, batch=2, hidden=3, bias=True, seed=0, features=2):
    """Float64 inputs of the node: x, h0, c0 (LSTM), W_ih, W_hh, b_ih and b_hh (or None)."""
    rng = np.random.default_rng(seed)
    size = GATES[mode] * hidden

    def make(*shape):
        return dl.tensor(rng.standard_normal(shape), requires_grad=True)

    c0 = make(batch, hidden) if mode == "LSTM" else None
    return (
        make(steps, batch, features),
        make(batch, hidden),
        c0,
        make(size, features),
        make(size, hidden),
        (make(size) if bias else None),
        (make(size) if bias else None),
    )


def _outputs(mode, reverse):
    def run(*inputs):
        return tuple(y for y in recurrence(mode, *inputs, reverse=reverse) if y is not None)

    return run


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("mode", MODES)
def test_recurrence_gradcheck(mode, reverse):
    assert dl.autograd.gradcheck(_outputs(mode, reverse), _inputs(mode))
    assert dl.autograd.gradcheck(_outputs(mode, reverse), _inputs(mode, steps=1, bias=False, seed=1))


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_recurrence_double_backward(mode):
    inputs = _inputs(mode, steps=2, batch=1, hidden=2)
    assert dl.autograd.gradgradcheck(_outputs(mode, True), inputs)
    # the rebuilt (create_graph) gradients are the fused backward's
    outputs = _outputs(mode, False)(*inputs)
    weights = [dl.tensor(np.random.default_rng(3).standard_normal(y.shape)) for y in outputs]
    wanted = [t for t in inputs if t is not None]
    plain = dl.autograd.grad(outputs, wanted, weights, retain_graph=True)
    graph = dl.autograd.grad(outputs, wanted, weights, create_graph=True)
    for a, b in zip(plain, graph, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", [*MODES, "LSTMCell"])
def test_backward_twice_leaves_the_incoming_gradients_alone(mode):
    """With a batch of one, a state and its transpose share memory: the gate-major LSTM's
    backward must copy what it updates, so the incoming gradients stay as they were and a second
    backward (retain_graph) gives the first one's gradients."""
    if mode == "LSTMCell":
        rng = np.random.default_rng(4)
        shapes = [(1, 4), (1, 2), (1, 2), *CELL_SHAPES[3:]]  # x, h and c: a batch of one
        inputs = [dl.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
        outputs = lstm_cell(*inputs)
    else:
        inputs = _inputs(mode, batch=1)
        outputs = _outputs(mode, False)(*inputs)
        inputs = [t for t in inputs if t is not None]
    weights = [dl.randn(*y.shape, dtype=y.dtype) for y in outputs]
    kept = [w.numpy().copy() for w in weights]
    first = dl.autograd.grad(outputs, inputs, weights, retain_graph=True)
    second = dl.autograd.grad(outputs, inputs, weights)
    for weight, before in zip(weights, kept, strict=True):
        np.testing.assert_array_equal(weight.numpy(), before)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("mode", MODES)
def test_gradient_of_last_states_only(mode):
    layer = {"LSTM": "LSTM", "GRU": "GRU"}.get(mode, "RNN")
    kwargs = {} if layer != "RNN" else {"nonlinearity": mode[4:].lower()}

    def call(lib, m, xs):
        _, state = m(xs[0])
        return state[-1] if isinstance(state, tuple) else state  # c_n alone for LSTM, h_n otherwise

    check_layer(lambda lib: getattr(lib.nn, layer)(3, 4, **kwargs), (5, 2, 3), call=call)


FUSED = [
    ("LSTM", dict(num_layers=2, bidirectional=True, batch_first=True), True),
    ("GRU", dict(num_layers=2, bidirectional=True), True),
    ("GRU", dict(bias=False, batch_first=True), True),
    ("RNN", dict(nonlinearity="relu", bidirectional=True), True),
    ("RNN", dict(num_layers=2, batch_first=True), False),
    ("LSTM", dict(bias=False), False),
]


@pytest.mark.parametrize("kind,kwargs,with_state", FUSED, ids=[f"{k}-{v}-{s}" for k, v, s in FUSED])
def test_layers_match_pytorch(kind, kwargs, with_state):
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    shape = (2, 6, 3) if kwargs.get("batch_first") else (6, 2, 3)
    states = [(layers, 2, 4)] * ((2 if kind == "LSTM" else 1) if with_state else 0)

    def call(lib, m, xs):
        if not with_state:
            return m(xs[0])
        return m(xs[0], (xs[1], xs[2]) if kind == "LSTM" else xs[1])

    check_layer(lambda lib: getattr(lib.nn, kind)(3, 4, **kwargs), shape, *states, call=call)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_float32_char_model_shape_matches_pytorch(kind):
    torch = pytest.importorskip("torch")
    ours = getattr(dl.nn, kind)(8, 16, num_layers=2)
    ref = getattr(torch.nn, kind)(8, 16, num_layers=2)
    ours.load_state_dict({k: dl.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((30, 4, 8)).astype(np.float32)
    out, _ = ours(dl.tensor(x))
    ref_out, _ = ref(torch.tensor(x))
    out.sum().backward()
    ref_out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref_out.detach().numpy(), atol=1e-5)
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(
            param.grad.numpy(), dict(ref.named_parameters())[name].grad.numpy(), atol=1e-4, err_msg=name
        )


@pytest.mark.parametrize("cell", [False, True], ids=["sequence", "LSTMCell"])
def test_saturated_lstm_gates_match_pytorch_without_overflow_warnings(cell):
    """Gates far into their tails: the LSTM's ``exp`` overflows to inf, which gives the sigmoid's
    limit 0 (the tests turn warnings into errors, so an overflow warning would fail here too)."""
    torch = pytest.importorskip("torch")
    kind = "LSTMCell" if cell else "LSTM"
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(8, 16)
    with torch.no_grad():
        for param in ref.parameters():
            param.mul_(400)
    ours = getattr(dl.nn, kind)(8, 16)
    ours.load_state_dict({k: dl.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4, 8)).astype(np.float32)
    inputs = (x[0],) if cell else (x,)
    out = ours(*(dl.tensor(a) for a in inputs))[0]
    ref_out = ref(*(torch.tensor(a) for a in inputs))[0]
    assert np.isfinite(out.detach().numpy()).all()
    pre_activations = x[0] @ next(ref.parameters()).detach().numpy().T  # the input weights
    assert pre_activations.min() < -100  # exp(-x) overflows float32 beyond 88.7
    # weights 400 times their size: float32 rounding of the pre-activations (sums of magnitude
    # 100 and more, rounded at about 1e-5) shows in the outputs and gradients at up to 1e-4
    np.testing.assert_allclose(out.detach().numpy(), ref_out.detach().numpy(), atol=1e-4)
    out.sum().backward()
    ref_out.sum().backward()
    for name, param in ours.named_parameters():
        theirs = dict(ref.named_parameters())[name].grad.numpy()
        np.testing.assert_allclose(param.grad.numpy(), theirs, rtol=1e-3, atol=1e-4, err_msg=name)


def test_layers_run_one_fused_node_per_direction_and_packed_input_runs_the_cells():
    lstm = dl.nn.LSTM(3, 4)
    out, (h, c) = lstm(dl.randn(5, 2, 3))
    assert out.grad_fn.name() == "RecurrenceBackward0" and c.grad_fn is not None
    packed = dl.nn.utils.rnn.pack_padded_sequence(dl.randn(5, 2, 3), [5, 3])
    assert lstm(packed)[0].data.grad_fn.name() != "RecurrenceBackward0"


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_an_input_of_another_dtype_than_the_weights_is_refused_as_pytorch_does(kind):
    layer = getattr(dl.nn, kind)(3, 4)
    with pytest.raises(ValueError, match="RNN input dtype .*float64.* does not match weight dtype .*float32"):
        layer(dl.randn(5, 2, 3, dtype=dl.float64))
    packed = dl.nn.utils.rnn.pack_padded_sequence(dl.randn(5, 2, 3, dtype=dl.float64), [5, 3])
    with pytest.raises(ValueError, match="does not match weight dtype"):
        layer(packed)


def test_no_grad_gives_the_same_values():
    gru = dl.nn.GRU(3, 4, bidirectional=True)
    x = dl.randn(5, 2, 3)
    out, h = gru(x)
    with dl.no_grad():
        out_ng, h_ng = gru(x)
    assert out_ng.grad_fn is None
    np.testing.assert_array_equal(out.detach().numpy(), out_ng.numpy())
    np.testing.assert_array_equal(h.detach().numpy(), h_ng.numpy())


def test_changing_an_output_in_place_before_backward_raises():
    out, _ = dl.nn.RNN(3, 4)(dl.randn(5, 2, 3))
    out.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


# =============================================================== the fused LSTM cell

CELL_SHAPES = [(3, 4), (3, 2), (3, 2), (8, 4), (8, 2), (8,), (8,)]  # x, h, c, W_ih, W_hh, b_ih, b_hh


def _torch_lstm_cell(lib, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    return lib.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_lstm_cell_matches_pytorch(bias):
    shapes = CELL_SHAPES if bias else CELL_SHAPES[:5]
    check_op(lambda lib, *xs: lstm_cell(*xs, *[None] * (7 - len(xs))), *shapes, torch_fn=_torch_lstm_cell)
    # only one of the two states feeds the loss: the other's gradient arrives as None
    check_op(
        lambda lib, *xs: lstm_cell(*xs)[0],
        *CELL_SHAPES,
        torch_fn=lambda lib, *xs: _torch_lstm_cell(lib, *xs)[0],
    )
    check_op(
        lambda lib, *xs: lstm_cell(*xs)[1],
        *CELL_SHAPES,
        torch_fn=lambda lib, *xs: _torch_lstm_cell(lib, *xs)[1],
    )


def test_lstm_cell_double_backward():
    rng = np.random.default_rng(2)
    inputs = [
        dl.tensor(rng.standard_normal(s), requires_grad=True)
        for s in [(1, 2), (1, 2), (1, 2), (8, 2), (8, 2), (8,), (8,)]
    ]
    assert dl.autograd.gradgradcheck(lstm_cell, inputs)
    outputs = lstm_cell(*inputs)
    weights = [dl.tensor(rng.standard_normal(y.shape)) for y in outputs]
    plain = dl.autograd.grad(outputs, inputs, weights, retain_graph=True)
    graph = dl.autograd.grad(outputs, inputs, weights, create_graph=True)
    for a, b in zip(plain, graph, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_cell_module_runs_one_node_per_call():
    h, c = dl.nn.LSTMCell(3, 4)(dl.randn(2, 3))
    assert h.grad_fn is c.grad_fn and h.grad_fn.name() == "LSTMCellStepBackward0"


CELL_ERRORS = [
    ("LSTMCell", (3, 5), None),
    ("LSTMCell", (3, 4), ((3, 5), (3, 6))),
    ("LSTMCell", (3, 4), ((3, 6), (2, 6))),
    ("GRUCell", (3, 4), (3, 5)),
    ("RNNCell", (3, 4), (2, 6)),
]


@pytest.mark.parametrize("kind,x_shape,state_shapes", CELL_ERRORS)
def test_cell_input_errors_match_pytorch(kind, x_shape, state_shapes):
    torch = pytest.importorskip("torch")

    def message(lib):
        states = state_shapes
        if states is not None:
            states = (
                tuple(lib.zeros(s) for s in states) if isinstance(states[0], tuple) else lib.zeros(states)
            )
        with pytest.raises(RuntimeError) as error:
            getattr(lib.nn, kind)(4, 6)(lib.zeros(x_shape), states)
        return str(error.value)

    assert message(dl) == message(torch)
    with pytest.raises(RuntimeError, match="must have the same dtype"):
        dl.nn.LSTMCell(4, 6)(dl.zeros(3, 4, dtype=dl.float64))
