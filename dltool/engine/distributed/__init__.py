"""``dltool.engine.distributed``: process groups and collectives, as ``torch.distributed``.

The ``mpi`` backend moves CPU tensors through mpi4py (the ``[mpi]`` extra); ``nccl`` moves CUDA
tensors through cupy's NCCL bindings, with MPI as its control plane. mpi4py is imported when a
group is created, never at ``import dltool.engine``. Start the processes with an MPI launcher:
``mpiexec -n 2 python train.py``.
"""

from dltool.engine.distributed._work import Work
from dltool.engine.distributed.distributed_c10d import (
    Backend,
    ReduceOp,
    all_gather,
    all_reduce,
    barrier,
    broadcast,
    destroy_process_group,
    gather,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
    is_nccl_available,
    reduce,
    scatter,
)

__all__ = [
    "Backend",
    "ReduceOp",
    "Work",
    "all_gather",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "gather",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_available",
    "is_nccl_available",
    "reduce",
    "scatter",
]
