"""A run that is a trial of dltool's Optuna sweep: it reports its monitored metric to the study.

The sweeper (``dltool.training.optuna_sweep``) sets ``DLTOOL_OPTUNA_TRIAL`` for each job, a JSON
object with the study's ``storage`` URL, its name (``study``) and the ``trial`` number. The
trainer asks ``current_trial()`` once; only when the variable is set is optuna imported, so
plain runs do not need the ``[optuna]`` extra.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from dltool.training.errors import ConfigError

TRIAL_ENV = "DLTOOL_OPTUNA_TRIAL"


class OptunaTrial:
    """One trial of a study in an Optuna storage, reached from another process."""

    def __init__(
        self, storage: str, study: str, trial: int, pruner: str | None = None, pruner_args: Any = None
    ) -> None:
        import optuna  # NOTE: only a sweep's jobs need it (an optional extra)

        from dltool.training.optuna_sweep import build_pruner

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # the sweep made the tables; checking them again costs a fifth of a second a trial
        database = optuna.storages.RDBStorage(
            storage, skip_compatibility_check=True, skip_table_creation=True
        )
        study_id = database.get_study_id_from_name(study)
        trial_id = database.get_trial_id_from_study_id_trial_number(study_id, trial)
        loaded = optuna.load_study(
            study_name=study, storage=database, pruner=build_pruner(pruner, pruner_args)
        )
        self._trial = optuna.Trial(loaded, trial_id)
        self._trial.set_user_attr("dltool_job", f"{socket.gethostname()}:{os.getpid()}")  # where it ran
        self.number = trial

    def should_prune(self, value: float, epoch: int) -> bool:
        """Report the monitored ``value`` after ``epoch``; whether the study's pruner stops the trial."""
        self._trial.report(value, epoch)
        return self._trial.should_prune()


def current_trial() -> OptunaTrial | None:
    """The trial this process runs for a sweep, or None outside an Optuna sweep.

    Raises:
        ConfigError: ``DLTOOL_OPTUNA_TRIAL`` is set but does not name a reachable trial.
    """
    spec = os.environ.get(TRIAL_ENV)
    if not spec:
        return None
    try:
        found: dict[str, Any] = json.loads(spec)
        return OptunaTrial(
            str(found["storage"]),
            str(found["study"]),
            int(found["trial"]),
            found.get("pruner"),
            found.get("pruner_args"),
        )
    except Exception as ex:
        raise ConfigError(f"{TRIAL_ENV}: no trial of an Optuna study found from {spec!r}: {ex}") from None
