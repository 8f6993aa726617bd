"""A sweep job of a data-parallel run: the job trains as N MPI ranks of one run, in its own directory.

Hydra's launchers run a sweep's jobs inside their own processes (the basic launcher one after
another in the ``dltool train -m`` process, the joblib launcher in its worker processes, either
under an Optuna sweeper), where MPI can be initialized once at most. So a job whose
``trainer.num_processes`` is N starts ``dltool train`` again, not swept, as N ranks under
``mpiexec`` (``distributed.relaunch``): with the job's overrides, the job's directory as its run
directory (Hydra has written the job's ``.hydra/`` there already, so the ranks write none) and the
job's environment (an Optuna trial's ``DLTOOL_OPTUNA_TRIAL`` reaches rank 0). Each job is a new
``mpiexec``: a process group of its own. The job's result is what rank 0 wrote into the job's
``metrics.json``, which the sweep's summary and the Optuna sweeper read too.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dltool.training.distributed import BLAS_THREAD_VARIABLES, relaunch
from dltool.training.errors import DltoolError, Interrupted

log = logging.getLogger("dltool")

# dltool's own config directory: the primary config source unless --config-path names another
_OWN_CONFIGS = Path(__file__).resolve().parents[1] / "conf"


def run_sweep_job(num_processes: int, hydra_cfg: DictConfig, run_dir_override: str) -> dict[str, Any]:
    """Run the current sweep job as ``num_processes`` ranks of one run; rank 0's metrics.json.

    Args:
        num_processes: the job's ``trainer.num_processes``.
        hydra_cfg: the job's Hydra config (``HydraConfig.get()``).
        run_dir_override: ``hydra.run.dir=<the job's directory>``, quoted for Hydra's grammar.

    Returns:
        The run's metrics.json content (status ``completed`` or ``pruned``).

    Raises:
        DltoolError: the run failed or diverged (rank 0's recorded error), or its ranks died.
        Interrupted: the ranks stopped on SIGINT or SIGTERM, having saved a checkpoint: the sweep
            stops too, as a sweep of one-process jobs does.
    """
    run_dir = Path(hydra_cfg.runtime.output_dir)
    args = [
        "train",
        *config_options(hydra_cfg),
        *hydra_cfg.overrides.task,
        run_dir_override,
        "hydra.output_subdir=null",
    ]
    # NOTE: dltool sets HYDRA_FULL_ERROR for its own Hydra call; the ranks report errors in one line
    environ = {name: value for name, value in os.environ.items() if name != "HYDRA_FULL_ERROR"}
    threads = threads_per_rank(num_processes, jobs_at_once(hydra_cfg))
    code = relaunch(num_processes, args, threads, environ)
    result = _read(run_dir / "metrics.json")
    status = result.get("status")
    if status == "interrupted":
        signum = code - 128 if code - 128 in (signal.SIGINT, signal.SIGTERM) else signal.SIGINT
        last = run_dir / "checkpoints" / "last.ckpt"
        raise Interrupted(signum, last if last.exists() else None)
    if status == "pruned" or (status == "completed" and code == 0):
        return result
    raise DltoolError(result.get("error") or f"its {num_processes} ranks exited with code {code}")


def config_options(hydra_cfg: DictConfig) -> list[str]:
    """The command-line options that chose the job's config files: ``--config-dir``,
    ``--config-path`` and ``--config-name``, as the sweep's command gave them."""
    options = []
    for source in hydra_cfg.runtime.config_sources:
        if source.schema != "file":
            continue
        if source.provider == "command-line":
            options.append(f"--config-dir={source.path}")
        elif source.provider == "main" and Path(source.path).resolve() != _OWN_CONFIGS:
            options.append(f"--config-path={source.path}")
    if hydra_cfg.job.config_name != "config":
        options.append(f"--config-name={hydra_cfg.job.config_name}")
    return options


def jobs_at_once(hydra_cfg: DictConfig) -> int:
    """How many jobs the sweep's launcher runs side by side: joblib's ``n_jobs`` (-1: one per
    core, -2: all cores but one, as joblib counts), 1 for the basic launcher."""
    n_jobs = hydra_cfg.launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, _cores() + 1 + n_jobs)


def threads_per_rank(num_processes: int, jobs: int) -> int:
    """BLAS threads for each rank of a job that runs beside ``jobs - 1`` others: an equal share of
    the cores among all their ranks, never more than the environment allows (the user's setting,
    or the joblib worker's own share of the cores); a warning when parallel jobs oversubscribe
    the cores even at one thread a rank."""
    processes, cores = jobs * num_processes, _cores()
    if jobs > 1 and processes > cores:
        _warn_oversubscribed(jobs, num_processes, cores)
    share = max(1, cores // processes)
    allowed = [int(os.environ[name]) for name in BLAS_THREAD_VARIABLES if os.environ.get(name, "").isdigit()]
    return max(1, min([share, *allowed]))


@functools.cache  # once per process: a joblib worker runs many jobs
def _warn_oversubscribed(jobs: int, num_processes: int, cores: int) -> None:
    log.warning(
        f"{jobs} sweep jobs at once x trainer.num_processes={num_processes} = {jobs * num_processes} "
        f"processes on {cores} cores: they oversubscribe the cores even at one thread each; "
        f"set hydra.launcher.n_jobs={max(1, cores // num_processes)} or fewer"
    )


def _cores() -> int:
    return os.cpu_count() or 1


def _read(path: Path) -> dict[str, Any]:
    """A metrics.json (``{}`` when the run did not get as far as writing one)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
