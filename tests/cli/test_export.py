"""``dltool export``: a checkpoint's model as ONNX, which ``dltool predict`` and onnxruntime run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import dltool.engine as dl
from dltool.datasets import FashionMNIST
from dltool.models.dcgan import Discriminator, Generator
from dltool.models.language import RNNLanguageModel
from dltool.training.errors import CheckpointError, DltoolError
from dltool.training.export import model_input
from dltool.training.predict import predict
from dltool.training.saved import SavedTask
from dltool.training.tasks import GAN, LanguageModel
from tests.cli.conftest import ok

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _predict(checkpoint: Path, inputs: list[str]) -> list[dict]:
    cfg = {
        "checkpoint": str(checkpoint),
        "inputs": inputs,
        "topk": 3,
        "device": None,
        "trust_checkpoint_code": False,
    }
    return predict(OmegaConf.create(cfg))


def test_export_then_predict_with_the_onnx_file_as_with_the_checkpoint(
    dltool: Callable, trained_run: Path, tmp_path: Path, data_root: Path
) -> None:
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    result = ok(dltool("export", f"checkpoint={checkpoint}", "output=model.onnx"))
    assert "wrote model.onnx" in result.stderr + result.stdout
    exported = tmp_path / "model.onnx"
    graph = onnx.load(str(exported)).graph
    assert (
        graph.input[0].name == "input" and graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    )
    test = FashionMNIST(data_root, train=False)
    inputs = []
    for i in range(5):
        test[i][0].save(tmp_path / f"{i}.png")
        inputs.append(str(tmp_path / f"{i}.png"))
    from_onnx, from_checkpoint = _predict(exported, inputs), _predict(checkpoint, inputs)
    assert [[t["index"] for t in r["top"]] for r in from_onnx] == [
        [t["index"] for t in r["top"]] for r in from_checkpoint
    ]
    np.testing.assert_allclose(
        [[t["prob"] for t in r["top"]] for r in from_onnx],
        [[t["prob"] for t in r["top"]] for r in from_checkpoint],
        atol=1e-5,
    )


def test_export_errors_are_one_line(dltool: Callable, trained_run: Path, tmp_path: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    for args, message in [
        (("format=tflite",), "format: expected one of onnx, got 'tflite'"),
        (("opset=9",), "opset: opset_version must be between 17 and"),
    ]:
        result = dltool("export", f"checkpoint={checkpoint}", *args)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not list(trained_run.glob("checkpoints/*.onnx")) and not list(
        trained_run.glob("checkpoints/.*.tmp")
    )
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DltoolError, match="junk.onnx: not a readable ONNX model"):
        _predict(tmp_path / "junk.onnx", ["a.png"])


@pytest.mark.parametrize("kind", ["gan", "language_model"])
def test_a_gan_exports_its_generator_and_a_language_model_its_network(kind: str, tmp_path: Path) -> None:
    if kind == "gan":
        task = GAN(Generator(latent_dim=5, features=4, image_size=8), Discriminator(features=4, image_size=8))
        config, name, sample = {}, "noise", dl.randn(3, 5)
    else:
        task = LanguageModel(RNNLanguageModel(9, embedding_dim=4, hidden_size=6, cell="gru"))
        config, name, sample = {"dataset": {"seq_len": 7}}, "tokens", dl.randint(0, 9, (3, 7))
    saved = SavedTask(tmp_path / "x.ckpt", {}, {"task": kind, "classes": []}, OmegaConf.create(config), task)
    model, example, input_name = model_input(saved)
    assert input_name == name and example.shape[1:] == sample.shape[1:] and example.dtype == sample.dtype
    path = tmp_path / "x.onnx"
    dl.onnx.export(model, example, str(path), input_names=[name], dynamic_axes={name: [0]})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with dl.no_grad():
        want = model.eval()(sample)
    got = session.run(None, {name: sample.numpy()})[0]
    np.testing.assert_allclose(
        got, (want[0] if isinstance(want, tuple) else want).numpy(), rtol=1e-5, atol=1e-5
    )


def test_predict_refuses_code_named_in_an_onnx_files_metadata(tmp_path: Path) -> None:
    path = tmp_path / "hostile.onnx"
    dl.onnx.export(dl.nn.Linear(4, 2), dl.randn(1, 4), str(path))
    model = onnx.load(str(path))
    stored = {"task": "classification", "classes": '["a", "b"]', "input_shape": "[1, 2, 2]"}
    stored["transform"] = "_target_: os.system\ncommand: touch pwned\n"
    for key, value in stored.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"dltool.{key}", value
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError, match="names 'os.system', which is not one of dltool's"):
        _predict(path, [str(tmp_path / "a.png")])
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
