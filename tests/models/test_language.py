"""The language models: shapes, PyTorch parity of logits and gradients (weights copied into a
PyTorch twin with the same state-dict keys), carried recurrent state, causality, and errors."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.models.language import RNNLanguageModel, TransformerLanguageModel

torch = pytest.importorskip("torch")
tnn = torch.nn

from benchmarks.torch_twins import TorchRNNLanguageModel  # noqa: E402  (needs torch)

VOCAB = 11


class _TorchTransformerLM(tnn.Module):
    def __init__(self, d_model, nhead, num_layers, dim_feedforward, max_len):
        super().__init__()
        self.embedding = tnn.Embedding(VOCAB, d_model)
        self.position = tnn.Embedding(max_len, d_model)
        self.drop = tnn.Dropout(0.0)
        layer = tnn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, 0.0, batch_first=True, norm_first=True
        )
        self.encoder = tnn.TransformerEncoder(
            layer, num_layers, norm=tnn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.decoder = tnn.Linear(d_model, VOCAB)

    def forward(self, tokens, state=None):
        length = tokens.shape[1]
        x = self.drop(self.embedding(tokens) + self.position(torch.arange(length)))
        mask = tnn.Transformer.generate_square_subsequent_mask(length, dtype=x.dtype)
        return self.decoder(self.encoder(x, mask=mask, is_causal=True)), None


def _rnn(cell="lstm", tie_weights=False):
    size = 6 if tie_weights else 7
    kwargs = dict(embedding_dim=6, hidden_size=size, num_layers=2, cell=cell, tie_weights=tie_weights)
    return RNNLanguageModel(VOCAB, dropout=0.0, **kwargs), TorchRNNLanguageModel(VOCAB, **kwargs)


def _transformer():
    kwargs = dict(d_model=8, nhead=2, num_layers=2, dim_feedforward=16, max_len=9)
    return TransformerLanguageModel(VOCAB, dropout=0.0, **kwargs), _TorchTransformerLM(**kwargs)


def _tokens(shape=(3, 5), seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, shape)


def _states(state):
    """An LSTM's ``(h, c)`` or another cell's ``h``, as a list."""
    return list(state) if isinstance(state, tuple) else [state]


def _check_parity(model, twin, tokens):
    """Copy ``model``'s weights into ``twin`` (float64, eval mode); compare logits and gradients."""
    model, twin = model.double().eval(), twin.double().eval()
    twin.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    targets = np.roll(tokens, -1, axis=1)
    logits, _ = model(dl.tensor(tokens))
    torch_logits, _ = twin(torch.tensor(tokens))
    np.testing.assert_allclose(logits.detach().numpy(), torch_logits.detach().numpy(), rtol=1e-7, atol=1e-10)
    dl.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), dl.tensor(targets.reshape(-1))).backward()
    tnn.functional.cross_entropy(
        torch_logits.reshape(-1, VOCAB), torch.tensor(targets.reshape(-1))
    ).backward()
    torch_params = dict(twin.named_parameters())
    names = [name for name, _ in model.named_parameters()]
    assert names == list(torch_params)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(
            param.grad.numpy(), torch_params[name].grad.numpy(), rtol=1e-6, atol=1e-10, err_msg=name
        )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rnn_matches_pytorch(cell):
    _check_parity(*_rnn(cell), _tokens())


def test_rnn_with_tied_weights_matches_pytorch():
    model, twin = _rnn("lstm", tie_weights=True)
    assert model.decoder.weight is model.encoder.weight
    assert len(list(model.parameters())) == len(list(twin.parameters()))
    _check_parity(model, twin, _tokens())


def test_transformer_matches_pytorch():
    _check_parity(*_transformer(), _tokens((2, 9)))


@pytest.mark.parametrize(
    "cell,state_shapes", [("lstm", [(2, 3, 7)] * 2), ("gru", [(2, 3, 7)]), ("rnn", [(2, 3, 7)])]
)
def test_rnn_shapes(cell, state_shapes):
    logits, state = _rnn(cell)[0](dl.tensor(_tokens()))
    assert logits.shape == (3, 5, VOCAB)
    assert [tuple(s.shape) for s in _states(state)] == state_shapes


def test_transformer_shapes_and_no_state():
    logits, state = _transformer()[0](dl.tensor(_tokens((4, 9))))
    assert logits.shape == (4, 9, VOCAB) and state is None


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_carried_state_equals_one_call_on_the_whole_sequence(cell):
    model = _rnn(cell)[0].eval()
    tokens = dl.tensor(_tokens((3, 8)))
    whole, whole_state = model(tokens)
    first, state = model(tokens[:, :5])
    second, last_state = model(tokens[:, 5:], state)
    np.testing.assert_allclose(dl.cat([first, second], 1).detach().numpy(), whole.detach().numpy(), atol=1e-6)
    for carried, direct in zip(_states(last_state), _states(whole_state), strict=True):
        np.testing.assert_allclose(carried.detach().numpy(), direct.detach().numpy(), atol=1e-6)


def test_transformer_is_causal():
    model = _transformer()[0].eval()
    tokens = _tokens((2, 9))
    changed = tokens.copy()
    changed[:, 4] = (changed[:, 4] + 1) % VOCAB
    before, after = (model(dl.tensor(t))[0].detach().numpy() for t in (tokens, changed))
    np.testing.assert_array_equal(before[:, :4], after[:, :4])
    assert not np.allclose(before[:, 4:], after[:, 4:])


def test_errors():
    with pytest.raises(ValueError, match="cell must be one of 'lstm', 'gru', 'rnn', got 'LSTM'"):
        RNNLanguageModel(VOCAB, cell="LSTM")
    with pytest.raises(
        ValueError,
        match="tie_weights needs embedding_dim == hidden_size .* got embedding_dim=4 and hidden_size=8",
    ):
        RNNLanguageModel(VOCAB, embedding_dim=4, hidden_size=8, tie_weights=True)
    with pytest.raises(ValueError, match="a sequence of 10 tokens, longer than max_len=9"):
        _transformer()[0](dl.tensor(_tokens((1, 10))))
    for model in (_rnn()[0], _transformer()[0]):
        with pytest.raises(ValueError, match=r"expects token ids of shape \(N, T\), got shape \(5,\)"):
            model(dl.tensor(_tokens((5,))))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RNNLanguageModel(VOCAB, 6, 7, num_layers=1, dropout=0.5),  # no inter-layer dropout warning
        lambda: RNNLanguageModel(VOCAB, 6, 7, num_layers=2, cell="gru", dropout=0.5),
        lambda: TransformerLanguageModel(VOCAB, 8, 2, 1, 16, max_len=5, dropout=0.5),
    ],
)
def test_dropout_acts_in_training_only(make):
    model, tokens = make(), dl.tensor(_tokens())
    first, second = (model(tokens)[0].detach().numpy() for _ in range(2))
    assert not np.allclose(first, second)
    model.eval()
    first, second = (model(tokens)[0].detach().numpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)
