"""dltool's Optuna sweeper: a study in a database, trials launched as Hydra jobs, pruning across processes.

``hydra_plugins.dltool_optuna_sweeper.DltoolOptunaSweeper`` (``hydra/sweeper=dltool_optuna``, or
an ``hparams_search=`` config) hands the sweep to ``OptunaSweep``. The search space is Hydra's
sweep grammar (``tag(log, interval(1e-4, 1e-1))``, ``choice(a, b)``, ``range(1, 5)``) from
``hydra.sweeper.params`` and the command line. Trials are asked ``n_jobs`` at a time (Optuna's
ask-and-tell), run by the launcher as jobs numbered by their trial number, and told the job's
``metrics.json`` outcome. Each job finds its trial through ``DLTOOL_OPTUNA_TRIAL`` (set with
``hydra.job.env_set``) and reports the monitored metric after every validation, so the pruner can
stop it (``dltool.training.optuna_trial``). The study lives in ``<sweep dir>/optuna.db`` unless
``storage`` names another database: the same command with the same ``hydra.sweep.dir`` resumes it.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import OverrideParseException
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from dltool.training.console import console
from dltool.training.errors import ConfigError
from dltool.training.optuna_trial import TRIAL_ENV
from dltool.training.sweep_report import write_report

SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    # NOTE: Optuna's GridSampler stops the study, which ask-and-tell cannot; the grid is enqueued instead
    "grid": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}
_TAGS = {"log", "int"}
# A diverged run is told as pruned: the samplers rank pruned trials below complete ones and so learn
# to avoid its region, where a failed trial would teach them nothing.
_OUTCOMES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "diverged": TrialState.PRUNED}
_SWEEPER_ATTR = "dltool_sweeper"  # host:pid of the sweep that asked a trial


class OptunaSweep:
    """One ``dltool train -m`` run of an Optuna study (``hydra.sweeper`` holds ``options``)."""

    def __init__(
        self,
        options: Mapping[str, Any],
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.options, self.config = dict(options), config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: Sequence[str]) -> list[JobReturn]:
        """Run the study's missing trials; every bad option is refused before the first one."""
        space, fixed = search_space(self.options.get("params") or {}, arguments)
        if not space:
            raise ConfigError(
                "hydra.sweeper: nothing to search; give hydra.sweeper.params or KEY=interval(...)"
            )
        n_trials = self._n_trials(space)
        study = self._study(space, self._direction())
        self._fail_stale_trials(study)
        self._refuse_foreign_jobs(study)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        todo = max(n_trials - len(done), 0)
        self._announce(study, todo)
        returns: list[JobReturn] = []
        while todo > 0:
            trials = [study.ask(space) for _ in range(min(self._batch_size(), todo))]
            for trial in trials:
                trial.set_user_attr(_SWEEPER_ATTR, _sweeper_id())
            try:
                batch = self._launch(study, trials, fixed)
            except BaseException:
                for trial in trials:  # Ctrl-C or a launcher error: nothing of this batch finished
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            for trial, job in zip(trials, batch, strict=True):
                self._tell(study, trial, job)
            returns += batch
            todo -= len(trials)
        write_report(study, self.sweep_dir, self._monitor())
        return returns

    # ------------------------------------------------------------ checks and the study

    def _monitor(self) -> str:
        return str(self.config.trainer.get("monitor"))

    def _direction(self) -> str:
        """Whether to maximize or minimize ``trainer.monitor``: ``direction``, else ``trainer.mode``."""
        trainer = self.config.trainer
        if trainer.get("monitor") is None:
            raise ConfigError(
                "trainer.monitor: the Optuna sweeper optimizes it, and it is null (set e.g. val/loss)"
            )
        _check_monitor_name(self._monitor(), self.config)
        direction = self.options.get("direction") or {"min": "minimize", "max": "maximize"}.get(trainer.mode)
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction: expected minimize or maximize, got {direction!r}")
        return direction

    def _storage_url(self) -> str:
        return self.options.get("storage") or f"sqlite:///{(self.sweep_dir / 'optuna.db').resolve()}"

    def _study(self, space: Mapping[str, BaseDistribution], direction: str) -> optuna.Study:
        """The study in the storage, created or loaded; its sampler and pruner built from the options."""
        sampler_name = self.options.get("sampler")
        if sampler_name == "cmaes" and importlib.util.find_spec("cmaes") is None:
            # NOTE: Optuna imports it only at the first trial the sampler itself picks
            raise ConfigError("hydra.sweeper.sampler: cmaes needs the cmaes package (pip install cmaes)")
        points = list(itertools.product(*grid(space).values())) if sampler_name == "grid" else []
        args = {"seed": self.options.get("seed"), **_plain(self.options.get("sampler_args"))}
        sampler = _build("sampler", SAMPLERS, sampler_name, args)
        pruner = build_pruner(self.options.get("pruner"), self.options.get("pruner_args"))
        url, name = self._storage_url(), str(self.options.get("study_name") or "dltool")
        if url.startswith("sqlite:///"):
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(
                storage=url,
                study_name=name,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        except Exception as ex:
            raise ConfigError(f"hydra.sweeper.storage: cannot open {url!r}: {_first_line(ex)}") from None
        if study.direction.name.lower() != direction:
            raise ConfigError(
                f"hydra.sweeper.direction: study {name!r} in {url} was made to "
                f"{study.direction.name.lower()}, this sweep asks to {direction}"
            )
        study.set_user_attr("monitor", self._monitor())
        for point in points:
            study.enqueue_trial(dict(zip(space, point, strict=True)), skip_if_exists=True)
        return study

    def _fail_stale_trials(self, study: optuna.Study) -> None:
        """Mark failed the trials a killed sweep on this host left running (their process is gone)."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            host, _, pid = str(trial.user_attrs.get(_SWEEPER_ATTR, "")).rpartition(":")
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                study.tell(trial.number, state=TrialState.FAIL)

    def _refuse_foreign_jobs(self, study: optuna.Study) -> None:
        """Refuse a sweep directory whose job numbers this study would reuse (another study's jobs)."""
        taken = {int(m[0]) for p in self.sweep_dir.glob("*/.hydra") if (m := re.match(r"\d+", p.parent.name))}
        numbers = {trial.number for trial in study.get_trials(deepcopy=False)}
        foreign = sorted(taken - numbers)
        if foreign:
            raise ConfigError(
                f"hydra.sweep.dir: {self.sweep_dir} holds job {foreign[0]}, which is not a trial of study "
                f"{study.study_name!r} in {self._storage_url()}; choose another hydra.sweep.dir"
            )

    def _n_trials(self, space: Mapping[str, BaseDistribution]) -> int:
        """``n_trials``: the study's size, counting earlier runs' trials (a grid's size at most)."""
        n_trials = self.options.get("n_trials")
        if not isinstance(n_trials, int) or n_trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials: must be an integer >= 1, got {n_trials!r}")
        if self.options.get("sampler") == "grid":
            n_trials = min(n_trials, math.prod(len(values) for values in grid(space).values()))
        return n_trials

    def _batch_size(self) -> int:
        """``n_jobs``, else the launcher's (joblib's ``-1``: every core), else 1."""
        n_jobs = self.options.get("n_jobs") or self.config.hydra.launcher.get("n_jobs") or 1
        return max(int(n_jobs), 1) if n_jobs != -1 else os.cpu_count() or 1

    def _announce(self, study: optuna.Study, todo: int) -> None:
        done = len(study.get_trials(deepcopy=False))
        goal = f"{study.direction.name.lower()} {self._monitor()}"
        console().print(
            f"study {study.study_name!r} ({goal}) in {self._storage_url()}: {done} trials so far, {todo} to run. "
            f"The same command with hydra.sweep.dir={self.sweep_dir} resumes it."
        )

    # ------------------------------------------------------------ trials

    def _launch(self, study: optuna.Study, trials: list[optuna.Trial], fixed: list[str]) -> list[JobReturn]:
        """Run the trials as jobs numbered by their trial numbers (runs of consecutive numbers together)."""
        returns: list[JobReturn] = []
        start = 0
        for end in range(1, len(trials) + 1):
            if end == len(trials) or trials[end].number != trials[end - 1].number + 1:
                jobs = [self._overrides(study, trial, fixed) for trial in trials[start:end]]
                returns += self.launcher.launch(jobs, initial_job_idx=trials[start].number)
                start = end
        return returns

    def _overrides(self, study: optuna.Study, trial: optuna.Trial, fixed: list[str]) -> list[str]:
        found = {
            "storage": self._storage_url(),
            "study": study.study_name,
            "trial": trial.number,
            # NOTE: a study's pruner is not stored in its database; the job builds the same one
            "pruner": self.options.get("pruner"),
            "pruner_args": _plain(self.options.get("pruner_args")),
        }
        sampled = [f"{key}={override_value(value)}" for key, value in trial.params.items()]
        return [*fixed, *sampled, f"+hydra.job.env_set.{TRIAL_ENV}={override_value(json.dumps(found))}"]

    def _tell(self, study: optuna.Study, trial: optuna.Trial, job: JobReturn) -> None:
        """Tell the trial its job's outcome: the best monitored value, pruned, or failed."""
        result = _job_result(job)
        state = _OUTCOMES.get(result.get("status"), TrialState.FAIL)
        value = result.get("best")
        if state == TrialState.COMPLETE and not (isinstance(value, (int, float)) and math.isfinite(value)):
            state = TrialState.FAIL
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        shown = f" {self._monitor()} {value:.4g}" if isinstance(value, (int, float)) else ""
        console().print(f"trial {trial.number}: {result.get('status', 'failed')}{shown}")


# ---------------------------------------------------------------- the search space


def search_space(
    params: Mapping[str, Any], arguments: Sequence[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The distributions to sample and the fixed overrides.

    ``params`` (``hydra.sweeper.params``: key to expression) come first; the command line's
    ``arguments`` replace a key's entry: a sweep expression is searched, a plain value is fixed.

    Raises:
        ConfigError: naming an expression that does not parse, an unknown function or tag, or an
            empty choice, range or interval.
    """
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for line in [f"{key}={value}" for key, value in params.items()] + list(arguments):
        try:
            (override,) = parser.parse_overrides([line])
        except OverrideParseException as ex:
            raise ConfigError(f"hydra.sweeper: cannot parse '{line}': {_parse_error(ex)}") from None
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override, line)
        else:
            fixed[key] = line
    return space, list(fixed.values())


def distribution(override: Override, line: str) -> BaseDistribution:
    """Optuna's distribution for one sweep override: choice, range (int), interval (log, int)."""
    value = override.value()
    tags = getattr(value, "tags", set())
    if tags - _TAGS:
        raise ConfigError(
            f"hydra.sweeper: '{line}': unknown tag {sorted(tags - _TAGS)[0]!r} (known: log, int)"
        )
    if isinstance(value, ChoiceSweep):
        if not value.list or tags:
            raise ConfigError(
                f"hydra.sweeper: '{line}': "
                + ("tags apply to interval and range" if tags else "empty choice")
            )
        if not all(v is None or isinstance(v, (bool, int, float, str)) for v in value.list):
            raise ConfigError(f"hydra.sweeper: '{line}': choices must be numbers, strings or booleans")
        return CategoricalDistribution(tuple(value.list))
    if isinstance(value, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(
                f"hydra.sweeper: '{line}': empty range (no value from {value.start} to {value.stop})"
            )
        if all(isinstance(v, int) for v in values):
            return IntDistribution(
                values[0], values[-1], log="log" in tags, step=1 if "log" in tags else abs(value.step)
            )
        return CategoricalDistribution(tuple(values))  # NOTE: float steps do not add up exactly
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if not low < high:
            raise ConfigError(f"hydra.sweeper: '{line}': empty interval ({low} is not below {high})")
        if "log" in tags and low <= 0:
            raise ConfigError(f"hydra.sweeper: '{line}': a log interval must start above 0")
        if "int" in tags:
            return IntDistribution(math.ceil(low), math.floor(high), log="log" in tags)
        return FloatDistribution(low, high, log="log" in tags)
    raise ConfigError(
        f"hydra.sweeper: '{line}': {type(value).__name__.lower()} cannot be searched; use choice(...)"
    )


def grid(space: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """The grid's values of each key: choices and integer ranges only."""
    values = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise ConfigError(
                f"hydra.sweeper.sampler: grid needs choice(...) or range(...) for {key}, not an interval"
            )
    return values


def override_value(value: Any) -> str:
    """``value`` as Hydra's override grammar reads it back (quoted when it is text that needs it)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][\w./-]*", text) and text.lower() not in ("null", "true", "false"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---------------------------------------------------------------- helpers


def build_pruner(name: str | None, args: Any) -> optuna.pruners.BasePruner:
    """The pruner ``hydra.sweeper.pruner`` names (median by default), with ``pruner_args``."""
    return _build("pruner", PRUNERS, name, _plain(args))


def _build(kind: str, classes: Mapping[str, Any], name: str | None, args: dict[str, Any]) -> Any:
    """The sampler or pruner class ``name`` (the first of ``classes`` when None) called with ``args``."""
    name = name or next(iter(classes))
    if name not in classes:
        raise ConfigError(f"hydra.sweeper.{kind}: unknown {kind} {name!r} (choose from {', '.join(classes)})")
    try:
        return classes[name](**args)
    except Exception as ex:
        raise ConfigError(f"hydra.sweeper.{kind}: {name}: {_first_line(ex)}") from None


def _plain(node: Any) -> dict[str, Any]:
    """A ``*_args`` option as a plain dict (empty when unset)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def _check_monitor_name(monitor: str, config: DictConfig) -> None:
    """Refuse a monitor the task never logs (its class lists ``metric_names``) before any trial."""
    split, _, name = monitor.partition("/")
    try:
        names = get_class(str(config.task._target_)).metric_names
    except Exception:  # the first trial reports a task that cannot be imported
        names = None
    if split not in ("train", "val") or (names is not None and name not in names):
        known = ", ".join(f"{s}/{n}" for s in ("val", "train") for n in names or ("loss",))
        raise ConfigError(f"trainer.monitor: the runs never log {monitor!r} (they log {known})")


def _job_result(job: JobReturn) -> dict[str, Any]:
    """The job's metrics.json (``{}`` when the job did not get as far as writing it)."""
    if job.status != JobStatus.COMPLETED or job.hydra_cfg is None:
        return {}
    path = Path(job.hydra_cfg.hydra.runtime.output_dir) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _sweeper_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_error(ex: OverrideParseException) -> str:
    """The parser's complaint without its preamble and link (``Unknown function 'normal'``)."""
    lines = [line for line in str(ex).splitlines()[1:] if line.strip() and not line.startswith("See ")]
    text = "; ".join(lines) or str(ex)
    return re.sub(r"^\w+ while evaluating '[^']*': ", "", text)


def _first_line(ex: BaseException) -> str:
    lines = [line.strip() for line in str(ex).splitlines() if line.strip()]
    return lines[0] if lines else type(ex).__name__
