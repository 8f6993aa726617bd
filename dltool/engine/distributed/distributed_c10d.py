"""The default process group and the collectives on it, with ``torch.distributed``'s names.

Rank and world size come from the MPI launcher (``mpiexec``, ``srun``), as with PyTorch's ``mpi``
backend. Before each public collective the ranks compare the shape and dtype of their tensors with
one small ``Allgather``, so a mismatch is a clear error on every rank instead of a hang or a
silently wrong buffer. DistributedDataParallel, whose buckets are identical on every rank by
construction, skips that check.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine.backend import array_module
from dltool.engine.distributed._work import Work
from dltool.engine.tensor import Tensor

_MAX_DIMS = 8  # dimensions compared by the shape check; more are folded into the element count


class ReduceOp:
    """Reductions for ``all_reduce`` and ``reduce`` (``ReduceOp.SUM``, ``AVG``, ``MAX``, ...)."""

    SUM = "SUM"
    AVG = "AVG"
    PRODUCT = "PRODUCT"
    MIN = "MIN"
    MAX = "MAX"
    BAND = "BAND"
    BOR = "BOR"
    BXOR = "BXOR"


class Backend:
    """The backends dltool provides: ``Backend.MPI`` (CPU tensors) and ``Backend.NCCL`` (CUDA)."""

    MPI = "mpi"
    NCCL = "nccl"


_default_group: Any = None
_NOT_INITIALIZED = (
    "Default process group has not been initialized, please make sure to call init_process_group."
)


def is_available() -> bool:
    """Whether distributed training can run here (mpi4py, the ``[mpi]`` extra, is installed)."""
    return is_mpi_available()


def is_mpi_available() -> bool:
    """Whether the ``mpi`` backend is available (mpi4py is importable)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available() -> bool:
    """Whether the ``nccl`` backend is available (mpi4py and cupy's NCCL bindings)."""
    if not is_mpi_available() or importlib.util.find_spec("cupy") is None:
        return False
    try:
        from cupy.cuda import nccl  # noqa: F401
    except ImportError:
        return False
    return True


def is_initialized() -> bool:
    """Whether ``init_process_group`` has been called (and not undone)."""
    return _default_group is not None


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    timeout: Any = None,
    world_size: int = -1,
    rank: int = -1,
    store: Any = None,
    group_name: str = "",
    pg_options: Any = None,
    device_id: Any = None,
) -> None:
    """Join the default process group of all the processes the MPI launcher started.

    Differs from PyTorch: rank and world size always come from the launcher (``mpiexec -n N``,
    ``srun``); ``world_size`` and ``rank``, when given, must agree with it. There is no rendezvous,
    so ``init_method``, ``store``, ``timeout`` and ``pg_options`` are accepted for PyTorch's
    signature and ignored. Run without a launcher, the process is a group of one.

    Args:
        backend: ``"mpi"`` (default; CPU tensors) or ``"nccl"`` (CUDA tensors, through cupy).
        world_size: the expected number of processes, or -1.
        rank: the expected rank of this process, or -1.
        device_id: the GPU for ``nccl`` (default: this rank's index on its node).

    Raises:
        ValueError: the group exists already, an unknown backend, or a rank / size disagreeing
            with the launcher.
        RuntimeError: mpi4py (or, for nccl, cupy) is not installed.
    """
    global _default_group
    if _default_group is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name = (backend or Backend.MPI).lower()
    if name not in (Backend.MPI, Backend.NCCL):
        raise ValueError(f"Invalid backend: '{backend}' (dltool has 'mpi' and 'nccl')")
    if not is_mpi_available():
        raise RuntimeError("distributed training needs mpi4py: pip install 'dltool[mpi]'")
    if name == Backend.NCCL:
        if not is_nccl_available():
            raise RuntimeError("backend 'nccl' needs cupy with NCCL: pip install 'dltool[gpu,mpi]'")
        from dltool.engine.distributed._nccl import NcclBackend

        index = device_id.index if hasattr(device_id, "index") else device_id
        group = NcclBackend(index)
    else:
        from dltool.engine.distributed._mpi import MpiBackend

        group = MpiBackend()
    for given, actual, what in ((world_size, group.size, "world_size"), (rank, group.rank, "rank")):
        if given not in (-1, None) and given != actual:
            group.close()
            raise ValueError(f"init_process_group: {what}={given} but the MPI launcher says {actual}")
    _default_group = group


def destroy_process_group(group: Any = None) -> None:
    """Leave the default process group (MPI itself stays up until the process exits)."""
    global _default_group
    _group(group).close()
    _default_group = None


def get_rank(group: Any = None) -> int:
    """This process's rank, from 0 to ``get_world_size() - 1``."""
    return _group(group).rank


def get_world_size(group: Any = None) -> int:
    """The number of processes in the group."""
    return _group(group).size


def get_backend(group: Any = None) -> str:
    """The group's backend name, ``"mpi"`` or ``"nccl"``."""
    return _group(group).name


def barrier(group: Any = None, async_op: bool = False, device_ids: Any = None) -> Work | None:
    """Block until every rank has reached this call."""
    return _finish(_group(group).barrier(), async_op)


def all_reduce(
    tensor: Tensor, op: str = ReduceOp.SUM, group: Any = None, async_op: bool = False
) -> Work | None:
    """Reduce ``tensor`` over all ranks, in place, so every rank holds the result.

    ``ReduceOp.AVG`` sums, then divides (floor division for integer tensors).
    """
    backend = _group(group)
    array = _checked("all_reduce", backend, tensor, "tensor")
    return _finish(_written(backend.all_reduce(array, _op(op)), tensor), async_op)


def broadcast(tensor: Tensor, src: int, group: Any = None, async_op: bool = False) -> Work | None:
    """Copy ``tensor`` of rank ``src`` into ``tensor`` on every other rank."""
    backend = _group(group)
    array = _checked("broadcast", backend, tensor, "tensor")
    return _finish(_written(backend.broadcast(array, _rank_arg(backend, src, "src")), tensor), async_op)


def all_gather(
    tensor_list: list[Tensor], tensor: Tensor, group: Any = None, async_op: bool = False
) -> Work | None:
    """Fill ``tensor_list[i]`` with rank ``i``'s ``tensor`` on every rank."""
    backend = _group(group)
    array = _checked("all_gather", backend, tensor, "tensor")
    _check_list("all_gather", backend, tensor_list, "tensor_list", tensor)
    out = _empty(array, (backend.size, *array.shape))
    work = backend.all_gather(array, out)
    return _finish(work._and_then(_scatter_rows(out, tensor_list)), async_op)


def reduce(
    tensor: Tensor, dst: int, op: str = ReduceOp.SUM, group: Any = None, async_op: bool = False
) -> Work | None:
    """Reduce ``tensor`` over all ranks into ``tensor`` of rank ``dst`` (the others keep theirs)."""
    backend = _group(group)
    array = _checked("reduce", backend, tensor, "tensor")
    work = backend.reduce(array, _rank_arg(backend, dst, "dst"), _op(op))
    return _finish(_written(work, tensor) if backend.rank == dst else work, async_op)


def gather(
    tensor: Tensor,
    gather_list: list[Tensor] | None = None,
    dst: int = 0,
    group: Any = None,
    async_op: bool = False,
) -> Work | None:
    """Fill ``gather_list[i]`` on rank ``dst`` with rank ``i``'s ``tensor``."""
    backend = _group(group)
    array = _checked("gather", backend, tensor, "tensor")
    dst = _rank_arg(backend, dst, "dst")
    if backend.rank != dst:
        if gather_list:
            raise ValueError("Argument ``gather_list`` must NOT be specified on non-destination ranks.")
        return _finish(backend.gather(array, None, dst), async_op)
    _check_list("gather", backend, gather_list, "gather_list", tensor)
    out = _empty(array, (backend.size, *array.shape))
    work = backend.gather(array, out, dst)
    return _finish(work._and_then(_scatter_rows(out, gather_list)), async_op)


def scatter(
    tensor: Tensor,
    scatter_list: list[Tensor] | None = None,
    src: int = 0,
    group: Any = None,
    async_op: bool = False,
) -> Work | None:
    """Fill ``tensor`` on rank ``i`` with ``scatter_list[i]`` of rank ``src``."""
    backend = _group(group)
    array = _checked("scatter", backend, tensor, "tensor")
    src = _rank_arg(backend, src, "src")
    if backend.rank != src:
        if scatter_list:
            raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source ranks.")
        return _finish(_written(backend.scatter(None, array, src), tensor), async_op)
    _check_list("scatter", backend, scatter_list, "scatter_list", tensor)
    xp = tensor._xp()
    source = xp.stack([item._data for item in scatter_list])
    return _finish(_written(backend.scatter(source, array, src), tensor), async_op)


# ----------------------------------------------------------------------------- helpers


def _group(group: Any) -> Any:
    if _default_group is None:
        raise ValueError(_NOT_INITIALIZED)
    if group is not None and group is not _default_group:
        raise ValueError("dltool has only the default process group; pass group=None")
    return _default_group


def _op(op: Any) -> str:
    name = getattr(op, "name", op)
    if not isinstance(name, str) or not hasattr(ReduceOp, name):
        raise ValueError(f"Invalid reduce op: {op!r} (use a ReduceOp member)")
    return name


def _rank_arg(backend: Any, rank: Any, name: str) -> int:
    if not isinstance(rank, int) or not 0 <= rank < backend.size:
        raise ValueError(f"Invalid {name} {rank!r}: must be a rank from 0 to {backend.size - 1}")
    return rank


def _tensor_arg(function: str, backend: Any, tensor: Any, name: str) -> Any:
    if not isinstance(tensor, Tensor):
        raise TypeError(
            f"Invalid function argument. Expected parameter `{name}` of type torch.Tensor "
            f"but got {type(tensor)} instead."
        )
    array = tensor._data
    backend.check_array(array)
    if not array.flags.c_contiguous:
        raise RuntimeError(f"{function}: Tensors must be contiguous")
    return array


def _checked(function: str, backend: Any, tensor: Any, name: str) -> Any:
    """The tensor's array, after every rank has confirmed the same shape and dtype."""
    array = _tensor_arg(function, backend, tensor, name)
    if backend.size > 1:
        signatures = backend.control_allgather(_signature(array))
        if (signatures != signatures[0]).any():
            described = ", ".join(f"rank {rank}: {_describe(row)}" for rank, row in enumerate(signatures))
            raise RuntimeError(f"{function}: tensor shapes or dtypes differ across ranks ({described})")
    return array


def _signature(array: Any) -> np.ndarray:
    shape = array.shape[: _MAX_DIMS - 1] + (int(np.prod(array.shape[_MAX_DIMS - 1 :], dtype=np.int64)),)
    row = np.full(2 + _MAX_DIMS, -1, dtype=np.int64)
    row[0], row[1] = ord(array.dtype.char), array.ndim
    row[2 : 2 + len(shape)] = shape if array.ndim else ()
    return row


def _describe(row: np.ndarray) -> str:
    ndim = int(row[1])
    return f"{list(row[2 : 2 + min(ndim, _MAX_DIMS)].tolist())} {np.dtype(chr(row[0])).name}"


def _check_list(function: str, backend: Any, tensors: Any, name: str, like: Tensor) -> None:
    if not isinstance(tensors, (list, tuple)) or len(tensors) != backend.size:
        got = len(tensors) if isinstance(tensors, (list, tuple)) else type(tensors).__name__
        raise ValueError(
            f"{function}: {name} must be a list of {backend.size} tensors (the world size), got {got}"
        )
    for item in tensors:
        _tensor_arg(function, backend, item, name)
        if item.shape != like.shape or item.dtype != like.dtype:
            raise ValueError(
                f"{function}: every tensor in {name} must have the shape {list(like.shape)} and dtype "
                f"{like.dtype} of the input, got {list(item.shape)} {item.dtype}"
            )


def _empty(array: Any, shape: tuple) -> Any:
    return array_module(array).empty(shape, dtype=array.dtype)


def _scatter_rows(out: Any, tensors: list[Tensor]) -> Callable[[], None]:
    def copy() -> None:
        for row, item in zip(out, tensors, strict=True):
            item._data[...] = row
            item._version_counter[0] += 1

    return copy


def _written(work: Work, tensor: Tensor) -> Work:
    """Count the in-place write in ``tensor``'s version, as every in-place op does."""

    def bump() -> None:
        tensor._version_counter[0] += 1

    return work._and_then(bump)


def _finish(work: Work, async_op: bool) -> Work | None:
    if async_op:
        return work
    work.wait()
    return None
