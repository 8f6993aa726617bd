import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.nn.layer_check import check_layer, gradcheck_layer

RECURRENT = [
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2)),
    ("RNN", dict(bidirectional=True, bias=False)),
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(batch_first=True, num_layers=2)),
    ("GRU", dict()),
    ("GRU", dict(num_layers=3, batch_first=True, bidirectional=True)),
]


@pytest.mark.parametrize("kind,kwargs", RECURRENT, ids=[f"{k}-{v}" for k, v in RECURRENT])
def test_recurrent_layers_match_pytorch(kind, kwargs):
    shape = (3, 5, 4) if kwargs.get("batch_first") else (5, 3, 4)
    check_layer(lambda lib: getattr(lib.nn, kind)(4, 6, **kwargs), shape)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_with_initial_state_and_unbatched_input(kind):
    layers = 2 * 2
    if kind == "LSTM":
        call = lambda lib, m, xs: m(xs[0], (xs[1], xs[2]))  # noqa: E731
        check_layer(lambda lib: lib.nn.LSTM(4, 6, 2, bidirectional=True), (5, 3, 4), (layers, 3, 6), (layers, 3, 6), call=call)
        check_layer(lambda lib: lib.nn.LSTM(4, 6), (5, 4), (1, 6), (1, 6), call=call)
    else:
        call = lambda lib, m, xs: m(xs[0], xs[1])  # noqa: E731
        check_layer(lambda lib: getattr(lib.nn, kind)(4, 6, 2, bidirectional=True), (5, 3, 4), (layers, 3, 6), call=call)
        check_layer(lambda lib: getattr(lib.nn, kind)(4, 6), (5, 4), (1, 6), call=call)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_pytorch(kind):
    check_layer(lambda lib: getattr(lib.nn, kind)(4, 6), (3, 4))
    check_layer(lambda lib: getattr(lib.nn, kind)(4, 6, bias=False), (4,))
    if kind == "LSTMCell":
        check_layer(lambda lib: lib.nn.LSTMCell(4, 6), (3, 4), (3, 6), (3, 6), call=lambda lib, m, xs: m(xs[0], (xs[1], xs[2])))
    else:
        check_layer(lambda lib: getattr(lib.nn, kind)(4, 6), (3, 4), (3, 6))


@pytest.mark.parametrize("layer", [nn.RNN(2, 3), nn.LSTM(2, 2, bidirectional=True), nn.GRU(2, 2, num_layers=2)], ids=["rnn", "lstm", "gru"])
def test_recurrent_gradcheck(layer):
    gradcheck_layer(layer, (3, 1, 2), call=lambda m, xs: m(xs[0])[0])


def test_parameter_names_shapes_and_repr_match_pytorch():
    torch = pytest.importorskip("torch")
    for make in (
        lambda lib: lib.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, dropout=0.2),
        lambda lib: lib.nn.GRU(3, 5, bias=False),
        lambda lib: lib.nn.RNN(3, 5, nonlinearity="relu"),
        lambda lib: lib.nn.GRUCell(3, 5),
        lambda lib: lib.nn.RNNCell(3, 5, nonlinearity="relu"),
    ):
        ours, ref = make(dl), make(torch)
        assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == [(n, tuple(p.shape)) for n, p in ref.named_parameters()]
        assert repr(ours) == repr(ref)
    lstm = nn.LSTM(3, 16)
    bound = 1 / 4
    for p in lstm.parameters():
        assert np.abs(p.detach().numpy()).max() <= bound


def test_rnn_dropout_between_layers_only_in_training():
    rnn = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = dl.randn(5, 2, 3)
    rnn.eval()
    first, _ = rnn(x)
    second, _ = rnn(x)
    assert np.array_equal(first.detach().numpy(), second.detach().numpy())
    rnn.train()
    dl.manual_seed(0)
    a, _ = rnn(x)
    dl.manual_seed(1)
    b, _ = rnn(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.3)


def test_long_sequence_backward_is_linear_and_float32():
    lstm = nn.LSTM(8, 16)
    x = dl.randn(200, 4, 8, requires_grad=True)
    output, (h, c) = lstm(x)
    (output.sum() + c.sum()).backward()
    assert output.dtype == dl.float32 and x.grad.dtype == dl.float32 and lstm.weight_hh_l0.grad.dtype == dl.float32
    assert dl.isfinite(x.grad).all()


def test_recurrent_errors():
    lstm = nn.LSTM(4, 6, num_layers=2)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 3"):
        lstm(dl.randn(5, 2, 3))
    with pytest.raises(RuntimeError, match="Expected hidden size \\(2, 2, 6\\), got \\[1, 2, 6\\]"):
        lstm(dl.randn(5, 2, 4), (dl.zeros(1, 2, 6), dl.zeros(1, 2, 6)))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        lstm(dl.randn(1, 5, 2, 4))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")


LENGTHS = [3, 5, 2, 4]


def _packed_call(batch_first=False, enforce_sorted=False, with_state=False):
    def call(lib, m, xs):
        rnn_utils = lib.nn.utils.rnn
        lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
        packed = rnn_utils.pack_padded_sequence(xs[0], lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
        state = None
        if with_state:
            state = (xs[1], xs[2]) if isinstance(m, lib.nn.LSTM) else xs[1]
        output, hidden = m(packed, state)
        padded, out_lengths = rnn_utils.pad_packed_sequence(output, batch_first=batch_first, total_length=6)
        assert out_lengths.tolist() == lengths
        return padded, hidden

    return call


@pytest.mark.parametrize("kind,kwargs", [("LSTM", dict(num_layers=2, bidirectional=True)), ("GRU", dict(batch_first=True)), ("RNN", dict(bidirectional=True))])
def test_packed_sequences_match_pytorch(kind, kwargs):
    batch_first = kwargs.get("batch_first", False)
    shape = (4, 6, 3) if batch_first else (6, 4, 3)
    check_layer(lambda lib: getattr(lib.nn, kind)(3, 5, **kwargs), shape, call=_packed_call(batch_first))
    states = [(2 * kwargs.get("num_layers", 1) if kwargs.get("bidirectional") else kwargs.get("num_layers", 1), 4, 5)]
    if kind == "LSTM":
        states *= 2
    check_layer(lambda lib: getattr(lib.nn, kind)(3, 5, **kwargs), shape, *states, call=_packed_call(batch_first, with_state=True))
    check_layer(lambda lib: getattr(lib.nn, kind)(3, 5, **kwargs), shape, call=_packed_call(batch_first, enforce_sorted=True))


def test_pack_and_pad_helpers_match_pytorch():
    torch = pytest.importorskip("torch")
    seqs = [np.random.default_rng(i).standard_normal((n, 2)) for i, n in enumerate(LENGTHS)]
    ours = dl.nn.utils.rnn.pack_sequence([dl.tensor(s) for s in seqs], enforce_sorted=False)
    ref = torch.nn.utils.rnn.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    padded = dl.nn.utils.rnn.pad_sequence([dl.tensor(s) for s in seqs], batch_first=True, padding_value=-1.0, padding_side="left")
    ref_padded = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=True, padding_value=-1.0, padding_side="left")
    np.testing.assert_array_equal(padded.numpy(), ref_padded.numpy())
    unpacked, lengths = dl.nn.utils.rnn.pad_packed_sequence(ours, padding_value=7.0)
    ref_unpacked, ref_lengths = torch.nn.utils.rnn.pad_packed_sequence(ref, padding_value=7.0)
    np.testing.assert_array_equal(unpacked.numpy(), ref_unpacked.numpy())
    assert lengths.tolist() == ref_lengths.tolist()
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        dl.nn.utils.rnn.pack_padded_sequence(dl.zeros(5, 4, 2), LENGTHS)
    with pytest.raises(RuntimeError, match="has to be greater than 0"):
        dl.nn.utils.rnn.pack_padded_sequence(dl.zeros(5, 2, 2), [3, 0])
