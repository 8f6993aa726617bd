"""Checkpoint files: what they hold, writing and rotating them, reading them back safely.

A checkpoint is a plain nested dict saved with ``dltool.engine.save`` (arrays plus JSON, never
pickle, written to a temp file and renamed, so a crash mid-save keeps the previous file):
the task's state (every model it owns, under one ``model`` state dict), each optimizer's and
scheduler's state, loop counters, the train loader's position, every RNG state, the config, and
the dltool version. Format 1 (one model, one optimizer, no task) is read as format 2.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

import dltool
import dltool.engine as dl
from dltool.engine.serialization import temporary_name
from dltool.engine.utils._process import pid_alive
from dltool.training.errors import CheckpointError, ConfigError
from dltool.training.tasks.base import Task
from dltool.training.trust import check_config

FORMAT = "dltool-checkpoint"
FORMAT_VERSION = 2
# What every reader relies on, checked before any of it is used.
_LAYOUT = {"config": dict, "meta": dict, "model": dict}
# serialization.temporary_name's pattern: the writer's pid tells a crash's leftovers from a save in progress.
_TEMPORARY = re.compile(r"\..+\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp")
_META_LAYOUT = {
    "task": str,
    "classes": list,
    "input_shape": list,
    "choices": dict,
    "overrides": list,
    "total_steps": int,
}


def capture_rng() -> dict[str, Any]:
    """The state of every generator a run draws from: dltool's default, numpy's and Python's."""
    version, internal, gauss_next = random.getstate()
    return {
        "dltool": dl.get_rng_state(),
        "numpy": np.random.get_state(legacy=False),
        "python": {
            "version": version,
            "internal": np.asarray(internal, dtype=np.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the generator states that ``capture_rng`` took."""
    dl.set_rng_state(state["dltool"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {k: np.asarray(v) if k == "key" else v for k, v in numpy_state["state"].items()}
    np.random.set_state(numpy_state)
    python = state["python"]
    internal = tuple(int(x) for x in np.asarray(python["internal"]))
    random.setstate((int(python["version"]), internal, python["gauss_next"]))


def new_checkpoint(config: dict[str, Any], meta: dict[str, Any], **state: Any) -> dict[str, Any]:
    """A checkpoint dict: format tag and version, ``config``, ``meta``, and the given states."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dltool_version": dltool.__version__,
        "config": config,
        "meta": meta,
        **state,
    }


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by dltool, its tensors on ``map_location`` (the host by default:
    ``load_state_dict`` copies them to wherever the model and optimizer live).

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or not a dltool checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = dl.load(path, map_location=map_location)
    except Exception as ex:  # truncated, corrupted or foreign: the engine says which
        reason = str(ex).removeprefix(f"{path}: ")
        raise CheckpointError(f"cannot load checkpoint {path}: {reason}") from ex
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dltool checkpoint (no '{FORMAT}' format tag)")
    version = checkpoint.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by dltool {checkpoint.get('dltool_version')} in a newer format; "
            f"upgrade dltool (this is {dltool.__version__})"
        )
    if version < 2:
        checkpoint = _from_format_1(checkpoint)
    for key, kind in _LAYOUT.items():
        if not isinstance(checkpoint.get(key), kind):
            raise CheckpointError(f"{path}: its '{key}' entry is missing or not a {kind.__name__}")
    meta = checkpoint["meta"]
    for key, kind in _META_LAYOUT.items():
        if key in meta and not isinstance(meta[key], kind):
            raise CheckpointError(f"{path}: its meta.{key} is not a {kind.__name__}")
    return checkpoint


def _from_format_1(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A format-1 checkpoint as format 2: its model becomes the supervised task's ``model``."""
    upgraded = dict(checkpoint)
    if isinstance(checkpoint.get("model"), dict):
        upgraded["model"] = {f"model.{key}": value for key, value in checkpoint["model"].items()}
    if "optimizer" in checkpoint:
        upgraded["optimizers"] = [upgraded.pop("optimizer")]
        upgraded["schedulers"] = [upgraded.pop("scheduler", None)]
    meta = checkpoint.get("meta")
    kind = meta.get("task") if isinstance(meta, dict) else None
    loop = checkpoint.get("loop")
    running = loop.get("running") if isinstance(loop, dict) else None
    if isinstance(running, dict) and "loss_sum" in running:  # mid-epoch sums of loss and acc (or mae)
        sums = {"loss": running["loss_sum"], "acc" if kind == "classification" else "mae": running["score_sum"]}
        upgraded["loop"] = {**loop, "running": {"sums": sums, "count": running["count"]}}
    if isinstance(checkpoint.get("config"), dict) and kind in ("classification", "regression"):
        task = {"_target_": f"dltool.training.tasks.{kind.capitalize()}", "model": "${model}", "loss": "${loss}"}
        upgraded["config"] = {**checkpoint["config"], "task": task}
        if isinstance(meta.get("choices"), dict):
            upgraded["meta"] = {**meta, "choices": {**meta["choices"], "task": kind}}
    return upgraded


def run_meta(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``meta`` with what ``eval``, ``predict``, ``sample`` and ``generate`` read:
    the task's name, the classes (a language model's vocabulary), the input shape.

    Raises:
        CheckpointError: naming the missing entry.
    """
    meta = checkpoint["meta"]
    for key in ("task", "classes"):
        if key not in meta:
            raise CheckpointError(f"{path}: its meta has no '{key}'; it was not written by dltool train")
    return meta


def stored_config(checkpoint: dict[str, Any], path: str | Path) -> DictConfig:
    """The run's config stored in ``checkpoint``, as a config object; not yet checked for trust
    (``trust.check_targets``) and not resolved.

    Raises:
        CheckpointError: the stored config is not a valid config tree.
    """
    try:
        return OmegaConf.create(checkpoint["config"])
    except Exception as ex:
        raise CheckpointError(f"{path}: its stored config is not a valid config: {ex}") from ex


def trusted_config(checkpoint: dict[str, Any], path: str | Path, trust_code: bool = False) -> DictConfig:
    """``stored_config`` with every interpolation resolved and every ``_target_`` checked
    (``trust.check_config``): what ``eval`` and ``predict`` build from.

    Args:
        trust_code: the user's ``trust_checkpoint_code=true``: skip the check of the targets.

    Raises:
        CheckpointError: the config cannot be resolved, or names code outside dltool's components.
    """
    config = stored_config(checkpoint, path)
    if trust_code:
        return config
    return OmegaConf.create(check_config(config, str(path)))


def load_model_state(model: dl.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """Load ``state`` into ``model`` after checking that every key and shape matches.

    Raises:
        CheckpointError: naming the missing, unexpected and mis-shaped keys.
    """
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if shapes:
        problems.append(f"shape mismatch (checkpoint vs model) {_short(shapes)}")
    if problems:
        name = model.describe() if isinstance(model, Task) else type(model).__name__
        raise CheckpointError(f"{path} does not match the model {name}: " + "; ".join(problems))
    model.load_state_dict(state)


def _short(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return "[" + ", ".join(items[:limit]) + "]" + more


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory a checkpoint belongs to (the parent of its ``checkpoints/`` folder)."""
    path = Path(checkpoint)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def refuse_used_run_dir(run_dir: str | Path) -> None:
    """Raise unless ``run_dir`` is free for a new run (it has no ``checkpoints/last.ckpt``).

    Raises:
        ConfigError: saying how to continue the earlier run instead.
    """
    if (Path(run_dir) / "checkpoints" / "last.ckpt").exists():
        raise ConfigError(
            f"{run_dir} already holds a run's checkpoints; continue it with resume=auto hydra.run.dir={run_dir}, "
            "or choose another hydra.run.dir"
        )


def remove_unstarted_run(run_dir: str | Path) -> None:
    """Remove a run directory whose run failed before training began (a config error, say).

    Only a directory that holds nothing but what such a run writes (Hydra's ``.hydra/``, the
    log, the failure's metrics.json) is removed, so nothing a user or a real run made is lost.
    """
    run_dir = Path(run_dir)
    written = {".hydra", "train.log", "metrics.json"}
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= written:
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    for name in ("train.log", "metrics.json"):
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def find_last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest ``last.ckpt`` under ``run_dir`` (for ``resume=auto``), or None."""
    candidates = sorted(Path(run_dir).glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


class CheckpointWriter:
    """Writes ``last.ckpt``, ``best.ckpt`` and every N epochs ``epoch-N.ckpt``, keeping the last K.

    Args:
        directory: the run's ``checkpoints/`` folder (created on first save).
        every_n_epochs: also keep ``epoch-N.ckpt`` every this many epochs (0: never).
        keep_last_k: how many ``epoch-N.ckpt`` to keep (None: all).
    """

    def __init__(self, directory: Path, every_n_epochs: int = 0, keep_last_k: int | None = None) -> None:
        self.directory = Path(directory)
        self.every_n_epochs = every_n_epochs
        self.keep_last_k = keep_last_k
        remove_stale_temporaries(self.directory)

    @property
    def last(self) -> Path:
        return self.directory / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.directory / "best.ckpt"

    def save(self, checkpoint: dict[str, Any], epoch: int | None = None, improved: bool = False) -> Path:
        """Save ``last.ckpt``; at an epoch end also ``best.ckpt`` when improved and ``epoch-N.ckpt``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        dl.save(checkpoint, self.last)
        if epoch is not None and improved:
            _publish_copy(self.last, self.best)
        if epoch is not None and self.every_n_epochs and epoch % self.every_n_epochs == 0:
            _publish_copy(self.last, self.directory / f"epoch-{epoch}.ckpt")
            self._rotate()
        return self.last

    def _rotate(self) -> None:
        if self.keep_last_k is None:
            return
        numbered = sorted(self.directory.glob("epoch-*.ckpt"), key=lambda p: int(p.stem.split("-")[1]))
        for old in numbered[: -self.keep_last_k]:
            old.unlink()


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the half-written ``.<name>.<pid>.<hex>.tmp`` files of saves whose process is gone.

    A save writes a temporary file and renames it; a process killed in between leaves the
    temporary behind, as large as a checkpoint. Files of a process that still runs are kept.
    """
    if not directory.is_dir():
        return
    for path in directory.glob(".*.tmp"):
        match = _TEMPORARY.fullmatch(path.name)
        if match and not pid_alive(int(match["pid"])):
            path.unlink(missing_ok=True)


def _publish_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source``'s bytes, atomically: a hard link where the file system
    allows one (no bytes written; a later save replaces ``source``'s name, not its content),
    else a copy. Either goes to a temporary name first, then is renamed over ``target``.
    """
    temporary = target.with_name(temporary_name(target.name))
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
