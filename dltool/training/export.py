"""``dltool export``: a checkpoint's model as an ONNX file, in eval mode, with a dynamic batch axis.

The file carries what ``dltool predict`` needs besides the network (the task, the classes, the
input shape and the dataset's transform config) in its ``metadata_props``; ``read_onnx`` reads
them back and checks the transform config as a checkpoint's stored config is checked.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import dltool.engine as dl
from dltool.training.errors import ConfigError, DltoolError
from dltool.training.files import write_atomically
from dltool.training.saved import SavedTask, load_task
from dltool.training.tasks import GAN, LanguageModel
from dltool.training.trust import check_config

log = logging.getLogger("dltool")

FORMATS = ("onnx",)
_EXAMPLE_BATCH = 2
_PREFIX = "dltool."


def export_checkpoint(cfg: DictConfig) -> Path:
    """Write ``cfg.checkpoint``'s model as ``cfg.output`` (default: beside it, ``<stem>.onnx``).

    Returns:
        The written file's path.

    Raises:
        ConfigError: an unknown format or opset, or a task whose model input cannot be told.
        ImportError: the onnx package is missing (``pip install 'dltool[export]'``).
    """
    if cfg.format not in FORMATS:
        raise ConfigError(f"format: expected one of {', '.join(FORMATS)}, got {cfg.format!r}")
    if not isinstance(cfg.opset, int) or isinstance(cfg.opset, bool):
        raise ConfigError(f"opset: expected an integer, got {cfg.opset!r}")
    saved = load_task(cfg.checkpoint, cfg.trust_checkpoint_code, "cpu")
    model, example, input_name = model_input(saved)
    output = Path(cfg.output) if cfg.output else saved.path.with_suffix(".onnx")
    write_atomically(output, lambda f: _export(model, example, input_name, cfg.opset, f))
    _add_metadata(output, saved)
    log.info(
        f"wrote {output} ({type(model).__name__}, input {input_name} {tuple(example.shape[1:])} per sample)"
    )
    return output


def model_input(saved: SavedTask) -> tuple[dl.nn.Module, dl.Tensor, str]:
    """The network to export from a checkpoint's task, an example input and its name."""
    task = saved.task
    if isinstance(task, GAN):
        return task.generator, dl.randn(_EXAMPLE_BATCH, task.fixed_noise.shape[1]), "noise"
    if isinstance(task, LanguageModel):
        length = int(saved.config.dataset.get("seq_len") or 8)
        return task.model, dl.zeros(_EXAMPLE_BATCH, length, dtype=dl.int64), "tokens"
    model, shape = getattr(task, "model", None), saved.meta.get("input_shape")
    if not isinstance(model, dl.nn.Module) or not shape:
        raise ConfigError(
            f"{saved.path}: cannot tell the input of its {saved.meta['task']} task's model; "
            "export it from Python with dltool.engine.onnx.export"
        )
    return model, dl.randn(_EXAMPLE_BATCH, *shape), "input"


def _export(model: dl.nn.Module, example: dl.Tensor, input_name: str, opset: int, f: Any) -> None:
    try:
        dl.onnx.export(
            model,
            example,
            f,
            input_names=[input_name],
            opset_version=opset,
            dynamic_axes={input_name: {0: "batch"}},
        )
    except ValueError as ex:
        raise ConfigError(f"opset: {ex}") from ex


def _add_metadata(path: Path, saved: SavedTask) -> None:
    import onnx

    model = onnx.load(str(path))
    entries = {
        "task": saved.meta["task"],
        "classes": json.dumps(list(saved.meta["classes"])),
        "input_shape": json.dumps(list(saved.meta.get("input_shape") or [])),
        "transform": OmegaConf.to_yaml(saved.config.dataset.get("transform") or {}, resolve=True),
    }
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = _PREFIX + key, value
    write_atomically(path, lambda f: f.write(model.SerializeToString()))


def read_onnx(path: Path, trust_code: bool = False) -> tuple[Any, dict[str, Any]]:
    """An onnxruntime session of ``path`` and the metadata ``dltool export`` stored in it, with
    the transform config checked (only dltool's own classes unless ``trust_code``).

    Raises:
        ImportError: onnxruntime is not installed.
        DltoolError: the file is missing, not an ONNX model, or not written by dltool export.
    """
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "predicting with an .onnx file needs onnxruntime: pip install onnxruntime"
        ) from None
    if not path.is_file():
        raise DltoolError(f"{path}: no such file")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as ex:
        raise DltoolError(f"{path}: not a readable ONNX model ({str(ex).splitlines()[0]})") from ex
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = {key: props[_PREFIX + key] for key in ("task", "classes", "input_shape", "transform")}
        meta["classes"], meta["input_shape"] = json.loads(meta["classes"]), json.loads(meta["input_shape"])
        transform = OmegaConf.create(meta["transform"])
    except (KeyError, ValueError) as ex:
        raise DltoolError(f"{path}: its metadata lacks {ex}; it was not written by dltool export") from ex
    if not isinstance(transform, DictConfig):
        raise DltoolError(f"{path}: its stored transform is not a config mapping")
    meta["transform"] = transform if trust_code else OmegaConf.create(check_config(transform, str(path)))
    return session, meta
