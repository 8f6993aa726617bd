"""The ``nccl`` backend: collectives on cupy arrays through cupy's NCCL bindings.

ChainerMN's ``pure_nccl`` design: MPI starts the processes and carries the control plane (the NCCL
unique id is created on rank 0 and broadcast over MPI as an int array); the arrays go through NCCL
on the current CUDA stream. Each rank uses the GPU of its rank on the node (or ``device_id``).

NOTE: written without GPU hardware to run it on; its test runs only where cupy and a GPU exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltool.engine.distributed._mpi import MpiBackend, _average
from dltool.engine.distributed._work import Work

_UNIQUE_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES; cupy returns the id as a tuple of that many chars
_OPS = {"SUM": "NCCL_SUM", "AVG": "NCCL_SUM", "PRODUCT": "NCCL_PROD", "MIN": "NCCL_MIN", "MAX": "NCCL_MAX"}
_DTYPES = {
    "int8": "NCCL_INT8",
    "uint8": "NCCL_UINT8",
    "int32": "NCCL_INT32",
    "int64": "NCCL_INT64",
    "float16": "NCCL_FLOAT16",
    "float32": "NCCL_FLOAT32",
    "float64": "NCCL_FLOAT64",
}


class NcclBackend:
    """Collectives over one NCCL communicator spanning ``MPI.COMM_WORLD``."""

    name = "nccl"

    def __init__(self, device_id: int | None = None) -> None:
        import cupy
        from cupy.cuda import nccl

        self._cupy, self._nccl = cupy, nccl
        self.control = MpiBackend()
        self.rank, self.size = self.control.rank, self.control.size
        if device_id is None:
            from mpi4py import MPI

            node = self.control.comm.Split_type(MPI.COMM_TYPE_SHARED)
            device_id = node.Get_rank() % cupy.cuda.runtime.getDeviceCount()
            node.Free()
        cupy.cuda.Device(device_id).use()
        uid = np.zeros(_UNIQUE_ID_BYTES, dtype=np.int64)
        if self.rank == 0:
            uid[:] = nccl.get_unique_id()
        self.control.comm.Bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(self.size, tuple(uid.tolist()), self.rank)

    def check_array(self, array: Any) -> None:
        if not isinstance(array, self._cupy.ndarray):
            raise RuntimeError("the nccl backend takes CUDA tensors only; use backend='mpi' for CPU tensors")
        if array.dtype.name not in _DTYPES:
            raise TypeError(f"the nccl backend does not support dtype {array.dtype}")

    def _launch(self, call: Any, *args: Any) -> Work:
        stream = self._cupy.cuda.get_current_stream()
        call(*args, stream.ptr)
        event = stream.record()
        return Work(event.synchronize, lambda: event.done)

    def _dtype(self, array: Any) -> int:
        return getattr(self._nccl, _DTYPES[array.dtype.name])

    def _op(self, op: str) -> int:
        if op not in _OPS:
            raise ValueError(f"the nccl backend does not support ReduceOp.{op}")
        return getattr(self._nccl, _OPS[op])

    def all_reduce(self, array: Any, op: str) -> Work:
        ptr = array.data.ptr
        work = self._launch(self.comm.allReduce, ptr, ptr, array.size, self._dtype(array), self._op(op))
        return work._and_then(_average(array, self.size)) if op == "AVG" else work

    def broadcast(self, array: Any, src: int) -> Work:
        ptr = array.data.ptr
        return self._launch(self.comm.broadcast, ptr, ptr, array.size, self._dtype(array), src)

    def all_gather(self, array: Any, out: Any) -> Work:
        return self._launch(self.comm.allGather, array.data.ptr, out.data.ptr, array.size, self._dtype(array))

    def reduce(self, array: Any, dst: int, op: str) -> Work:
        ptr = array.data.ptr
        work = self._launch(self.comm.reduce, ptr, ptr, array.size, self._dtype(array), self._op(op), dst)
        return work._and_then(_average(array, self.size)) if op == "AVG" and self.rank == dst else work

    def gather(self, array: Any, out: Any, dst: int) -> Work:
        raise RuntimeError("gather is not supported by dltool's nccl backend; use all_gather")

    def scatter(self, source: Any, array: Any, src: int) -> Work:
        raise RuntimeError("scatter is not supported by dltool's nccl backend; use broadcast")

    def barrier(self) -> Work:
        self._cupy.cuda.get_current_stream().synchronize()
        return self.control.barrier()

    def control_allgather(self, array: np.ndarray) -> np.ndarray:
        return self.control.control_allgather(array)

    def close(self) -> None:
        self.comm.destroy()
        self.control.close()
