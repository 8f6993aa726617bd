"""``dltool.engine.cuda``: GPU queries and the legacy CUDA tensor types, as ``torch.cuda``.

The GPU is cupy's; without cupy or a GPU, the queries answer as PyTorch's do on a machine with
no GPU (``is_available()`` is False, ``device_count()`` is 0), ``synchronize`` and
``empty_cache`` do nothing, and anything that needs a GPU raises a clear error.
"""

from __future__ import annotations

from types import ModuleType

from dltool.engine import _tensor_types, backend
from dltool.engine.backend import cuda_is_available as is_available

FloatTensor = _tensor_types.cuda_type(_tensor_types.FloatTensor)
DoubleTensor = _tensor_types.cuda_type(_tensor_types.DoubleTensor)
HalfTensor = _tensor_types.cuda_type(_tensor_types.HalfTensor)
LongTensor = _tensor_types.cuda_type(_tensor_types.LongTensor)
IntTensor = _tensor_types.cuda_type(_tensor_types.IntTensor)
ShortTensor = _tensor_types.cuda_type(_tensor_types.ShortTensor)
CharTensor = _tensor_types.cuda_type(_tensor_types.CharTensor)
ByteTensor = _tensor_types.cuda_type(_tensor_types.ByteTensor)
BoolTensor = _tensor_types.cuda_type(_tensor_types.BoolTensor)

__all__ = [
    "BoolTensor", "ByteTensor", "CharTensor", "DoubleTensor", "FloatTensor", "HalfTensor", "IntTensor",
    "LongTensor", "ShortTensor", "current_device", "device_count", "empty_cache", "is_available",
    "manual_seed", "manual_seed_all", "synchronize",
]  # fmt: skip


def _cupy() -> ModuleType:
    """cupy, or the error that says how to get a GPU."""
    return backend.module_for(backend.device("cuda"))


def device_count() -> int:
    """The number of GPUs cupy sees; 0 without cupy or a GPU."""
    return _cupy().cuda.runtime.getDeviceCount() if is_available() else 0


def current_device() -> int:
    """The index of the GPU that new CUDA tensors go to.

    Raises:
        RuntimeError: no GPU is available.
    """
    return _cupy().cuda.runtime.getDevice()


def synchronize(device: backend.device | str | int | None = None) -> None:
    """Wait for the work queued on a GPU (the current one by default) to finish.

    A no-op without a GPU, where there is no queued work to wait for (PyTorch raises there).
    """
    if not is_available():
        return
    index = device if isinstance(device, int) or device is None else backend.device(device).index
    cupy = _cupy()
    cupy.cuda.Device(cupy.cuda.runtime.getDevice() if index is None else index).synchronize()


def empty_cache() -> None:
    """Hand the GPU memory cupy holds in its pool but no tensor uses back to the driver."""
    if is_available():
        _cupy().get_default_memory_pool().free_all_blocks()


def manual_seed(seed: int) -> None:
    """Seed the one generator dltool draws from (samples are drawn on the host, then moved)."""
    backend.manual_seed(seed)


manual_seed_all = manual_seed
