"""Hydra finds sweeper plugins only in the ``hydra_plugins`` namespace package; the sweep itself is
``dltool.training.optuna_sweep`` (imported when a sweep starts, so Hydra's plugin scan of every
command does not import optuna)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class DltoolOptunaSweeper(Sweeper):
    """``hydra/sweeper=dltool_optuna``: an Optuna study run as Hydra jobs.

    Its options are ``conf/hydra/sweeper/dltool_optuna.yaml``'s.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._sweep: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from dltool.training.optuna_sweep import OptunaSweep

        self._sweep = OptunaSweep(self.options, hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> Any:
        return self._sweep.sweep(arguments)
