"""The ``mpi`` backend: collectives on numpy arrays through mpi4py's buffer (upper-case) calls.

Every collective is MPI's non-blocking one (``Iallreduce``, ``Ibcast``, ...), so an ``async_op``
call and a blocking one share a path: the blocking call waits at once. Arrays travel through the
buffer protocol, never through pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine.distributed._work import Work

# ReduceOp name -> mpi4py attribute name; AVG is a SUM divided afterwards.
_OPS = {
    "SUM": "SUM",
    "AVG": "SUM",
    "PRODUCT": "PROD",
    "MIN": "MIN",
    "MAX": "MAX",
    "BAND": "BAND",
    "BOR": "BOR",
    "BXOR": "BXOR",
}


class MpiBackend:
    """Collectives over ``MPI.COMM_WORLD`` (its duplicate, so user MPI traffic cannot interleave)."""

    name = "mpi"

    def __init__(self) -> None:
        from mpi4py import MPI  # imported here: the engine imports without the [mpi] extra

        self.comm = MPI.COMM_WORLD.Dup()
        self.in_place = MPI.IN_PLACE
        self.ops = {name: getattr(MPI, attribute) for name, attribute in _OPS.items()}
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    def check_array(self, array: Any) -> None:
        if not isinstance(array, np.ndarray):
            raise RuntimeError("the mpi backend takes CPU tensors only; use backend='nccl' for CUDA tensors")

    def _request(self, request: Any, then: Callable[[], None] | None = None) -> Work:
        return Work(request.Wait, request.Test, then)

    def all_reduce(self, array: np.ndarray, op: str) -> Work:
        request = self.comm.Iallreduce(self.in_place, array, op=self.ops[op])
        return self._request(request, _average(array, self.size) if op == "AVG" else None)

    def broadcast(self, array: np.ndarray, src: int) -> Work:
        return self._request(self.comm.Ibcast(array, root=src))

    def all_gather(self, array: np.ndarray, out: np.ndarray) -> Work:
        return self._request(self.comm.Iallgather(array, out))

    def reduce(self, array: np.ndarray, dst: int, op: str) -> Work:
        mpi_op = self.ops[op]
        if self.rank == dst:
            request = self.comm.Ireduce(self.in_place, array, op=mpi_op, root=dst)
            return self._request(request, _average(array, self.size) if op == "AVG" else None)
        return self._request(self.comm.Ireduce(array, None, op=mpi_op, root=dst))

    def gather(self, array: np.ndarray, out: np.ndarray | None, dst: int) -> Work:
        return self._request(self.comm.Igather(array, out, root=dst))

    def scatter(self, source: np.ndarray | None, array: np.ndarray, src: int) -> Work:
        return self._request(self.comm.Iscatter(source, array, root=src))

    def barrier(self) -> Work:
        return self._request(self.comm.Ibarrier())

    def control_allgather(self, array: np.ndarray) -> np.ndarray:
        """Gather a small int64 array from every rank (shape checks, run-dir agreement)."""
        out = np.empty((self.size, *array.shape), dtype=array.dtype)
        self.comm.Allgather(array, out)
        return out

    def close(self) -> None:
        self.comm.Free()


def _average(array: Any, size: int) -> Callable[[], None]:
    def divide() -> None:
        if array.dtype.kind in "iub":
            array[...] //= size
        else:
            array[...] /= size

    return divide
