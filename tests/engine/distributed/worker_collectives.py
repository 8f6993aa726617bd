"""Run by test_collectives.py as 2 MPI ranks: the collectives' values, dtypes and errors."""

from __future__ import annotations

import numpy as np
from _checks import run_checks

import dltool.engine as torch
import dltool.engine.distributed as dist

RANK = SIZE = 0
DTYPES = (torch.float32, torch.float64, torch.int32, torch.int64)


def _rank_values(rank: int, dtype: torch.dtype) -> torch.Tensor:
    """Rank ``rank``'s input: different on each rank, exact in every dtype."""
    return torch.tensor([[1, -2, 3], [4, 5, -6]], dtype=dtype) * (rank + 2)


def _all_inputs(dtype: torch.dtype) -> np.ndarray:
    return np.stack([_rank_values(rank, dtype).numpy() for rank in range(SIZE)])


def check_all_reduce_values_and_dtypes() -> None:
    expected = {"SUM": np.sum, "MAX": np.max, "MIN": np.min, "PRODUCT": np.prod}
    for dtype in DTYPES:
        for op, reduce in expected.items():
            t = _rank_values(RANK, dtype)
            dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
            assert t.dtype == dtype, (op, t.dtype)
            np.testing.assert_array_equal(
                t.numpy(), reduce(_all_inputs(dtype), axis=0).astype(t.numpy().dtype)
            )


def check_all_reduce_avg() -> None:
    t = _rank_values(RANK, torch.float32)
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    np.testing.assert_allclose(t.numpy(), _all_inputs(torch.float32).mean(axis=0), rtol=1e-6)


def check_all_reduce_is_in_place() -> None:
    t = _rank_values(RANK, torch.float32)
    array, version = t._data, t._version
    assert dist.all_reduce(t) is None
    assert t._data is array and t._version == version + 1


def check_async_handles() -> None:
    tensors = [_rank_values(RANK, torch.float32) * i for i in range(1, 4)]
    works = [dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True) for t in tensors]
    for work in reversed(works):  # waited out of order: each one still gets its own result
        assert work.wait() is True and work.is_completed()
    for i, t in enumerate(tensors, 1):
        np.testing.assert_array_equal(t.numpy(), _all_inputs(torch.float32).sum(axis=0) * i)
    b = torch.full((4,), float(RANK))
    work = dist.broadcast(b, src=1, async_op=True)
    work.wait()
    np.testing.assert_array_equal(b.numpy(), np.ones(4))


def check_broadcast() -> None:
    for dtype in DTYPES:
        t = _rank_values(RANK, dtype)
        dist.broadcast(t, src=SIZE - 1)
        np.testing.assert_array_equal(t.numpy(), _rank_values(SIZE - 1, dtype).numpy())


def check_all_gather() -> None:
    out = [torch.zeros(2, 3, dtype=torch.int64) for _ in range(SIZE)]
    dist.all_gather(out, _rank_values(RANK, torch.int64))
    for rank, t in enumerate(out):
        np.testing.assert_array_equal(t.numpy(), _rank_values(rank, torch.int64).numpy())


def check_reduce_only_changes_dst() -> None:
    t = _rank_values(RANK, torch.float64)
    dist.reduce(t, dst=0, op=dist.ReduceOp.MAX)
    expected = (
        _all_inputs(torch.float64).max(axis=0) if RANK == 0 else _rank_values(RANK, torch.float64).numpy()
    )
    np.testing.assert_array_equal(t.numpy(), expected)


def check_gather_and_scatter() -> None:
    gathered = [torch.zeros(2, 3) for _ in range(SIZE)] if RANK == 0 else None
    dist.gather(_rank_values(RANK, torch.float32), gathered, dst=0)
    if RANK == 0:
        np.testing.assert_array_equal(np.stack([g.numpy() for g in gathered]), _all_inputs(torch.float32))
    t = torch.zeros(2, 3)
    pieces = [_rank_values(rank, torch.float32) for rank in range(SIZE)] if RANK == 1 else None
    dist.scatter(t, pieces, src=1)
    np.testing.assert_array_equal(t.numpy(), _rank_values(RANK, torch.float32).numpy())


def check_mismatched_shapes_raise_on_every_rank() -> None:
    t = torch.zeros(3 + RANK)
    try:
        dist.all_reduce(t)
    except RuntimeError as ex:
        assert "rank 0: [3] float32, rank 1: [4] float32" in str(ex), ex
    else:
        raise AssertionError("no error")
    try:
        dist.broadcast(torch.zeros(2, dtype=torch.float32 if RANK else torch.float64), src=0)
    except RuntimeError as ex:
        assert "shapes or dtypes differ" in str(ex) and "float64" in str(ex), ex
    else:
        raise AssertionError("no error")
    t = torch.ones(2)
    dist.all_reduce(t)  # the group still works after the errors
    np.testing.assert_array_equal(t.numpy(), [SIZE, SIZE])


def check_bad_arguments() -> None:
    cases = [
        (lambda: dist.all_reduce([1.0]), TypeError, "Expected parameter `tensor` of type torch.Tensor"),
        (lambda: dist.broadcast(torch.ones(2), src=SIZE), ValueError, "Invalid src"),
        (lambda: dist.all_reduce(torch.ones(2), op="MEDIAN"), ValueError, "Invalid reduce op"),
        (lambda: dist.all_reduce(torch.ones(2, 3).t()), RuntimeError, "Tensors must be contiguous"),
        (lambda: dist.all_gather([torch.ones(2)], torch.ones(2)), ValueError, "list of 2 tensors"),
        (lambda: dist.init_process_group("mpi"), ValueError, "initialize the default process group twice"),
    ]
    for call, error, message in cases:
        try:
            call()
        except error as ex:
            assert message in str(ex), ex
        else:
            raise AssertionError(f"no {error.__name__} for {message}")


def check_barrier_and_queries() -> None:
    assert dist.is_initialized() and dist.is_available() and dist.get_backend() == "mpi"
    assert dist.barrier() is None
    dist.barrier(async_op=True).wait()


if __name__ == "__main__":
    run_checks(globals(), "mpi", world_size=2)
