"""``DataParallel``: PyTorch's single-process multi-GPU wrapper, run on one device."""

from __future__ import annotations

import itertools
from typing import Any

from dltool.engine import backend, cuda
from dltool.engine.nn.modules.module import Module
from dltool.engine.tensor import Tensor


class DataParallel(Module):
    """Wraps ``module`` as ``torch.nn.DataParallel`` does, but runs the whole batch on one device.

    PyTorch splits each batch across ``device_ids`` and runs a replica of ``module`` per GPU;
    dltool moves the inputs to ``device_ids[0]`` and runs ``module`` there once: the same outputs
    and gradients (BatchNorm sees the whole batch, not each replica's share), without the
    speed-up. Without a GPU, as in PyTorch, ``device_ids`` is empty and ``module`` is called
    directly.

    ``module`` is registered as ``self.module``, so ``state_dict()`` keys start with ``module.``
    as PyTorch's do; ``model.module.state_dict()`` gives them without the prefix.

    Args:
        module: the module to run.
        device_ids: GPU indices or devices (default: every GPU); dltool runs on the first.
        output_device: the GPU that outputs are moved to (default: ``device_ids[0]``).
        dim: the dimension PyTorch splits batches along (kept for reading; dltool does not split).

    Example:
        >>> model = DataParallel(nn.Linear(2, 3))
        >>> sorted(model.state_dict())
        ['module.bias', 'module.weight']
    """

    def __init__(
        self,
        module: Module,
        device_ids: list[int | str | backend.device] | None = None,
        output_device: int | str | backend.device | None = None,
        dim: int = 0,
    ) -> None:
        super().__init__()
        self.module = module
        if not cuda.is_available():
            self.device_ids: list[int] = []
            return
        if device_ids is None:
            device_ids = list(range(cuda.device_count()))
        self.dim = dim
        self.device_ids = [_index(device) for device in device_ids]
        self.output_device = _index(device_ids[0] if output_device is None else output_device)
        self.src_device_obj = backend.device("cuda", self.device_ids[0])
        if len(self.device_ids) == 1:
            self.module.to(self.src_device_obj)

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if not self.device_ids:
            return self.module(*inputs, **kwargs)
        for tensor in itertools.chain(self.module.parameters(), self.module.buffers()):
            if tensor.device != self.src_device_obj:
                raise RuntimeError(
                    f"module must have its parameters and buffers on device {self.src_device_obj} "
                    f"(device_ids[0]) but found one of them on device: {tensor.device}"
                )
        inputs, kwargs = _to_device((inputs, kwargs), self.src_device_obj)
        return _to_device(self.module(*inputs, **kwargs), backend.device("cuda", self.output_device))


def _index(device: int | str | backend.device) -> int:
    if isinstance(device, int):
        return device
    return backend.device(device).index or 0


def _to_device(obj: Any, device: backend.device) -> Any:
    """``obj`` with every tensor in it (through lists, tuples and dicts) moved to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {key: _to_device(value, device) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_to_device(item, device) for item in obj]
        if hasattr(obj, "_fields"):  # a namedtuple
            return type(obj)(*items)
        return type(obj)(items)
    return obj
