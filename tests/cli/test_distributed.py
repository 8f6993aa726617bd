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
from tests.cli.conftest import cli_env, ok

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


def test_num_processes_errors(dltool: Callable, tmp_path: Path) -> None:
    swept = dltool("train", "-m", *FAST, TWO)
    assert swept.returncode == 1
    assert "data-parallel runs cannot be swept with -m yet" in swept.stderr
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
