"""DistributedDataParallel and SyncBatchNorm on 2 MPI ranks (worker_ddp.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.distributed.conftest import assert_passed, check_names, rank_results

WORKER = Path(__file__).with_name("worker_ddp.py")
CHECKS = check_names(WORKER)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    return rank_results(WORKER, tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("check", CHECKS)
def test_ddp_on_two_ranks(results: list[dict[str, str]], check: str) -> None:
    assert_passed(results, check)


def test_ddp_needs_a_process_group() -> None:
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))


def test_sync_batchnorm_outside_a_group_is_batchnorm() -> None:
    torch = pytest.importorskip("torch")
    dl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    expected = torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    )
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    assert [type(m).__name__ for m in converted] == [type(m).__name__ for m in expected]
    assert list(converted.state_dict()) == list(expected.state_dict())
    x = dl.randn(4, 2, 6, 6)
    for training in (True, False):
        model.train(training), converted.train(training)
        np.testing.assert_allclose(converted(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(converted[1].running_var.numpy(), model[1].running_var.numpy(), rtol=1e-6)
