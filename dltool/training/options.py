"""The trainer options: their types and allowed ranges, checked before anything runs.

The defaults live in ``conf/trainer/default.yaml``; this module only says what is valid, so a
wrong value fails at once with the option's name instead of deep inside the loop.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from dltool.training.errors import ConfigError

_LIMIT_HELP = "a batch count >= 1 or a fraction in (0, 1]"


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    """The ``trainer`` config group, typed (see ``conf/trainer/default.yaml`` for each option)."""

    epochs: int
    max_steps: int | None
    batch_size: int
    eval_batch_size: int
    device: str
    seed: int
    num_workers: int
    grad_clip: float | None
    divergence_factor: float | None
    val_split: int | float
    monitor: str | None
    mode: str
    patience: int | None
    min_delta: float
    checkpoint_every_n_epochs: int
    keep_last_k: int | None
    log_every_n_steps: int
    fast_dev_run: bool
    limit_train_batches: int | float | None
    limit_val_batches: int | float | None
    limit_test_batches: int | float | None
    overfit_batches: int
    num_processes: int
    compile: bool

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> TrainerOptions:
        """Check ``node`` (the ``trainer`` config) and build the options.

        Raises:
            ConfigError: naming the first unknown, missing, mistyped or out-of-range option.
        """
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(node) - set(hints))
        if unknown:
            raise ConfigError(f"trainer: unknown option '{unknown[0]}' (known: {', '.join(hints)})")
        missing = [name for name in hints if name not in node]
        if missing:
            raise ConfigError(f"trainer: missing option '{missing[0]}'")
        for name, hint in hints.items():
            if not _matches(node[name], hint):
                raise ConfigError(
                    f"trainer.{name}: expected {_type_name(hint)}, got {node[name]!r} "
                    f"({type(node[name]).__name__})"
                )
        options = cls(**{name: node[name] for name in hints})
        options._check_ranges()
        return options

    def _check_ranges(self) -> None:
        positive = (
            "epochs",
            "max_steps",
            "batch_size",
            "eval_batch_size",
            "patience",
            "keep_last_k",
            "log_every_n_steps",
            "num_processes",
        )
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"trainer.{name}: must be >= 1, got {value}")
        for name in ("num_workers", "checkpoint_every_n_epochs", "overfit_batches", "min_delta"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer.{name}: must be >= 0, got {getattr(self, name)}")
        if self.divergence_factor is not None and not self.divergence_factor > 1:
            raise ConfigError(
                f"trainer.divergence_factor: must be > 1 (or null), got {self.divergence_factor}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"trainer.grad_clip: must be > 0 (or null), got {self.grad_clip}")
        if isinstance(self.val_split, float) and not 0.0 <= self.val_split < 1.0:
            raise ConfigError(f"trainer.val_split: a fraction must be in [0, 1), got {self.val_split}")
        if isinstance(self.val_split, int) and self.val_split < 0:
            raise ConfigError(f"trainer.val_split: a count must be >= 0, got {self.val_split}")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"trainer.mode: must be 'min' or 'max', got {self.mode!r}")
        if self.monitor is not None and "/" not in self.monitor:
            raise ConfigError(f"trainer.monitor: expected a metric tag such as val/acc, got {self.monitor!r}")
        for kind in ("train", "val", "test"):
            limit = getattr(self, f"limit_{kind}_batches")
            if limit is not None and not (1 <= limit if isinstance(limit, int) else 0.0 < limit <= 1.0):
                raise ConfigError(f"trainer.limit_{kind}_batches: expected {_LIMIT_HELP}, got {limit}")

    def num_batches(self, kind: str, available: int) -> int:
        """How many batches of split ``kind`` (train, val, test) one pass uses, of ``available``."""
        if self.fast_dev_run:
            return min(1, available)
        limit = getattr(self, f"limit_{kind}_batches")
        if limit is None:
            return available
        if isinstance(limit, float):
            return min(available, max(1, math.floor(limit * available)))
        return min(available, limit)

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` of the monitored metric improves on ``best`` by more than min_delta."""
        if best is None:
            return True
        return value > best + self.min_delta if self.mode == "max" else value < best - self.min_delta


def _matches(value: Any, hint: Any) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_matches(value, member) for member in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # NOTE: bool is an int subclass; only a bool option takes one
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join("null" if h is type(None) else h.__name__ for h in typing.get_args(hint))
    return hint.__name__
