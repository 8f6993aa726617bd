"""dltool's Optuna sweeper (``hydra/sweeper=dltool_optuna``): the search space grammar, a TPE search
that finds a good learning rate, pruning, a killed sweep that resumes, parallel jobs, the report,
and bad input refused before any trial."""

from __future__ import annotations

import csv
import importlib.util
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import cli_env, ok, run_dltool

optuna = pytest.importorskip("optuna")

from dltool.training.errors import ConfigError  # noqa: E402
from dltool.training.optuna_sweep import search_space  # noqa: E402

# Linear regression, plain SGD, 4 steps of 128 samples: the validation loss has one clear best
# learning rate (about 0.3: smaller ones have not converged, larger ones overshoot).
LINREG = [
    "experiment=linreg",
    "hydra/sweeper=dltool_optuna",
    "logger=none",
    "optimizer.momentum=0",
    "trainer.epochs=1",
    "trainer.batch_size=128",
    "trainer.limit_train_batches=4",
    "dataset.train.num_samples=600",
    "dataset.test.num_samples=128",
    "hydra.sweep.dir=runs/sweep",
]


def _results(sweep: Path) -> dict:
    return yaml.safe_load((sweep / "optimization_results.yaml").read_text())


def _summary(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def _jobs(sweep: Path) -> list[str]:
    return sorted((p.parent.name for p in sweep.glob("*/.hydra")), key=lambda name: int(name.split("_")[0]))


# ---------------------------------------------------------------- the search space


def test_search_space_maps_hydras_sweep_grammar_to_optuna_distributions() -> None:
    space, fixed = search_space(
        {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))", "model.dropout": "0.1"},
        [
            "trainer.batch_size=range(16,65,16)",
            "optimizer=choice(sgd,adam)",
            "model.dropout=interval(0,0.5)",
            "trainer.epochs=3",
        ],
    )
    dist = optuna.distributions
    assert space == {
        "optimizer.lr": dist.FloatDistribution(1e-4, 1e-1, log=True),
        "trainer.batch_size": dist.IntDistribution(16, 64, step=16),
        "optimizer": dist.CategoricalDistribution(("sgd", "adam")),
        "model.dropout": dist.FloatDistribution(0.0, 0.5),  # the command line replaces the YAML's value
    }
    assert fixed == ["trainer.epochs=3"]
    space, _ = search_space({}, ["model.layers=tag(int, interval(1, 4))"])
    assert space == {"model.layers": dist.IntDistribution(1, 4)}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=normal(0,1)", "cannot parse 'optimizer.lr=normal(0,1)': Unknown function 'normal'"),
        (
            "trainer.batch_size=range(64,16)",
            "'trainer.batch_size=range(64,16)': empty range (no value from 64 to 16)",
        ),
        ("optimizer.lr=interval(0.1,0.01)", "empty interval (0.1 is not below 0.01)"),
        ("optimizer.lr=tag(log, interval(0, 1))", "a log interval must start above 0"),
        ("optimizer.lr=tag(logg, interval(1e-3, 1))", "unknown tag 'logg' (known: log, int)"),
        ("optimizer=glob(adam*)", "glob cannot be searched; use choice(...)"),
    ],
)
def test_a_bad_search_space_is_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match="hydra.sweeper") as error:
        search_space({}, [override])
    assert message in str(error.value)


# ---------------------------------------------------------------- whole sweeps


@pytest.fixture(autouse=True)
def _one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the parallel jobs share 2 cores


def _dltool(cwd: Path, data_root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_dltool(cwd, data_root, "train", "-m", *args)


@pytest.mark.slow
def test_tpe_finds_the_learning_rate_a_grid_finds_in_12_trials(tmp_path: Path, data_root: Path) -> None:
    grid = ["optimizer.lr=choice(0.003,0.01,0.03,0.1,0.3,1.0)", "hydra.sweeper.sampler=grid"]
    (tmp_path / "grid").mkdir()
    ok(_dltool(tmp_path / "grid", data_root, *LINREG, *grid, "hydra.sweeper.pruner=none"))
    grid_results = _results(tmp_path / "grid/runs/sweep")
    assert sum(grid_results["trials"].values()) == 6  # the whole grid, once each, though n_trials is 20
    best_lr = grid_results["best"]["params"]["optimizer.lr"]
    assert 0.003 < best_lr < 1.0  # the grid's best is inside the grid: the search has something to find

    (tmp_path / "tpe").mkdir()
    tpe = ["optimizer.lr=tag(log, interval(1e-3, 1.5))", "hydra.sweeper.n_trials=12", "hydra.sweeper.seed=0"]
    startup = "hydra.sweeper.sampler_args={n_startup_trials:5}"
    result = ok(_dltool(tmp_path / "tpe", data_root, *LINREG, *tpe, startup, "hydra.sweeper.pruner=none"))
    sweep = tmp_path / "tpe/runs/sweep"
    results = _results(sweep)
    assert sum(results["trials"].values()) == 12
    assert best_lr / 3 <= results["best"]["params"]["optimizer.lr"] <= best_lr * 3
    # the best trial's overrides, ready to paste, reproduce its job
    best_job = next(sweep.glob(f"{results['best']['trial']}_*"))
    assert results["best"]["command"] == "dltool train " + " ".join(
        yaml.safe_load((best_job / ".hydra/overrides.yaml").read_text())
    )
    assert results["best"]["command"] in result.stdout
    assert (sweep / "optimization_history.png").stat().st_size > 0 and (
        sweep / "param_importances.png"
    ).exists()
    rows = _summary(sweep)
    assert len(rows) == 12 and rows[0]["job"] == best_job.name


@pytest.mark.slow
def test_pruning_stops_the_trials_in_the_bad_half_of_the_space(tmp_path: Path, data_root: Path) -> None:
    # lr below 1e-2 barely moves in 3 epochs: the median pruner stops those after an epoch
    args = [
        *LINREG,
        "trainer.epochs=3",
        "optimizer.lr=tag(log, interval(1e-4, 0.5))",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=3",
        "hydra.sweeper.pruner_args={n_startup_trials:2}",
    ]
    result = ok(_dltool(tmp_path, data_root, *args))
    sweep = tmp_path / "runs/sweep"
    rows = _summary(sweep)
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert len(rows) == 10 and len(pruned) >= 4, [(r["job"], r["status"]) for r in rows]
    assert _results(sweep)["trials"]["pruned"] == len(pruned)
    for row in pruned:
        job = sweep / row["job"]
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and metrics["epochs"] < 3
        assert (job / "checkpoints/last.ckpt").exists()  # a pruned trial keeps its checkpoint
    assert "did not complete" not in result.stderr  # pruned is not failed


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_overwriting_a_job(tmp_path: Path, data_root: Path) -> None:
    args = [
        *LINREG,
        "trainer.epochs=2",
        "optimizer.lr=tag(log, interval(1e-2, 0.5))",
        "hydra.sweeper.n_trials=6",
    ]
    sweep = tmp_path / "runs/sweep"
    process = subprocess.Popen(
        [sys.executable, "-m", "dltool.cli", "train", "-m", *args],
        cwd=tmp_path,
        env=cli_env(data_root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(sweep.glob("2_*/.hydra")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {
        job: (sweep / job / "metrics.json").read_bytes()
        for job in _jobs(sweep)
        if (sweep / job / "metrics.json").exists()
    }
    started = _jobs(sweep)
    assert 2 <= len(started) < 6

    result = _dltool(tmp_path, data_root, *args)
    jobs = _jobs(sweep)
    killed = [job for job in started if job not in before]  # the job the kill cut short, if any
    if len(jobs) == 6:
        ok(result)
    else:  # its job directory stays, as failed
        assert (
            result.returncode == 1
            and f"1 of 7 sweep jobs did not complete (jobs {killed[0]})" in result.stderr
        )
    numbers = [int(job.split("_")[0]) for job in jobs]
    assert len(set(numbers)) == len(numbers) and numbers == list(range(len(numbers)))
    for job, content in before.items():  # nothing that ran before was run again or overwritten
        assert (sweep / job / "metrics.json").read_bytes() == content
    results = _results(sweep)
    assert results["trials"]["complete"] + results["trials"]["pruned"] == 6
    assert results["trials"]["fail"] == len(jobs) - 6  # the trial the kill cut short, if any
    assert {r["job"] for r in _summary(sweep)} == set(jobs)


@pytest.mark.slow
def test_two_parallel_jobs_with_the_joblib_launcher(tmp_path: Path, data_root: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    args = [*LINREG, "optimizer.lr=tag(log, interval(1e-2, 0.5))", "hydra.sweeper.n_trials=2"]
    ok(_dltool(tmp_path, data_root, *args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))
    sweep = tmp_path / "runs/sweep"
    assert [job.split("_")[0] for job in _jobs(sweep)] == ["0", "1"]
    assert {r["status"] for r in _summary(sweep)} == {"completed"}
    trials = optuna.load_study(study_name="dltool", storage=f"sqlite:///{sweep / 'optuna.db'}").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2
    # asked together, and run by two worker processes, neither of them the sweep's
    workers = {t.user_attrs["dltool_job"] for t in trials}
    assert len(workers) == 2 and trials[0].user_attrs["dltool_sweeper"] not in workers


def test_a_trial_run_alone_exits_with_its_own_code_when_pruned(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="minimize")
    for _ in range(5):  # five finished trials whose first epoch was far better
        study.add_trial(
            optuna.trial.create_trial(value=0.0, intermediate_values={1: 0.0}, distributions={}, params={})
        )
    trial = study.ask()
    found = {"storage": storage, "study": "s", "trial": trial.number}
    monkeypatch.setenv("DLTOOL_OPTUNA_TRIAL", json.dumps(found))
    run = [arg for arg in LINREG if not arg.startswith(("hydra/", "hydra."))]
    result = run_dltool(tmp_path, data_root, "train", *run, "trainer.epochs=3", "hydra.run.dir=run")
    assert result.returncode == 3, result.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "pruned" and metrics["epochs"] == 1
    assert (tmp_path / "run/checkpoints/last.ckpt").exists()
    assert study.get_trials()[-1].intermediate_values.keys() == {1}


# ---------------------------------------------------------------- bad input, refused before any trial


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["optimizer.lr=normal(0,1)"],
            "cannot parse override 'optimizer.lr=normal(0,1)'",
        ),
        (["trainer.batch_size=range(64,16)"], "empty range"),
        (
            ["optimizer.lr=0.1,0.2", "hydra.sweeper.storage=sqlite:////nonexistent/dir/o.db"],
            "hydra.sweeper.storage: cannot open 'sqlite:////nonexistent/dir/o.db'",
        ),
        (
            ["optimizer.lr=0.1,0.2", "trainer.monitor=val/acc"],
            "trainer.monitor: the runs never log 'val/acc' (they log val/loss, val/mae, train/loss, train/mae)",
        ),
        (
            ["optimizer.lr=0.1,0.2", "hydra.sweeper.sampler=annealing"],
            "hydra.sweeper.sampler: unknown sampler 'annealing' (choose from tpe, random, grid, cmaes)",
        ),
        (
            ["optimizer.lr=interval(0.1,0.2)", "hydra.sweeper.sampler=grid"],
            "grid needs choice(...) or range(...) for optimizer.lr",
        ),
        pytest.param(
            ["optimizer.lr=interval(0.1,0.2)", "hydra.sweeper.sampler=cmaes"],
            "hydra.sweeper.sampler: cmaes needs the cmaes package (pip install cmaes)",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("cmaes") is not None, reason="cmaes is installed"
            ),
        ),
    ],
)
def test_bad_input_is_one_line_before_any_trial(
    tmp_path: Path, data_root: Path, args: list[str], message: str
) -> None:
    result = _dltool(tmp_path, data_root, *LINREG, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dltool train: error: ") and message in lines[0], (
        result.stderr
    )
    assert not list((tmp_path / "runs").glob("sweep/*/.hydra"))  # no trial started


def test_plain_commands_do_not_import_optuna(tmp_path: Path, data_root: Path) -> None:
    code = (
        "import sys; import dltool.cli, dltool.training.trainer; from hydra.core.plugins import Plugins; "
        "Plugins.instance(); print('optuna' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(data_root), capture_output=True, text=True
    )
    assert result.stdout.strip() == "False", result.stderr


def test_sweep_report_names_a_directory_without_a_study(dltool: Callable, tmp_path: Path) -> None:
    result = dltool("sweep-report", "dir=nowhere")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "dltool sweep-report: error: dir: nowhere/optuna.db does not exist (give a sweep directory, or storage=URL)"
    )
