import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.nn.layer_check import check_layer, gradcheck_layer
from tests.op_check import check_op

rng = np.random.default_rng(0)
L, S, N, E = 4, 5, 2, 6
BOOL_MASK = rng.random((L, S)) < 0.3
BOOL_MASK[:, 0] = False  # every query keeps at least one key
PADDING = np.array([[False, False, False, True, True], [False, True, False, False, False]])


def _mha(**kwargs):
    return lambda lib: lib.nn.MultiheadAttention(E, 2, **kwargs)


def _call(lib, m, xs, **kwargs):
    masks = {k: lib.tensor(v) for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    options = {k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)}
    return m(*xs, **masks, **options)


MHA_CASES = [
    (dict(), dict()),
    (dict(batch_first=True), dict(average_attn_weights=False)),
    (dict(bias=False), dict(attn_mask=BOOL_MASK)),
    (dict(), dict(attn_mask=rng.standard_normal((L, S)), key_padding_mask=np.where(PADDING, -np.inf, 0.0))),
    (dict(), dict(attn_mask=BOOL_MASK, key_padding_mask=PADDING)),
    (dict(kdim=3, vdim=4), dict(key_padding_mask=PADDING, need_weights=False)),
    (dict(), dict(attn_mask=rng.standard_normal((N * 2, L, S)))),
]


@pytest.mark.parametrize("make_kwargs,call_kwargs", MHA_CASES)
def test_multihead_attention_matches_pytorch(make_kwargs, call_kwargs):
    kdim, vdim = make_kwargs.get("kdim", E), make_kwargs.get("vdim", E)
    if make_kwargs.get("batch_first"):
        shapes = [(N, L, E), (N, S, kdim), (N, S, vdim)]
    else:
        shapes = [(L, N, E), (S, N, kdim), (S, N, vdim)]

    def call(lib, m, xs):
        out, weights = _call(lib, m, xs, **call_kwargs)
        return (out,) if weights is None else (out, weights)

    check_layer(_mha(**make_kwargs), *shapes, call=call)


def test_multihead_attention_unbatched_and_self_attention_gradcheck():
    check_layer(_mha(), (L, E), (S, E), (S, E), call=lambda lib, m, xs: _call(lib, m, xs, key_padding_mask=PADDING[0]))
    layer = nn.MultiheadAttention(4, 2)
    gradcheck_layer(layer, (3, 1, 4), call=lambda m, xs: m(xs[0], xs[0], xs[0])[0])


def test_multihead_attention_parameters_init_and_repr():
    torch = pytest.importorskip("torch")
    for kwargs in (dict(), dict(kdim=3, vdim=5, bias=False)):
        ours, ref = nn.MultiheadAttention(8, 2, **kwargs), torch.nn.MultiheadAttention(8, 2, **kwargs)
        assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
        assert repr(ours) == repr(ref)
    mha = nn.MultiheadAttention(8, 2)
    assert (mha.in_proj_bias.detach().numpy() == 0).all() and (mha.out_proj.bias.detach().numpy() == 0).all()
    assert np.abs(mha.in_proj_weight.detach().numpy()).max() <= np.sqrt(6 / (8 + 24))
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(RuntimeError, match="The shape of the 2D attn_mask is \\(3, 3\\), but should be \\(4, 5\\)"):
        nn.MultiheadAttention(E, 2)(dl.randn(L, N, E), dl.randn(S, N, E), dl.randn(S, N, E), attn_mask=dl.zeros(3, 3))


def test_multihead_attention_dropout_only_in_training():
    mha = nn.MultiheadAttention(E, 2, dropout=0.5).eval()
    x = dl.randn(L, N, E)
    assert np.array_equal(mha(x, x, x)[0].detach().numpy(), mha(x, x, x)[0].detach().numpy())
    weights = mha.train()(x, x, x, average_attn_weights=False)[1].detach().numpy()
    assert (weights == 0).any()


@pytest.mark.parametrize("kwargs", [dict(), dict(is_causal=True), dict(scale=0.3), dict(mask="bool"), dict(mask="float")])
def test_scaled_dot_product_attention_matches_pytorch(kwargs):
    def fn(lib, q, k, v):
        options = dict(kwargs)
        mask = options.pop("mask", None)
        if mask == "bool":
            options["attn_mask"] = lib.tensor(~BOOL_MASK[:, :4])
        elif mask == "float":
            options["attn_mask"] = lib.tensor(BOOL_MASK[:, :4] * -2.0)
        return lib.nn.functional.scaled_dot_product_attention(q, k, v, **options)

    check_op(fn, (2, 3, L, E), (2, 3, 4, E), (2, 3, 4, 3))
