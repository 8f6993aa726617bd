"""The ``dltool`` command: ``dltool {train,eval,predict,sample,generate,export,sweep-report} [OVERRIDES ...]``.

Only parsing, Hydra wiring and turning errors into one line and an exit code live here; the
work is in ``dltool.training`` (``trainer.train``, ``evaluation.evaluate_checkpoint``,
``predict.predict``, ``generation.sample``, ``generation.generate``, ``export.export_checkpoint``,
``sweep_report.report``), which tests call directly.
"""

from __future__ import annotations

import functools
import math
import os
import re
import signal
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import dltool
from dltool.engine import host_memory
from dltool.training.checkpoint import load_checkpoint, refuse_used_run_dir, remove_unstarted_run, run_dir_of
from dltool.training.console import run_logging
from dltool.training.distributed import (
    abort_job,
    follow_run_dir,
    in_group,
    lead_run_dir,
    relaunch,
    under_launcher,
)
from dltool.training.errors import Interrupted
from dltool.training.evaluation import evaluate_checkpoint
from dltool.training.export import export_checkpoint
from dltool.training.generation import generate, sample
from dltool.training.predict import predict
from dltool.training.resume import locate_checkpoint, resume_config
from dltool.training.sweep import job_name
from dltool.training.sweep_ranks import run_sweep_job
from dltool.training.sweep_report import report
from dltool.training.trainer import train

_GROUP_OPTIONS_SKIP = ("hydra", "__pycache__")
# the exit code of a run that an Optuna sweep's pruner stopped (a trial run by an outside launcher)
PRUNED_EXIT_CODE = 3

# the sweep jobs' directory names (conf/config.yaml: hydra.sweep.subdir)
OmegaConf.register_new_resolver("dltool.job_name", job_name, replace=True)


class _Failed(BaseException):
    """Carries a command's error past Hydra's job runner, which reports any ``Exception`` itself."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _reported(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as ex:
            raise _Failed(ex) from ex

    return wrapper


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@_reported
def train_command(cfg: DictConfig) -> float:
    """Train; return the monitored metric's best value (what a sweeper plugin optimizes)."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    lead_run_dir(run_dir)  # rank 0 of a data-parallel run: the other ranks wait for it in main
    choices = {group: option for group, option in hydra_cfg.runtime.choices.items() if "/" not in group}
    resumption = None
    ranks = _job_ranks(cfg) if hydra_cfg.mode == RunMode.MULTIRUN else 1
    try:
        if ranks > 1:  # a data-parallel sweep job: a process group of its own, in the job's directory
            return run_sweep_job(ranks, hydra_cfg, f"hydra.run.dir={_quote(str(run_dir))}")["best"]
        if cfg.resume:
            cfg, resumption = resume_config(cfg, run_dir, list(hydra_cfg.overrides.task), choices.keys())
        result = train(cfg, run_dir, resumption, choices, list(hydra_cfg.overrides.task))
        if result["status"] == "pruned" and hydra_cfg.mode != RunMode.MULTIRUN:
            raise SystemExit(PRUNED_EXIT_CODE)
        return result["best"]
    except Exception as ex:  # one failed job must not stop the sweep; the summary lists it
        if hydra_cfg.mode != RunMode.MULTIRUN:
            # NOTE: only a directory whose .hydra/ this run wrote (not a sweep job's, which its ranks reuse)
            if resumption is None and not cfg.resume and hydra_cfg.output_subdir is not None:
                remove_unstarted_run(run_dir)
            raise
        overrides = " ".join(hydra_cfg.overrides.task)
        print(
            f"dltool train: job {hydra_cfg.job.num} ({overrides}) failed: {_one_line(ex)} "
            f"(log: {run_dir / 'train.log'})",
            file=sys.stderr,
        )
        return math.nan


@hydra.main(config_path="conf", config_name="eval", version_base="1.3")
@_reported
def eval_command(cfg: DictConfig) -> None:
    """Evaluate a checkpoint (prints the tables, writes the JSON report)."""
    with run_logging():
        evaluate_checkpoint(cfg)


@hydra.main(config_path="conf", config_name="predict", version_base="1.3")
@_reported
def predict_command(cfg: DictConfig) -> None:
    """Print the top-k classes of image files."""
    with run_logging():
        predict(cfg)


@hydra.main(config_path="conf", config_name="sample", version_base="1.3")
@_reported
def sample_command(cfg: DictConfig) -> None:
    """Write a grid of a GAN's samples."""
    with run_logging():
        sample(cfg)


@hydra.main(config_path="conf", config_name="generate", version_base="1.3")
@_reported
def generate_command(cfg: DictConfig) -> None:
    """Print text sampled from a language model."""
    with run_logging():
        generate(cfg)


@hydra.main(config_path="conf", config_name="export", version_base="1.3")
@_reported
def export_command(cfg: DictConfig) -> None:
    """Write a checkpoint's model as an ONNX file."""
    with run_logging():
        export_checkpoint(cfg)


@hydra.main(config_path="conf", config_name="sweep-report", version_base="1.3")
@_reported
def sweep_report_command(cfg: DictConfig) -> None:
    """Write an Optuna sweep's results and plots again."""
    report(cfg)


COMMANDS: dict[str, tuple[Callable[[], Any], str]] = {
    "train": (train_command, "train a model            dltool train [-m] [GROUP=OPTION ...] [KEY=VALUE ...]"),
    "eval": (eval_command, "evaluate a checkpoint    dltool eval checkpoint=PATH [split=test|val]"),
    "predict": (
        predict_command,
        "classify image files     dltool predict checkpoint=PATH inputs=[a.png,b.png]",
    ),
    "sample": (sample_command, "draw a GAN's images      dltool sample checkpoint=PATH [n=64] [seed=0]"),
    "generate": (
        generate_command,
        "continue a text          dltool generate checkpoint=PATH prompt=TEXT [length=200]",
    ),
    "export": (
        export_command,
        "a model for serving      dltool export checkpoint=PATH [format=onnx] [output=FILE]",
    ),
    "sweep-report": (
        sweep_report_command,
        "an Optuna sweep's plots  dltool sweep-report dir=SWEEP_DIR [storage=URL] [study=NAME]",
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Run ``dltool COMMAND [ARGS]``; returns the exit code (0 ok, 1 error, 2 usage, 3 a trial pruned,
    128+N signal N)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"dltool {dltool.__version__}")
        return 0
    host_memory.tune_malloc()  # a program's choice, not the engine's: numpy's temporaries reuse pages
    # NOTE: as `python -m` would, so that `model._target_=mynet.Net` finds ./mynet.py; appended,
    # so a file in the working directory cannot shadow an installed package
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(
            f"dltool: error: unknown command '{command}' (choose from {', '.join(COMMANDS)}; see dltool --help)",
            file=sys.stderr,
        )
        return 2
    try:
        values = _override_values(rest)
        if command == "train":
            launched = _data_parallel(values, rest)
            if launched is not None:
                return launched
        if command == "train" and not ("-m" in rest or "--multirun" in rest):
            rest += _run_dir_overrides(values)
        elif command == "train":
            rest += _job_name_overrides(rest)
    except Exception as ex:
        print(f"dltool {command}: error: {_one_line(ex)}", file=sys.stderr)
        return _ended(1)
    return _ended(_run(command, rest))


def _data_parallel(values: dict[str, Any], args: list[str]) -> int | None:
    """``trainer.num_processes=N`` outside a launcher: run as N MPI ranks and return their exit
    code. Inside a group of ranks: point the ranks above 0 at rank 0's run dir; None (run here).
    A sweep runs here too: each of its jobs starts its own ranks (``train_command``)."""
    multirun = "-m" in args or "--multirun" in args
    if multirun and in_group():
        raise ValueError(
            "a sweep (-m) cannot run under an MPI launcher: each job starts its own ranks "
            "(dltool train -m trainer.num_processes=N ...)"
        )
    if multirun:
        return None  # each job with trainer.num_processes > 1 starts its own ranks (train_command)
    num_processes = values.get("trainer.num_processes", _saved_num_processes(values))
    if isinstance(num_processes, int) and num_processes > 1 and not under_launcher():
        return relaunch(num_processes, ["train", *args])
    run_dir = follow_run_dir()
    if run_dir is not None:
        values["hydra.run.dir"] = run_dir
        args += [f"hydra.run.dir={_quote(run_dir)}", "hydra.output_subdir=null"]
    return None


def _job_ranks(cfg: DictConfig) -> int:
    """The ranks a sweep job starts: its ``trainer.num_processes`` outside a launcher, else 1 (the
    job trains in this process, and a bad value is refused there)."""
    num_processes = cfg.trainer.get("num_processes", 1)
    return num_processes if isinstance(num_processes, int) and not under_launcher() else 1


def _saved_num_processes(values: dict[str, Any]) -> int:
    """The ``trainer.num_processes`` of the checkpoint that ``resume=`` names (1 without one)."""
    if values.get("resume") is None or under_launcher():
        return 1
    checkpoint = locate_checkpoint(str(values["resume"]), values.get("hydra.run.dir"))
    if checkpoint is None:
        return 1
    trainer = load_checkpoint(checkpoint).get("resolved_config", {}).get("trainer", {})
    return trainer.get("num_processes", 1)


def _ended(code: int) -> int:
    """``code``; a failing rank of a data-parallel run ends every rank (they may wait for it). A
    pruned trial's ranks agreed to stop at the same epoch and exit together."""
    if code not in (0, PRUNED_EXIT_CODE) and in_group():
        abort_job(code)
    return code


def _run(command: str, args: list[str]) -> int:
    """Call the command's Hydra entry point with ``args`` as its argv, mapping errors to exit codes."""
    saved_argv, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"dltool {command}", *args]
    # NOTE: Hydra then re-raises errors instead of printing its own multi-line report, so we can
    # print one line. A user who sets HYDRA_FULL_ERROR=1 gets the traceback as usual.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        COMMANDS[command][0]()
        return 0
    except _Failed as failed:
        if saved_full_error == "1":
            raise failed.error from None
        print(f"dltool {command}: error: {_one_line(failed.error)}", file=sys.stderr)
        return 1
    except Interrupted as ex:
        name = signal.Signals(ex.signum).name
        path = _display(ex.checkpoint) if ex.checkpoint else None
        hint = f"; saved {path}. Resume with: dltool train resume={path}" if path else ""
        print(f"dltool {command}: stopped by {name}{hint}", file=sys.stderr)
        return 128 + ex.signum
    except KeyboardInterrupt:
        print(f"dltool {command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except SystemExit as ex:  # --help, argparse usage errors, a sweep with failed jobs
        if isinstance(ex.code, str):
            print(f"dltool {command}: error: {ex.code}", file=sys.stderr)
        return ex.code if isinstance(ex.code, int) else 0 if ex.code is None else 1
    except Exception as ex:
        if saved_full_error == "1":
            raise
        print(f"dltool {command}: error: {_one_line(ex)}", file=sys.stderr)
        return 1
    finally:
        sys.argv = saved_argv
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
        GlobalHydra.instance().clear()


def _run_dir_overrides(values: dict[str, Any]) -> list[str]:
    """Hydra overrides that make ``resume=`` continue in the checkpoint's own run directory.

    Hydra writes the run directory's ``.hydra/`` before the run starts: this points it at the
    checkpoint's run and keeps the original ``.hydra/`` untouched, and refuses a new run in a
    directory that holds an earlier one.
    """
    resume, run_dir = values.get("resume"), values.get("hydra.run.dir")
    if resume is None:
        if run_dir is not None:
            refuse_used_run_dir(run_dir)
        return []
    if resume == "auto" and run_dir is None:
        raise ValueError("resume=auto needs the run directory to search: add hydra.run.dir=<run dir>")
    checkpoint = locate_checkpoint(str(resume), run_dir)
    if checkpoint is None:
        return []  # auto with nothing to resume: a fresh run
    extra = ["hydra.output_subdir=null"]
    if run_dir is None:
        extra.append(f"hydra.run.dir={_quote(str(run_dir_of(checkpoint)))}")
    return extra


def _job_name_overrides(args: list[str]) -> list[str]:
    """Name a sweep's job directories after the overrides that vary between jobs only: the
    constant ones are left out of Hydra's ``override_dirname`` (``0_lr=0.1``, not ``0_epochs=1,lr=0.1``)."""
    key = "hydra.job.config.override_dirname.exclude_keys"
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    if any(o.startswith(key) for o in overrides):
        return []
    parsed = OverridesParser.create().parse_overrides(overrides)
    constant = [o.key_or_group for o in parsed if not o.is_sweep_override()]
    return [f"{key}=[{','.join(_quote(k) for k in constant)}]"] if constant else []


def _override_values(args: list[str]) -> dict[str, Any]:
    """The overrides' values by key; a malformed override is named with the parser's complaint."""
    parser = OverridesParser.create()
    values = {}
    for arg in (a for a in args if "=" in a and not a.startswith("-")):
        try:
            (override,) = parser.parse_overrides([arg])
        except OverrideParseException as ex:
            raise ValueError(f"cannot parse override '{arg}': {_one_line(ex)}") from None
        values[override.key_or_group] = override.value()
    return values


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (shorter to paste)."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _quote(value: str) -> str:
    if re.fullmatch(r"[\w./\\:@~+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _one_line(ex: BaseException) -> str:
    """An exception and its config-library cause as one line, without Hydra's hints to set env vars."""
    parts = []
    for error in (ex, ex.__cause__ if type(ex).__module__.startswith("hydra") else None):
        if error is None:
            continue
        lines = [line.strip() for line in str(error).splitlines()]
        lines = [
            line
            for line in lines
            if line
            and not line.startswith(
                (
                    "full_key:",
                    "object_type=",
                    "reference_type=",
                    "Set the environment",
                    "Config search path",
                    "provider=",
                )
            )
        ]
        parts.append(_join(lines) or type(error).__name__)
    return ". ".join(p.rstrip(".") for p in parts)


def _join(lines: list[str]) -> str:
    """Join message lines as sentences; the lines after one ending in ':' form a comma list."""
    text, listing = "", False
    for line in lines:
        if not text:
            text = line
        elif listing:
            text += (" " if text.endswith(":") else ", ") + line
        else:
            text += (" " if text.endswith((".", ":")) else ". ") + line
        listing = listing or line.endswith(":")
    return text


def _usage() -> str:
    name_width = max(map(len, COMMANDS)) + 1
    commands = "\n".join(f"  {name:<{name_width}}{text}" for name, (_, text) in COMMANDS.items())
    options_of = config_groups()
    width = max(map(len, options_of)) + 2  # the longest name, its colon and a space
    groups = "\n".join(
        f"  {group + ':':<{width}}{', '.join(options)}" for group, options in options_of.items()
    )
    return (
        f"usage: dltool COMMAND [ARGS ...]        (dltool {dltool.__version__})\n\n"
        "Train, evaluate and use models from YAML configs (Hydra). Runs go to runs/.\n\n"
        f"commands:\n{commands}\n\n"
        f"config groups (dltool train GROUP=OPTION):\n{groups}\n\n"
        "`dltool COMMAND --help` lists a command's options; `dltool train --cfg job` prints the composed config."
    )


def config_groups() -> dict[str, list[str]]:
    """The config groups shipped in ``dltool/conf`` and their options."""
    root = resources.files("dltool.conf")
    return {
        entry.name: sorted(f.name[: -len(".yaml")] for f in entry.iterdir() if f.name.endswith(".yaml"))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.is_dir() and entry.name not in _GROUP_OPTIONS_SKIP
    }


if __name__ == "__main__":
    sys.exit(main())
