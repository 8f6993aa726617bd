"""A trained task read back from a checkpoint, for the commands that use one (eval, predict,
sample, generate): the file is read once, its config checked for trust, the task rebuilt."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dltool.training.builders import build_task
from dltool.training.checkpoint import load_checkpoint, load_model_state, run_meta, trusted_config
from dltool.training.errors import ConfigError
from dltool.training.tasks import Task


@dataclasses.dataclass
class SavedTask:
    """What a checkpoint holds, ready to use: the task with its weights, and the run's config."""

    path: Path
    checkpoint: dict[str, Any]
    meta: dict[str, Any]
    config: DictConfig  # the run's config, every interpolation resolved and checked
    task: Task


def load_task(path: str | Path, trust_code: bool = False, device: str | None = None) -> SavedTask:
    """Read ``path`` and rebuild its task on ``device`` (None: the run's ``trainer.device``).

    Raises:
        CheckpointError: a missing, corrupt or foreign file, or weights that do not fit.
        ConfigError: the stored config names code that is not trusted, or cannot be built.
    """
    path = Path(path)
    checkpoint = load_checkpoint(path)
    meta = run_meta(checkpoint, path)
    config = trusted_config(checkpoint, path, trust_code=trust_code)
    task = build_task(config, list(meta["classes"]), device or config.trainer.device)
    load_model_state(task, checkpoint["model"], path)
    return SavedTask(path, checkpoint, meta, config, task)


def require(saved: SavedTask, kind: type[Task], command: str) -> Any:
    """``saved.task`` if it is a ``kind``; else one clear line saying what the command needs."""
    if not isinstance(saved.task, kind):
        raise ConfigError(
            f"{saved.path} holds a {saved.meta['task']} task; dltool {command} needs a {kind.name} checkpoint"
        )
    return saved.task
