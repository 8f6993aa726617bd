"""``onnx.export``: every shipped model runs in onnxruntime as in dltool, at the example's batch
size and another (the batch axis dynamic); clear errors for what cannot be exported."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.onnx import UnsupportedOperatorError
from dltool.engine.utils._structure import leaves
from dltool.models.cnn import CNN
from dltool.models.dcgan import Discriminator, Generator
from dltool.models.language import RNNLanguageModel, TransformerLanguageModel
from dltool.models.lenet import LeNet5
from dltool.models.linear import LinearRegression, LogisticRegression
from dltool.models.mlp import MLP

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _tokens(n: int) -> dl.Tensor:
    return dl.randint(0, 13, (n, 6))


MODELS: dict[str, tuple[Callable[[], dl.nn.Module], Callable[[int], dl.Tensor]]] = {
    "mlp": (lambda: MLP((1, 6, 6), 4, hidden_sizes=(8,)), lambda n: dl.randn(n, 1, 6, 6)),
    "logreg": (lambda: LogisticRegression((1, 6, 6), 4), lambda n: dl.randn(n, 1, 6, 6)),
    "linreg": (lambda: LinearRegression((5,), 2), lambda n: dl.randn(n, 5)),
    "lenet": (lambda: LeNet5((1, 28, 28), 10), lambda n: dl.randn(n, 1, 28, 28)),
    "cnn": (lambda: CNN((3, 8, 8), 4, channels=(4, 6), hidden_size=8), lambda n: dl.randn(n, 3, 8, 8)),
    "dcgan_generator": (lambda: Generator(latent_dim=6, features=4, image_size=8), lambda n: dl.randn(n, 6)),
    "dcgan_discriminator": (lambda: Discriminator(features=4, image_size=8), lambda n: dl.randn(n, 1, 8, 8)),
    "lstm_lm": (lambda: RNNLanguageModel(13, embedding_dim=6, hidden_size=5, num_layers=2), _tokens),
    "gru_lm": (
        lambda: RNNLanguageModel(13, embedding_dim=6, hidden_size=5, num_layers=2, cell="gru"),
        _tokens,
    ),
    "transformer_lm": (
        lambda: TransformerLanguageModel(13, d_model=8, nhead=2, num_layers=2, dim_feedforward=16, max_len=6),
        _tokens,
    ),
}


def _exported(model: object, example: object, **kwargs: object) -> bytes:
    f = io.BytesIO()
    dl.onnx.export(model, example, f, **kwargs)
    return f.getvalue()


@pytest.mark.parametrize("name", MODELS)
def test_shipped_models_match_onnxruntime_at_another_batch_size(name: str) -> None:
    make, inputs = MODELS[name]
    model = make()
    model.train()  # export runs in eval mode and puts the mode back
    data = _exported(model, inputs(2), input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    assert model.training and all(m.training for m in model.modules())
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model.eval()
    for n in (2, 5):
        x = inputs(n)
        with dl.no_grad():
            want = leaves(model(x), dl.Tensor)
        got = session.run(None, {"input": x.numpy()})
        assert len(got) == len(want)
        for w, g in zip(want, got, strict=True):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)


def test_input_and_output_names_and_a_static_export() -> None:
    model = RNNLanguageModel(13, embedding_dim=6, hidden_size=5, num_layers=1).eval()
    data = _exported(model, _tokens(3), input_names=["tokens"], output_names=["logits", "h", "c"])
    graph = onnx.load_from_string(data).graph
    assert [i.name for i in graph.input] == ["tokens"] and [o.name for o in graph.output] == [
        "logits",
        "h",
        "c",
    ]
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [3, 6, 13]
    assert "LSTM" in [node.op_type for node in graph.node]


def test_an_op_without_an_onnx_form_is_named() -> None:
    with pytest.raises(
        UnsupportedOperatorError, match=r"does not cover the op CumSum \(dltool\.engine\.ops\.scan\.CumSum\)"
    ):
        _exported(lambda x: dl.cumsum(x, 0), dl.randn(3))


def test_a_graph_that_changes_with_a_dynamic_axis_is_refused() -> None:
    def per_row(x: dl.Tensor) -> dl.Tensor:
        return dl.stack([row * 2 for row in x])

    _exported(per_row, dl.randn(3, 2))  # static: fine
    with pytest.raises(UnsupportedOperatorError, match="changes with the size of a dynamic axis"):
        _exported(per_row, dl.randn(3, 2), input_names=["x"], dynamic_axes={"x": [0]})


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="opset_version must be between 17 and"):
        _exported(lambda x: x + 1, dl.ones(2), opset_version=9)
    with pytest.raises(ValueError, match=r"input_names must be 1 distinct names, got \['a', 'b'\]"):
        _exported(lambda x: x + 1, dl.ones(2), input_names=["a", "b"])
    with pytest.raises(ValueError, match=r"dynamic_axes\['x'\] has axis 3, but x has 1 dimensions"):
        _exported(lambda x: x + 1, dl.ones(2), input_names=["x"], dynamic_axes={"x": [3]})


def test_writes_to_a_path(tmp_path) -> None:
    path = tmp_path / "add.onnx"
    dl.onnx.export(lambda x, y: x * y + 1, (dl.ones(2), dl.full((2,), 3.0)), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, {names[0]: np.float32([1, 2]), names[1]: np.float32([3, 4])})
    assert names == ["x", "y"] and out.tolist() == [4.0, 9.0]


LAYERS: dict[str, tuple[Callable[[], object], tuple[int, ...]]] = {
    "activations": (
        lambda: dl.nn.Sequential(
            dl.nn.Linear(4, 6),
            dl.nn.GELU(),
            dl.nn.Linear(6, 6),
            dl.nn.Sigmoid(),
            dl.nn.Tanh(),
            dl.nn.LeakyReLU(0.1),
        ),
        (4,),
    ),
    "norms_and_softmax": (
        lambda: dl.nn.Sequential(
            dl.nn.LayerNorm(5), dl.nn.Softmax(dim=-1), dl.nn.Linear(5, 3), dl.nn.LogSoftmax(1)
        ),
        (5,),
    ),
    "pooling": (
        lambda: dl.nn.Sequential(
            dl.nn.Conv2d(2, 3, 3, padding=1),
            dl.nn.BatchNorm2d(3),
            dl.nn.AvgPool2d(2),
            dl.nn.MaxPool2d(2, padding=1),
        ),
        (2, 8, 8),
    ),
    "reductions": (
        lambda: (
            lambda x: (
                x.sum(1)
                + x.mean(dim=(1, 2), keepdim=True).squeeze(2)
                - x.amax(1) * x.exp().clamp(0.5, 2).prod(1)
            )
        ),
        (3, 4),
    ),
    "shapes": (
        lambda: lambda x: dl.cat([x[:, 1:], x[:, :1].expand(-1, 2)], 1).transpose(0, 1).reshape(-1) ** 2,
        (3,),
    ),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layers_and_ops_match_onnxruntime(name: str) -> None:
    make, shape = LAYERS[name]
    model = make()
    if isinstance(model, dl.nn.Module):
        model.eval()
    data = _exported(model, dl.randn(2, *shape), input_names=["x"], dynamic_axes={"x": [0]})
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = dl.randn(4, *shape)
    with dl.no_grad():
        want = model(x)
    (got,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dl.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True),
        lambda: dl.nn.GRU(4, 5, bidirectional=True),
        lambda: dl.nn.RNN(4, 5, nonlinearity="relu"),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_recurrent_layers_both_directions(make: Callable) -> None:
    layer = make().eval()
    data = _exported(layer, dl.randn(3, 6, 4), input_names=["x"], dynamic_axes={"x": [0, 1]})
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = dl.randn(5, 7, 4)
    with dl.no_grad():
        want = leaves(layer(x), dl.Tensor)
    for w, g in zip(want, session.run(None, {"x": x.numpy()}), strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_lstm_cell_steps(bias: bool) -> None:
    cell = dl.nn.LSTMCell(4, 5, bias=bias)

    def run(x: dl.Tensor, h: dl.Tensor, c: dl.Tensor) -> tuple:
        for _ in range(2):
            h, c = cell(x, (h, c))
        return h, c

    example = (dl.randn(3, 4), dl.randn(3, 5), dl.randn(3, 5))
    data = _exported(run, example)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    _assert_runs_as(data, run, example)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_a_reversed_recurrence_node(mode: str, bias: bool) -> None:
    from dltool.engine.ops.recurrence import recurrence

    gates = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1}[mode]
    w_ih, w_hh = dl.randn(gates * 3, 5), dl.randn(gates * 3, 3)
    b_ih, b_hh = (dl.randn(gates * 3), dl.randn(gates * 3)) if bias else (None, None)

    def run(x: dl.Tensor, h0: dl.Tensor, c0: dl.Tensor) -> tuple:
        c0 = c0 if mode == "LSTM" else None
        return recurrence(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse=True)[:2]

    example = (dl.randn(4, 2, 5), dl.randn(2, 3), dl.randn(2, 3))
    _assert_runs_as(_exported(run, example), run, example)


def _assert_runs_as(data: bytes, run: Callable, example: tuple) -> None:
    """The exported ``data`` in onnxruntime gives ``run``'s outputs on ``example`` (an input the
    graph does not use, such as a GRU's cell state, is not an input of the file)."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    with dl.no_grad():
        want = run(*example)
    got = session.run(None, {n: t.numpy() for n, t in zip(names, example, strict=False)})
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)
