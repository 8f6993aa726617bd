"""``dltool predict``: the top-k classes of image files, using the checkpoint's model and transforms
(or, for a file of ``dltool export``, its ONNX model in onnxruntime and its stored transforms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig
from PIL import Image, UnidentifiedImageError
from rich.table import Table

import dltool.engine as dl
from dltool.training.builders import build
from dltool.training.console import console
from dltool.training.errors import ConfigError, DltoolError
from dltool.training.export import read_onnx
from dltool.training.saved import load_task, require
from dltool.training.tasks import Classification


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Classify ``cfg.inputs`` with ``cfg.checkpoint`` and print a table of the top ``cfg.topk``.

    Returns:
        One entry per input: ``{"input": path, "top": [{"class", "index", "prob"}, ...]}``.
    """
    inputs = list(cfg.inputs) if isinstance(cfg.inputs, ListConfig) else [cfg.inputs]
    if not inputs:
        raise ConfigError("inputs: give at least one image, e.g. inputs=[a.png,b.png]")
    if not isinstance(cfg.topk, int) or not 1 <= cfg.topk:
        raise ConfigError(f"topk: expected an integer >= 1, got {cfg.topk!r}")
    if Path(str(cfg.checkpoint)).suffix == ".onnx":
        path, meta, transform_cfg, device, model = _onnx_classifier(cfg)
    else:
        saved = load_task(cfg.checkpoint, cfg.trust_checkpoint_code, cfg.device)
        path, meta, run_cfg = saved.path, saved.meta, saved.config
        model = require(saved, Classification, "predict").model.eval()
        transform_cfg, device = run_cfg.dataset.get("transform"), cfg.device or run_cfg.trainer.device
    if not meta.get("input_shape") or not transform_cfg:
        raise ConfigError(
            f"{path}: its dataset has no input shape and transform to turn images into tensors; "
            "dltool predict needs an image classifier"
        )
    classes = list(meta["classes"])
    k = min(cfg.topk, len(classes))
    transform = build("dataset.transform", transform_cfg)
    shape = list(meta["input_shape"])
    batch = dl.stack([_load(Path(p), shape, transform) for p in inputs]).to(device)
    with dl.no_grad():
        probs, indices = model(batch).softmax(dim=1).topk(k, dim=1)
    results = [
        {
            "input": str(p),
            "top": [
                {"class": classes[i], "index": i, "prob": float(q)}
                for q, i in zip(prob_row, index_row, strict=True)
            ],
        }
        for p, prob_row, index_row in zip(inputs, probs.tolist(), indices.tolist(), strict=True)
    ]
    _print(results, k)
    return results


def _onnx_classifier(cfg: DictConfig) -> tuple[Path, dict[str, Any], Any, str, Any]:
    """What ``predict`` needs from a file of ``dltool export``: the model runs in onnxruntime."""
    path = Path(cfg.checkpoint)
    session, meta = read_onnx(path, cfg.trust_checkpoint_code)
    if meta["task"] != Classification.name:
        raise ConfigError(f"{path} holds a {meta['task']} model; dltool predict needs a classification model")
    name = session.get_inputs()[0].name

    def model(x: dl.Tensor) -> dl.Tensor:
        return dl.from_numpy(session.run(None, {name: x.numpy()})[0])

    return path, meta, meta["transform"], "cpu", model


def _load(path: Path, shape: list[int], transform: Any) -> dl.Tensor:
    """Read an image as the dataset's samples are: its channels and size, then its transform."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if shape[0] == 1 else "RGB")
    except (OSError, UnidentifiedImageError) as ex:
        raise DltoolError(f"cannot read image {path}: {ex}") from ex
    height, width = shape[1], shape[2]
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return transform(image)


def _print(results: list[dict[str, Any]], k: int) -> None:
    table = Table(title=f"top-{k} predictions")
    table.add_column("input")
    for rank in range(1, k + 1):
        table.add_column(f"#{rank}")
    for result in results:
        table.add_row(result["input"], *(f"{t['class']} ({t['prob']:.1%})" for t in result["top"]))
    console().print(table)
