"""``dltool.engine.distributed`` on 2 MPI ranks (worker_collectives.py), and its errors in one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import dltool.engine.distributed as dist
from tests.engine.distributed.conftest import ROOT, assert_passed, check_names, rank_results

WORKER = Path(__file__).with_name("worker_collectives.py")
CHECKS = check_names(WORKER)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    return rank_results(WORKER, tmp_path_factory.mktemp("collectives"))


@pytest.mark.parametrize("check", CHECKS)
def test_collective_on_two_ranks(results: list[dict[str, str]], check: str) -> None:
    assert_passed(results, check)


def test_import_does_not_load_mpi4py() -> None:
    code = (
        "import sys, dltool.engine as torch; torch.distributed.is_available(); print('mpi4py' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_uninitialized_group_is_a_clear_error() -> None:
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.get_rank()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.all_reduce(None)


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="Invalid backend: 'gloo'"):
        dist.init_process_group("gloo")


NCCL_WORKER = Path(__file__).with_name("worker_nccl.py")


@pytest.mark.gpu
def test_nccl_backend_on_every_gpu(tmp_path: Path) -> None:
    from dltool.engine import cuda

    if not (dist.is_nccl_available() and cuda.is_available()):
        pytest.skip("needs cupy with NCCL and a GPU")
    results = rank_results(NCCL_WORKER, tmp_path, ranks=cuda.device_count())
    for check in (
        "check_all_reduce",
        "check_broadcast_all_gather_reduce",
        "check_cpu_tensor_is_refused",
        "check_ddp_step_on_gpu",
    ):
        assert_passed(results, check)
