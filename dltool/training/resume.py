"""Resuming a run, in one place: find the checkpoint, read it once, check it, continue from it.

A resumed run goes on with the config stored in its checkpoint, not with this command's defaults;
``key=value`` and ``~key`` overrides given with ``resume=`` apply on top, and the state restored
from the checkpoint then follows the config: an optimizer hyperparameter the command changes
(``optimizer.lr=0.05``) replaces the one the checkpoint put back, and a learning-rate schedule
whose settings changed (``trainer.epochs=20`` moves a cosine's ``T_max``) is rebuilt and replayed
over the steps already done. Config and run never disagree.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

import dltool.engine as dl
from dltool.training.checkpoint import find_last_checkpoint, load_checkpoint, stored_config
from dltool.training.errors import CheckpointError, ConfigError
from dltool.training.tasks.base import Optimization
from dltool.training.trust import check_config

log = logging.getLogger("dltool")

# Overrides that a resumed run cannot follow: the random streams and the data order continue
# from the checkpoint. (The batch size only mid-epoch, where the loader's position is counted in batches.)
_FIXED_ON_RESUME = ("trainer.seed",)
_FIXED_MID_EPOCH = ("trainer.batch_size",)


@dataclasses.dataclass(frozen=True)
class Resumption:
    """A checkpoint to continue from, read once: its path and contents."""

    path: Path
    checkpoint: dict[str, Any]


def locate_checkpoint(resume: str, run_dir: str | Path | None) -> Path | None:
    """The file ``resume=`` means: a path, or for ``auto`` the newest ``last.ckpt`` under ``run_dir``.

    Returns:
        The checkpoint's path; None for ``auto`` when ``run_dir`` has none (a new run starts).

    Raises:
        CheckpointError: the path is missing or is a directory (saying what the directory holds).
    """
    if resume == "auto":
        return find_last_checkpoint(run_dir) if run_dir is not None else None
    path = Path(resume)
    if path.is_dir():
        found = find_last_checkpoint(path)
        holds = (
            f"it holds {found}: pass that file, or resume=auto hydra.run.dir={path}"
            if found
            else "it holds no checkpoints/last.ckpt"
        )
        raise CheckpointError(f"resume={resume} is a directory, not a checkpoint file; {holds}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {resume}")
    return path


def resume_config(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str],
    groups: Collection[str],
) -> tuple[DictConfig, Resumption | None]:
    """The config to continue with when ``cfg.resume`` is a checkpoint path or ``auto``.

    Args:
        cfg: the config composed for this command (it holds the overrides' parsed values and
            ``trust_checkpoint_code``, which is read from here, never from the checkpoint).
        run_dir: this run's directory, searched by ``resume=auto``.
        overrides: this command's task overrides (``HydraConfig.overrides.task``).
        groups: the names of the config groups.

    Returns:
        The checkpoint's config with the overrides applied and ``resume`` set to the checkpoint's
        path, and the checkpoint; ``cfg`` with ``resume=None`` and no checkpoint for
        ``resume=auto`` when there is nothing to resume.

    Raises:
        CheckpointError: a missing, unreadable or untrusted checkpoint.
        ConfigError: an override that a resumed run cannot follow.
    """
    path = locate_checkpoint(cfg.resume, run_dir)
    if path is None:
        log.info(f"resume=auto: no checkpoints/last.ckpt under {run_dir}; starting a new run")
        with open_dict(cfg):
            cfg.resume = None
        return cfg, None
    checkpoint = load_checkpoint(path)
    stored = stored_config(checkpoint, path)
    _add_new_options(stored, cfg)
    choices = checkpoint["meta"].get("choices") or {}
    user_targets = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in ("resume", "trust_checkpoint_code"):
            continue
        if key in groups:
            if choices.get(key) != override.value():
                was = f"it used {key}={choices[key]}" if key in choices else "it does not record its choices"
                raise ConfigError(
                    f"resume: cannot switch config group '{key}' of a resumed run ({override.input_line}; "
                    f"{was}); only key=value overrides apply"
                )
            continue
        if OmegaConf.select(stored, key) != OmegaConf.select(cfg, key):
            _refuse_fixed(key, checkpoint)
        if key.endswith("_target_"):
            user_targets.append(key)
        _apply(stored, override, cfg)
    with open_dict(stored):
        stored.resume = str(path)
        stored.trust_checkpoint_code = bool(cfg.get("trust_checkpoint_code", False))
    if not stored.trust_checkpoint_code:
        check_config(stored, str(path), trusted_keys=user_targets)
    return stored, Resumption(path, checkpoint)


def _add_new_options(stored: DictConfig, cfg: DictConfig) -> None:
    """Give a run saved by an older dltool the trainer options added since, as this command
    composed them (their defaults, unless overridden)."""
    if not isinstance(stored.get("trainer"), DictConfig) or not isinstance(cfg.get("trainer"), DictConfig):
        return
    with open_dict(stored):
        for key, value in cfg.trainer.items_ex(resolve=False):
            if key not in stored.trainer:
                stored.trainer[key] = value


def _refuse_fixed(key: str, checkpoint: dict[str, Any]) -> None:
    mid_epoch = checkpoint.get("loader") is not None
    if key in _FIXED_ON_RESUME or (mid_epoch and key in _FIXED_MID_EPOCH):
        when = "mid-epoch " if key in _FIXED_MID_EPOCH else ""
        raise ConfigError(
            f"resume: {key} cannot change when resuming {when}(the random streams and the data order "
            "continue from the checkpoint); start a new run instead"
        )


def _apply(stored: DictConfig, override: Any, cfg: DictConfig) -> None:
    key = override.key_or_group
    if override.is_delete():
        parent, _, leaf = key.rpartition(".")
        with open_dict(stored):
            node = OmegaConf.select(stored, parent) if parent else stored
            if node is not None and leaf in node:
                del node[leaf]
    else:
        OmegaConf.update(stored, key, OmegaConf.select(cfg, key), force_add=True)


# ---------------------------------------------------------------- restoring state


def changed_settings(stored: Mapping[str, Any], cfg: DictConfig, groups: Collection[str]) -> dict[str, tuple]:
    """``{"optimizer.lr": (old, new), ...}``: the top-level keys of ``groups`` whose resolved
    values differ between the checkpoint's config and the one the run continues with."""
    before = OmegaConf.to_container(OmegaConf.create(dict(stored)), resolve=True)
    after = OmegaConf.to_container(cfg, resolve=True)
    changed = {}
    for group in groups:
        old, new = before.get(group) or {}, after.get(group) or {}
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                changed[f"{group}.{key}"] = (old.get(key), new.get(key))
    return changed


def restore_optimization(
    resumption: Resumption,
    cfg: DictConfig,
    optimization: Optimization,
    index: int,
    total_steps: int,
    rebuild_scheduler: Callable[[], Any],
) -> Any:
    """Load the ``index``-th optimizer's and scheduler's state, then make them follow the config.

    An optimization built from the config (``optimization.config_key``) takes the settings the
    config changed since the checkpoint; one the task built in code gets its state back as saved.

    Returns:
        The scheduler to continue with: ``optimization.scheduler`` with its state, or a rebuilt
        one replayed to the checkpoint's step when the schedule's settings changed.

    Raises:
        CheckpointError: the state does not fit this run.
    """
    path, checkpoint = resumption.path, resumption.checkpoint
    optimizer, scheduler = optimization.optimizer, optimization.scheduler
    key, scheduler_key = optimization.config_key, optimization.scheduler_key
    fresh = dict(optimizer.defaults)  # the config's values, before the checkpoint's are loaded
    _load_optimization_state(path, checkpoint, index, optimizer, scheduler)
    if key is None:  # built by the task's code: no config settings to follow
        return scheduler
    changed = changed_settings(checkpoint["config"], cfg, [k for k in (key, scheduler_key) if k])
    if f"{key}._target_" in changed:
        raise ConfigError(f"resume: {key}._target_ cannot change; start a new run with the new optimizer")
    scheduler_node = (cfg.get(scheduler_key) if scheduler_key else None) or {}
    if "total_steps" in scheduler_node and scheduler_node.total_steps is None:  # the trainer's count
        saved_total = checkpoint["meta"].get("total_steps", total_steps)
        if saved_total != total_steps:
            changed["total_steps"] = (saved_total, total_steps)
    for name in (k.partition(".")[2] for k in changed if k.startswith(f"{key}.")):
        if name in fresh:
            _set_hyperparameter(optimizer, f"{key}.{name}", fresh[name], changed[f"{key}.{name}"][0])
    schedule_changed = [
        k for k in changed if k.startswith((f"{scheduler_key}.", "total_steps", f"{key}.lr"))
    ]
    plateau = isinstance(scheduler, dl.optim.lr_scheduler.ReduceLROnPlateau)
    if scheduler is None or not schedule_changed or (plateau and schedule_changed == [f"{key}.lr"]):
        return scheduler
    return _replay_schedule(scheduler, rebuild_scheduler, optimizer, schedule_changed, changed, total_steps)


def _load_optimization_state(
    path: Path, checkpoint: dict[str, Any], index: int, optimizer: dl.optim.Optimizer, scheduler: Any
) -> None:
    try:
        optimizer.load_state_dict(checkpoint["optimizers"][index])
        saved_scheduler = checkpoint["schedulers"][index]
        if (saved_scheduler is None) != (scheduler is None):
            raise ValueError("the run's config and the checkpoint disagree on having an LR scheduler")
        if scheduler is not None:
            scheduler.load_state_dict(saved_scheduler)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as ex:
        raise CheckpointError(f"{path}: optimizer/scheduler state does not fit this run: {ex}") from ex


def _set_hyperparameter(optimizer: dl.optim.Optimizer, key: str, value: Any, old: Any) -> None:
    name = key.rpartition(".")[2]
    for group in optimizer.param_groups:
        group[name] = value
        if name == "lr" and "initial_lr" in group:
            group["initial_lr"] = value  # the schedule, if any, starts from the new value
    log.info(f"resume: {key} is {value} as given (the checkpoint had {old})")


def _replay_schedule(
    scheduler: Any,
    rebuild: Callable[[], Any],
    optimizer: dl.optim.Optimizer,
    keys: list[str],
    changed: dict[str, tuple],
    total_steps: int,
) -> Any:
    """A scheduler with the config's settings, stepped as often as the checkpoint's had been."""
    what = ", ".join(f"{k} {changed[k][0]} -> {changed[k][1]}" for k in keys)
    if isinstance(scheduler, dl.optim.lr_scheduler.ReduceLROnPlateau):
        # NOTE: its steps depend on the metrics seen, so it cannot be replayed; it keeps its counters
        raise ConfigError(
            f"resume: the ReduceLROnPlateau schedule cannot change on resume ({what}); start a new run"
        )
    steps = scheduler.last_epoch
    if not isinstance(steps, int) or not 0 <= steps <= total_steps:
        raise CheckpointError(
            f"the scheduler's step count {steps!r} does not fit this run of {total_steps} steps"
        )
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("initial_lr", group["lr"])
    rebuilt = rebuild()
    for _ in range(steps):
        rebuilt.step()
    log.info(
        f"resume: the LR schedule follows the new settings ({what}), replayed over its {steps} steps: "
        f"lr {optimizer.param_groups[0]['lr']:.6g}"
    )
    return rebuilt
