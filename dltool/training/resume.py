"""Which config a resumed run continues with: the checkpoint's, plus this command's overrides."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from dltool.training.checkpoint import find_last_checkpoint, load_checkpoint
from dltool.training.errors import ConfigError

log = logging.getLogger("dltool")


def resume_config(
    cfg: DictConfig, run_dir: Path, overrides: list[str], groups: Collection[str]
) -> DictConfig:
    """The config to continue with when ``cfg.resume`` is a checkpoint path or ``auto``.

    The run goes on with the config stored in the checkpoint, not with this command's defaults.
    ``key=value`` and ``~key`` overrides given with ``resume=`` apply on top (to train longer:
    ``trainer.epochs=20``); choosing another option of a config group is an error.

    Args:
        cfg: the config composed for this command (it holds the overrides' parsed values).
        run_dir: this run's directory, searched by ``resume=auto``.
        overrides: this command's task overrides (``HydraConfig.overrides.task``).
        groups: the names of the config groups.

    Returns:
        The checkpoint's config with the overrides and ``resume`` set to the checkpoint's path;
        ``cfg`` with ``resume=None`` for ``resume=auto`` when there is nothing to resume.
    """
    if cfg.resume == "auto":
        path = find_last_checkpoint(run_dir)
        if path is None:
            log.info(f"resume=auto: no checkpoints/last.ckpt under {run_dir}; starting a new run")
            with open_dict(cfg):
                cfg.resume = None
            return cfg
    else:
        path = Path(cfg.resume)
    stored = OmegaConf.create(load_checkpoint(path)["config"])
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume":
            continue
        if key in groups:
            raise ConfigError(
                f"resume: cannot switch config group '{key}' of a resumed run ({override.input_line}); "
                "only key=value overrides apply"
            )
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            with open_dict(stored):
                node = OmegaConf.select(stored, parent) if parent else stored
                if node is not None and leaf in node:
                    del node[leaf]
        else:
            OmegaConf.update(stored, key, OmegaConf.select(cfg, key), force_add=True)
    with open_dict(stored):
        stored.resume = str(path)
    return stored
