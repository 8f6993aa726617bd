"""Run by test_collectives.py on every GPU (one rank each): the nccl backend on CUDA tensors."""

from __future__ import annotations

import numpy as np
from _checks import run_checks

import dltool.engine as torch
import dltool.engine.distributed as dist
from dltool.engine import nn
from dltool.engine.nn.parallel import DistributedDataParallel as DDP

RANK = SIZE = 0


def _values(rank: int) -> torch.Tensor:
    return torch.tensor([1.0, -2.0, 3.0], device="cuda") * (rank + 1)


def _expected(reduce) -> np.ndarray:
    return reduce(np.stack([_values(rank).cpu().numpy() for rank in range(SIZE)]), axis=0)


def check_all_reduce() -> None:
    for op, reduce in (("SUM", np.sum), ("MAX", np.max), ("AVG", np.mean)):
        t = _values(RANK)
        work = dist.all_reduce(t, op=getattr(dist.ReduceOp, op), async_op=True)
        work.wait()
        assert t.device.type == "cuda"
        np.testing.assert_allclose(t.cpu().numpy(), _expected(reduce), rtol=1e-6)


def check_broadcast_all_gather_reduce() -> None:
    t = _values(RANK)
    dist.broadcast(t, src=SIZE - 1)
    np.testing.assert_array_equal(t.cpu().numpy(), _values(SIZE - 1).cpu().numpy())
    out = [torch.zeros(3, device="cuda") for _ in range(SIZE)]
    dist.all_gather(out, _values(RANK))
    for rank, t in enumerate(out):
        np.testing.assert_array_equal(t.cpu().numpy(), _values(rank).cpu().numpy())
    t = _values(RANK)
    dist.reduce(t, dst=0)
    if RANK == 0:
        np.testing.assert_array_equal(t.cpu().numpy(), _expected(np.sum))


def check_cpu_tensor_is_refused() -> None:
    try:
        dist.all_reduce(torch.ones(2))
    except RuntimeError as ex:
        assert "CUDA tensors only" in str(ex), ex
    else:
        raise AssertionError("no error")


def check_ddp_step_on_gpu() -> None:
    torch.manual_seed(RANK)
    model = DDP(nn.Linear(4, 2).to("cuda"))
    model(torch.ones(3, 4, device="cuda") * (RANK + 1)).sum().backward()
    expected = np.full((2, 4), 3.0 * (SIZE + 1) / 2)  # the mean over ranks of 3 * (rank + 1)
    np.testing.assert_allclose(model.module.weight.grad.cpu().numpy(), expected, rtol=1e-6)


if __name__ == "__main__":
    run_checks(globals(), "nccl")
