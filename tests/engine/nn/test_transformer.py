import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.nn.layer_check import check_layer, gradcheck_layer

pytestmark = [
    # PyTorch warns that its nested-tensor fast path is off for most layer configurations; dltool has none
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
    # PyTorch deprecates a float attention mask beside a bool padding mask; both libraries accept the mix
    pytest.mark.filterwarnings("ignore:Support for mismatched .* is deprecated:UserWarning"),
]

S, T, N, E, H, FF = 5, 4, 2, 8, 2, 16
SRC_PADDING = np.array([[False, False, False, False, False], [False, False, False, True, True]])
TGT_PADDING = np.array([[False, False, True, True], [False, False, False, False]])
GELU_ATOL = 1e-6  # gelu's erf is an approximation (1.2e-7 relative): float32-sized tolerances


def _causal(lib, size):
    return lib.nn.Transformer.generate_square_subsequent_mask(size, dtype=lib.float64)


def _masks(lib, masks):
    """Numpy masks become tensors; ``"causal_<n>"`` becomes the float causal mask of size n."""
    return {
        name: _causal(lib, int(value[7:]))
        if isinstance(value, str)
        else lib.tensor(value)
        if isinstance(value, np.ndarray)
        else value
        for name, value in masks.items()
    }


def _shapes(batch_first, *lengths):
    return [(N, n, E) if batch_first else (n, N, E) for n in lengths]


ENCODER_CASES = [
    (dict(), dict()),
    (dict(norm_first=True), dict(src_mask="causal_5", is_causal=True)),
    (dict(batch_first=True), dict(src_key_padding_mask=SRC_PADDING)),
    (
        dict(activation="gelu", norm_first=True, batch_first=True),
        dict(src_mask="causal_5", src_key_padding_mask=SRC_PADDING),
    ),
    (dict(bias=False, layer_norm_eps=1e-3), dict(src_mask=np.triu(np.ones((S, S), dtype=bool), 1))),
]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("make_kwargs,call_kwargs", ENCODER_CASES)
def test_transformer_encoder_layer_matches_pytorch(make_kwargs, call_kwargs, train):
    # dropout is off in eval mode; in train mode the parity run needs dropout=0.0
    dropout = 0.0 if train else 0.1
    atol = GELU_ATOL if make_kwargs.get("activation") == "gelu" else 1e-8
    check_layer(
        lambda lib: lib.nn.TransformerEncoderLayer(E, H, FF, dropout, **make_kwargs),
        *_shapes(make_kwargs.get("batch_first"), S),
        train=train,
        call=lambda lib, m, xs: m(*xs, **_masks(lib, call_kwargs)),
        atol=atol,
    )


DECODER_CASES = [
    (dict(), dict(tgt_mask="causal_4", tgt_is_causal=True)),
    (
        dict(norm_first=True, batch_first=True),
        dict(tgt_mask="causal_4", tgt_key_padding_mask=TGT_PADDING, memory_key_padding_mask=SRC_PADDING),
    ),
    (dict(activation="gelu"), dict(memory_mask=np.random.default_rng(1).standard_normal((T, S)))),
    (dict(bias=False, norm_first=True), dict(tgt_key_padding_mask=TGT_PADDING)),
]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("make_kwargs,call_kwargs", DECODER_CASES)
def test_transformer_decoder_layer_matches_pytorch(make_kwargs, call_kwargs, train):
    dropout = 0.0 if train else 0.1
    atol = GELU_ATOL if make_kwargs.get("activation") == "gelu" else 1e-8
    check_layer(
        lambda lib: lib.nn.TransformerDecoderLayer(E, H, FF, dropout, **make_kwargs),
        *_shapes(make_kwargs.get("batch_first"), T, S),
        train=train,
        call=lambda lib, m, xs: m(*xs, **_masks(lib, call_kwargs)),
        atol=atol,
    )


@pytest.mark.parametrize("train", [True, False])
def test_transformer_encoder_and_decoder_stacks_match_pytorch(train):
    dropout = 0.0 if train else 0.1

    def encoder(lib):
        layer = lib.nn.TransformerEncoderLayer(E, H, FF, dropout, norm_first=True)
        return lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(E), enable_nested_tensor=False)

    masks = dict(mask="causal_5", src_key_padding_mask=SRC_PADDING)
    check_layer(encoder, (S, N, E), train=train, call=lambda lib, m, xs: m(*xs, **_masks(lib, masks)))

    def decoder(lib):
        layer = lib.nn.TransformerDecoderLayer(E, H, FF, dropout, batch_first=True)
        return lib.nn.TransformerDecoder(layer, 2, norm=lib.nn.LayerNorm(E))

    masks = dict(tgt_mask="causal_4", memory_key_padding_mask=SRC_PADDING)
    check_layer(
        decoder, (N, T, E), (N, S, E), train=train, call=lambda lib, m, xs: m(*xs, **_masks(lib, masks))
    )


@pytest.mark.parametrize("make_kwargs", [dict(), dict(batch_first=True, norm_first=True, activation="gelu")])
def test_transformer_matches_pytorch(make_kwargs):
    batch_first = make_kwargs.get("batch_first", False)
    masks = dict(
        tgt_mask="causal_4",
        src_key_padding_mask=SRC_PADDING,
        tgt_key_padding_mask=TGT_PADDING,
        memory_key_padding_mask=SRC_PADDING,
    )
    check_layer(
        lambda lib: lib.nn.Transformer(E, H, 2, 1, FF, dropout=0.0, **make_kwargs),
        *_shapes(batch_first, S, T),
        call=lambda lib, m, xs: m(*xs, **_masks(lib, masks)),
        atol=GELU_ATOL if make_kwargs.get("activation") == "gelu" else 1e-8,
    )


def test_transformer_unbatched_input_and_callable_activation():
    masks = dict(tgt_mask="causal_4")
    check_layer(
        lambda lib: lib.nn.Transformer(E, H, 1, 1, FF, dropout=0.0, activation=lib.tanh),
        (S, E),
        (T, E),
        call=lambda lib, m, xs: m(*xs, **_masks(lib, masks)),
    )


def test_translation_style_encoder_decoder_forward_and_backward():
    vocab, pad = 11, 0
    rng = np.random.default_rng(3)
    src = rng.integers(1, vocab, (N, S))
    src[1, 3:] = pad
    target = rng.integers(1, vocab, (N, T + 1))
    target[0, 3:] = pad
    tgt_in, tgt_out = target[:, :-1], target[:, 1:]

    def translator(lib):
        class Translator(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.src_embed = lib.nn.Embedding(vocab, E, padding_idx=pad)
                self.tgt_embed = lib.nn.Embedding(vocab, E, padding_idx=pad)
                self.transformer = lib.nn.Transformer(E, H, 2, 2, FF, dropout=0.0, batch_first=True)
                self.generator = lib.nn.Linear(E, vocab)

            def forward(self, src, tgt):
                tgt_mask = self.transformer.generate_square_subsequent_mask(tgt.shape[1], dtype=lib.float64)
                hidden = self.transformer(
                    self.src_embed(src),
                    self.tgt_embed(tgt),
                    tgt_mask=tgt_mask,
                    src_key_padding_mask=src == pad,
                    tgt_key_padding_mask=tgt == pad,
                    memory_key_padding_mask=src == pad,
                    tgt_is_causal=True,
                )
                return self.generator(hidden)

        return Translator()

    def loss(lib, model, xs):
        logits = model(xs[0], xs[1])
        return lib.nn.functional.cross_entropy(logits.reshape(-1, vocab), xs[2].reshape(-1), ignore_index=pad)

    model, _ = check_layer(translator, arrays=[src, tgt_in, tgt_out], call=loss)
    optimizer = dl.optim.Adam(model.parameters(), lr=0.01)
    inputs = [dl.tensor(a) for a in (src, tgt_in, tgt_out)]
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        value = loss(dl, model, inputs)
        value.backward()
        optimizer.step()
        losses.append(value.item())
    assert losses[-1] < losses[0]


def test_transformer_layer_gradcheck():
    layer = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0, norm_first=True)
    mask = nn.Transformer.generate_square_subsequent_mask(3, dtype=dl.float64)
    gradcheck_layer(layer, (3, 1, 4), (2, 1, 4), call=lambda m, xs: m(xs[0], xs[1], tgt_mask=mask))


def test_transformer_state_dict_keys_and_repr_match_pytorch():
    torch = pytest.importorskip("torch")
    for kwargs in (dict(), dict(bias=False, activation="gelu")):
        for name in ("TransformerEncoderLayer", "TransformerDecoderLayer"):
            ours, ref = getattr(nn, name)(E, H, FF, **kwargs), getattr(torch.nn, name)(E, H, FF, **kwargs)
            assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
                (k, tuple(v.shape)) for k, v in ref.state_dict().items()
            ]
            assert repr(ours) == repr(ref)
    ours, ref = nn.Transformer(E, H, 2, 1, FF), torch.nn.Transformer(E, H, 2, 1, FF)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in ref.state_dict().items()
    ]
    layer = nn.TransformerDecoderLayer(E, H, FF, activation=nn.GELU())
    assert list(dict(layer.named_children()))[-1] == "activation"


def test_transformer_defaults_clones_and_init():
    layer = nn.TransformerEncoderLayer(E, H)
    assert layer.linear1.out_features == 2048 and layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5
    assert not layer.norm_first and not layer.self_attn.batch_first
    encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False, mask_check=False)
    assert encoder.num_layers == 3 and encoder.norm is None and not encoder.enable_nested_tensor
    weights = [m.linear1.weight for m in encoder.layers]
    assert len({id(w) for w in weights}) == 3 and all(id(w) != id(layer.linear1.weight) for w in weights)
    assert all(np.array_equal(w.detach().numpy(), layer.linear1.weight.detach().numpy()) for w in weights)
    model = nn.Transformer(E, H, 2, 2, FF)
    assert (model.d_model, model.nhead, model.batch_first) == (E, H, False)
    first, second = (m.self_attn.in_proj_weight.detach().numpy() for m in model.encoder.layers)
    assert not np.array_equal(first, second)  # every matrix re-initialized by xavier_uniform_
    bound = np.sqrt(6 / (FF + E))
    assert np.abs(model.encoder.layers[0].linear1.weight.detach().numpy()).max() <= bound


def test_generate_square_subsequent_mask_matches_pytorch():
    torch = pytest.importorskip("torch")
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    assert mask.dtype == dl.float32
    np.testing.assert_array_equal(
        mask.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(4).numpy()
    )
    assert nn.Transformer.generate_square_subsequent_mask(2, dtype=dl.float64).dtype == dl.float64


def test_transformer_errors():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(E, H, activation="tanh")
    model = nn.Transformer(E, H, 1, 1, FF)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        model(dl.randn(S, 2, E), dl.randn(T, 3, E))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal to d_model"):
        model(dl.randn(S, 2, E), dl.randn(T, 2, E + 1))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        nn.TransformerEncoderLayer(E, H, FF)(dl.randn(S, 2, E), is_causal=True)


def test_multihead_attention_resolves_at_pytorchs_module_path():
    from dltool.engine.nn.modules import activation, attention

    assert activation.MultiheadAttention is attention.MultiheadAttention is nn.MultiheadAttention
