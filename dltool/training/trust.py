"""Which classes a config read from a checkpoint may name: dltool's own components, nothing else.

A checkpoint is data. ``dltool eval``, ``predict`` and ``train resume=`` rebuild the run from the
config stored in it, and Hydra imports and calls whatever each ``_target_`` names, with arguments
from the same file: ``builtins.open`` or ``shutil.copyfile`` would write files before dltool could
notice that the result is no model. So before anything is built or any data is read, every
``_target_`` in a stored config is checked here. It must be a dotted path inside the ``dltool``
package to a class defined in dltool that is one of the components a run is made of: a model or
layer (``nn.Module``), a loss, an optimizer, an LR scheduler, a dataset, a transform or a logger.
That set is the registry: a new model or dataset in dltool is trusted without being listed.

Code of the user's own (``model._target_=mynet.Net``) is trusted only when the user says so on
the command line: by naming the target in an override, or with ``trust_checkpoint_code=true``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dltool.engine.nn import Module
from dltool.engine.optim import Optimizer
from dltool.engine.optim.lr_scheduler import LRScheduler
from dltool.engine.utils.data import Dataset
from dltool.training.errors import CheckpointError

_COMPONENT_BASES = (Module, Optimizer, LRScheduler, Dataset)
# Modules whose classes are components though they share no base class.
_COMPONENT_MODULES = ("dltool.datasets.transforms", "dltool.training.loggers")
_REFERENCE = re.compile(r"\$\{[\w.]+\}")
_HINT = "pass trust_checkpoint_code=true if you trust this file's author and the code it names"


def check_config(config: DictConfig, source: str, trusted_keys: Collection[str] = ()) -> dict[str, Any]:
    """Raise unless every ``_target_`` in ``config`` names a dltool component; return it resolved.

    Interpolations are resolved first, so a target reached through one is checked as what it
    resolves to; a node that is a reference to another whole node (``task.model: ${model}``) is
    checked once, where it is defined.

    Args:
        config: a config read from a checkpoint (with the command's overrides, on resume).
        source: the file the config came from, for the message.
        trusted_keys: dotted keys (``model._target_``) whose value the user typed on the
            command line; those may name any code.

    Returns:
        The config as plain containers, every interpolation resolved.

    Raises:
        CheckpointError: naming the key, the target and what to do; or the config cannot be resolved.
    """
    try:
        resolved = OmegaConf.to_container(config, resolve=True)
    except Exception as ex:
        raise CheckpointError(f"{source}: its stored config cannot be resolved: {ex}") from ex
    references = tuple(f"{key}." for key in _node_references(OmegaConf.to_container(config), resolved))
    for key, target in _targets(resolved, ""):
        if key in trusted_keys or target is None:  # None: nothing to build (scheduler=none)
            continue
        if key.startswith(references):
            continue
        if not isinstance(target, str):
            raise CheckpointError(f"{source}: config key {key} is {target!r}, not a class name")
        if not is_component(target):
            raise CheckpointError(
                f"{source}: config key {key} names {target!r}, which is not one of dltool's models, "
                f"losses, optimizers, schedulers, datasets, transforms or loggers; refusing to run it "
                f"({_HINT})"
            )
    return resolved  # type: ignore[return-value]


def is_component(target: str) -> bool:
    """Whether ``target`` is the dotted path of a class defined in dltool that a run may build.

    Only modules inside the ``dltool`` package are imported to find out.
    """
    module_name, _, name = target.rpartition(".")
    if module_name != "dltool" and not module_name.startswith("dltool."):
        return False
    try:
        obj = getattr(importlib.import_module(module_name), name, None)
    except Exception:  # no such dltool module
        return False
    if not isinstance(obj, type) or not obj.__module__.startswith("dltool."):
        return False
    return issubclass(obj, _COMPONENT_BASES) or obj.__module__ in _COMPONENT_MODULES


def _node_references(raw: Any, resolved: Any, path: str = "") -> Iterator[str]:
    """Dotted keys whose raw value is ``${other.key}`` and resolves to a dict (a whole node)."""
    if isinstance(raw, dict) and isinstance(resolved, dict):
        for key, value in raw.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and _REFERENCE.fullmatch(value) and isinstance(resolved.get(key), dict):
                yield child
            else:
                yield from _node_references(value, resolved.get(key), child)
    elif isinstance(raw, list) and isinstance(resolved, list):
        for i, (value, resolved_value) in enumerate(zip(raw, resolved, strict=False)):
            yield from _node_references(value, resolved_value, f"{path}.{i}")


def _targets(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every ``_target_`` in nested dicts and lists, depth first."""
    stack = [(path, node)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                child = f"{path}.{key}" if path else str(key)
                if key == "_target_":
                    yield child, value
                else:
                    stack.append((child, value))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}", item) for i, item in enumerate(node))
