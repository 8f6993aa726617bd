"""``dltool train trainer.num_processes=2``: two MPI ranks, one run, rank 0 writing (docs/distributed.md)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dltool.training.checkpoint import load_checkpoint
from tests.cli.conftest import TINY_GAN, cli_env, ok

pytest.importorskip("mpi4py")
from dltool.training.distributed import find_mpiexec

if find_mpiexec() is None:
    pytest.skip("no mpiexec", allow_module_level=True)

# The synthetic regression set through an MLP with dropout (each rank draws its own masks): ~3 s a run.
FAST = [
    "experiment=linreg",
    "model=mlp",
    "model.hidden_sizes=[16]",
    "trainer.epochs=3",
    "trainer.batch_size=32",
]
TWO = "trainer.num_processes=2"
USER_MODEL = '''
import os
from dltool.engine import nn

class Net(nn.Module):
    """A linear model whose rank 1 fails at its fifth training forward."""

    def __init__(self, input_shape, out_features):
        super().__init__()
        self.linear = nn.Linear(input_shape[0], out_features)
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        if self.calls == 5 and os.environ.get("PMI_RANK") == "1":
            raise RuntimeError("boom on rank 1")
        return self.linear(x)
'''


def test_two_ranks_share_one_run_dir_and_rank_0_writes(dltool: Callable, tmp_path: Path) -> None:
    result = ok(dltool("train", *FAST, TWO))
    (run,) = (tmp_path / "runs").iterdir()  # the ranks agreed on Hydra's timestamped directory
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert "batch 32 x 2 processes = 64" in result.stdout
    assert result.stdout.count("done: ") == 1 and result.stdout.count("epoch 3/3") == 1
    checkpoint = load_checkpoint(run / "checkpoints/last.ckpt")
    assert checkpoint["distributed"]["world_size"] == 2 and len(checkpoint["distributed"]["ranks"]) == 2
    # the test metrics reduced over the ranks are those of a one-process evaluation of best.ckpt
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    ok(dltool("eval", f"checkpoint={run / 'checkpoints/best.ckpt'}"))
    single = json.loads((run / "checkpoints/best.test.json").read_text())
    found = {key: value for key, value in _flat(single).items() if key.endswith(("loss", "mae"))}
    assert found, single
    for key, value in found.items():
        assert metrics[f"test/{key.rsplit('/', 1)[-1]}"] == pytest.approx(value, rel=1e-6)


def _flat(tree: dict, prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, float):
            flat[f"{prefix}{key}"] = value
    return flat


def test_resume_with_the_same_ranks_is_bit_exact(dltool: Callable, tmp_path: Path) -> None:
    ok(dltool("train", *FAST, TWO, "hydra.run.dir=runs/straight"))
    ok(dltool("train", *FAST, TWO, "trainer.max_steps=20", "hydra.run.dir=runs/split"))  # mid-epoch 2
    assert load_checkpoint(tmp_path / "runs/split/checkpoints/last.ckpt")["loop"]["batch"] == 5
    ok(dltool("train", "resume=runs/split/checkpoints/last.ckpt", "trainer.max_steps=null"))  # 2, as saved
    straight, split = (
        load_checkpoint(tmp_path / f"runs/{name}/checkpoints/last.ckpt") for name in ("straight", "split")
    )
    for key, value in straight["model"].items():
        np.testing.assert_array_equal(value.numpy(), split["model"][key].numpy(), err_msg=key)
    for rank in range(2):  # every rank's generator continued where it stopped
        ours, theirs = (c["distributed"]["ranks"][rank]["rng"]["dltool"].numpy() for c in (split, straight))
        np.testing.assert_array_equal(ours, theirs)


def test_resume_with_another_number_of_ranks_warns(dltool: Callable, tmp_path: Path) -> None:
    ok(dltool("train", *FAST, TWO, "trainer.max_steps=20", "hydra.run.dir=runs/split"))
    result = ok(
        dltool(
            "train",
            "resume=runs/split/checkpoints/last.ckpt",
            "trainer.max_steps=null",
            "trainer.num_processes=1",
        )
    )
    assert (
        "resuming a checkpoint of 2 process(es) with 1: the data order changes"
        in result.stdout + result.stderr
    )
    assert load_checkpoint(tmp_path / "runs/split/checkpoints/last.ckpt")["loop"]["epoch"] == 3


def test_a_failing_rank_ends_the_job_with_its_error(dltool: Callable, tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(USER_MODEL)
    start = time.monotonic()
    result = dltool("train", "experiment=linreg", TWO, "model._target_=boom.Net", timeout=60)
    assert result.returncode != 0
    assert "dltool train: error: boom on rank 1" in result.stderr
    assert time.monotonic() - start < 30


@contextlib.contextmanager
def _long_run(tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A 2-rank run far too long to finish, once its first checkpoint is written; killed on exit."""
    command = [
        sys.executable,
        "-m",
        "dltool.cli",
        "train",
        *FAST,
        TWO,
        "trainer.epochs=500",
        "hydra.run.dir=run",
    ]
    job = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run/checkpoints/last.ckpt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        yield job
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_a_killed_rank_ends_the_job(tmp_path: Path, data_root: Path) -> None:
    env = cli_env(data_root) | {"DLTOOL_TEST_JOB": uuid.uuid4().hex}
    with _long_run(tmp_path, env) as job:
        os.kill(_rank_pid(env["DLTOOL_TEST_JOB"], rank=1), signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = job.communicate(timeout=30)
        assert job.returncode != 0, stderr
        assert time.monotonic() - killed < 20
        load_checkpoint(tmp_path / "run/checkpoints/last.ckpt")  # the last good checkpoint still loads


def _rank_pid(job: str, rank: int) -> int:
    """The pid of rank ``rank`` of the job whose environment holds DLTOOL_TEST_JOB=``job``."""
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"DLTOOL_TEST_JOB={job}".encode() in environ and f"PMI_RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no rank {rank} process found")


def test_started_by_mpiexec_directly(tmp_path: Path, data_root: Path) -> None:
    env = cli_env(data_root) | {"OPENBLAS_NUM_THREADS": "1"}
    command = [
        find_mpiexec(),
        "-n",
        "2",
        sys.executable,
        "-m",
        "dltool.cli",
        "train",
        *FAST,
        "trainer.epochs=1",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "batch 32 x 2 processes = 64" in result.stdout  # not launched again: one group of 2
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_num_processes_errors(tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {"OPENBLAS_NUM_THREADS": "1"}
    command = [
        find_mpiexec(),
        "-n",
        "2",
        sys.executable,
        "-m",
        "dltool.cli",
        "train",
        *FAST,
        "trainer.num_processes=3",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "trainer.num_processes=3 but the MPI launcher started 2 ranks" in result.stderr


def test_sigterm_stops_every_rank_at_one_step_with_a_checkpoint(tmp_path: Path, data_root: Path) -> None:
    with _long_run(tmp_path, cli_env(data_root)) as job:
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=30)
    assert job.returncode != 0
    assert "stopped by SIGTERM; saved run/checkpoints/last.ckpt" in stderr
    checkpoint = load_checkpoint(tmp_path / "run/checkpoints/last.ckpt")  # mid-epoch or at an epoch's end
    assert len(checkpoint["distributed"]["ranks"]) == 2


# ---------------------------------------------------------------- the GAN: two optimizers, two backward passes


def test_gan_on_two_ranks_matches_one_process_with_the_global_batch(tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [
        find_mpiexec(),
        "-n",
        "2",
        sys.executable,
        str(Path(__file__).with_name("worker_gan.py")),
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in range(2):
        for check, outcome in json.loads((tmp_path / f"rank{rank}.json").read_text()).items():
            assert outcome == "ok", f"rank {rank}, {check}: {outcome}"


def test_gan_trains_on_two_ranks(dltool: Callable, tmp_path: Path) -> None:
    result = ok(dltool("train", *TINY_GAN, TWO, "hydra.run.dir=run"))
    assert "batch 16 x 2 processes = 32" in result.stdout
    assert sorted(p.name for p in (tmp_path / "run/samples").iterdir()) == ["epoch-1.png", "epoch-2.png"]
    checkpoint = load_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    assert checkpoint["distributed"]["world_size"] == 2 and checkpoint["loop"]["step"] == 6
    assert any(key.startswith("discriminator.") for key in checkpoint["model"])  # no DDP prefix


# ---------------------------------------------------------------- sweeps: each job its own ranks


def _summary(sweep: Path) -> dict[str, str]:
    lines = (sweep / "summary.csv").read_text().splitlines()[1:]
    return dict(line.split(",")[:2] for line in lines)


def test_optuna_trials_run_in_parallel_each_as_two_ranks(dltool: Callable, tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    search = [
        "hydra/sweeper=dltool_optuna",
        "hydra.sweeper.sampler=grid",
        "optimizer.lr=choice(0.01, -1.0)",  # the second trial fails
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweep.dir=sweep",
    ]
    result = dltool("train", "-m", *FAST, "logger=none", "trainer.epochs=1", TWO, *search)
    assert result.returncode == 1, result.stderr
    sweep = tmp_path / "sweep"
    assert _summary(sweep) == {"0_lr=0.01": "completed", "1_lr=-1.0": "failed"}
    assert "1 of 2 sweep jobs did not complete (jobs 1_lr=-1.0)" in result.stderr
    assert "failed: optimizer (dltool.engine.optim.SGD): Invalid learning rate: -1.0" in result.stderr
    assert "Traceback" not in result.stderr
    done = sweep / "0_lr=0.01"
    assert load_checkpoint(done / "checkpoints/last.ckpt")["distributed"]["world_size"] == 2
    assert (done / ".hydra/overrides.yaml").exists()  # the sweep's record of the job, kept by its ranks
    # the failed job's directory stays, with rank 0's error, for the summary
    failed = json.loads((sweep / "1_lr=-1.0/metrics.json").read_text())
    assert failed["status"] == "failed" and "Invalid learning rate" in failed["error"]
    trials = optuna.load_study(study_name="dltool", storage=f"sqlite:///{sweep / 'optuna.db'}").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    # the trial reached its rank 0, which reported the epoch: a process other than the sweep's
    assert trials[0].intermediate_values.keys() == {1}
    assert trials[0].user_attrs["dltool_job"] != trials[0].user_attrs["dltool_sweeper"]


def test_a_pruned_trial_stops_every_rank_at_one_epoch(tmp_path: Path, data_root: Path) -> None:
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="minimize")
    for _ in range(5):  # five finished trials whose first epoch was far better
        study.add_trial(
            optuna.trial.create_trial(value=0.0, intermediate_values={1: 0.0}, distributions={}, params={})
        )
    found = {"storage": storage, "study": "s", "trial": study.ask().number}
    env = cli_env(data_root) | {"DLTOOL_OPTUNA_TRIAL": json.dumps(found)}
    command = [sys.executable, "-m", "dltool.cli", "train", *FAST, TWO, "hydra.run.dir=run"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr  # the pruned exit code, not MPI_Abort's
    assert "MPI_Abort" not in result.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "pruned" and metrics["epochs"] == 1
    checkpoint = load_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    assert checkpoint["loop"]["epoch"] == 1 and checkpoint["distributed"]["world_size"] == 2
    assert study.get_trials()[-1].intermediate_values.keys() == {1}  # reported once, by rank 0


def test_parallel_jobs_share_the_cores_among_their_ranks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from omegaconf import OmegaConf

    from dltool.training import sweep_ranks

    monkeypatch.setattr(sweep_ranks, "_cores", lambda: 16)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    launcher = {"joblib": {"launcher": {"n_jobs": 2}}, "all": {"launcher": {"n_jobs": -1}}}
    assert sweep_ranks.jobs_at_once(OmegaConf.create({"launcher": {"_target_": "basic"}})) == 1
    assert sweep_ranks.jobs_at_once(OmegaConf.create(launcher["joblib"])) == 2
    assert sweep_ranks.jobs_at_once(OmegaConf.create(launcher["all"])) == 16
    assert sweep_ranks.threads_per_rank(2, 1) == 8
    assert sweep_ranks.threads_per_rank(2, 2) == 4
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # the user's (or joblib's) limit is kept below the share
    assert sweep_ranks.threads_per_rank(2, 2) == 2
    assert not caplog.records
    assert sweep_ranks.threads_per_rank(4, 8) == 1
    assert "8 sweep jobs at once x trainer.num_processes=4 = 32 processes on 16 cores" in caplog.text


def test_a_task_that_optimizes_by_hand_keeps_its_parameters_in_its_models() -> None:
    import dltool.engine as dl
    from dltool.training.distributed import Ranks
    from dltool.training.errors import ConfigError
    from dltool.training.tasks import Task

    class Scaled(Task):
        automatic_optimization = False

        def __init__(self) -> None:
            super().__init__()
            self.net = dl.nn.Linear(2, 2)
            self.scale = dl.nn.Parameter(dl.ones(1))

    with pytest.raises(ConfigError, match="Scaled holds parameters of its own: scale"):
        Ranks(rank=0, size=2).wrap(Scaled())
