"""Array modules, devices, dtypes and random number generators.

The only place that decides whether a tensor lives in numpy (CPU) or cupy (GPU). Op code asks
``array_module(x)`` for the module and is written once for both.
"""

from __future__ import annotations

import builtins as _builtins
import json
from types import ModuleType
from typing import Any

import numpy as np

try:  # cupy is the optional `gpu` extra
    import cupy as _cupy  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the machine
    _cupy = None

# ---------------------------------------------------------------- devices


class device:
    """Where a tensor's storage lives: ``device("cpu")`` or ``device("cuda:0")``."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | device, index: _builtins.int | None = None) -> None:
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        kind, _, idx = str(spec).partition(":")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {spec}")
        self.type = kind
        self.index = _builtins.int(idx) if idx else index

    def __eq__(self, other: object) -> _builtins.bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self) -> _builtins.int:
        return hash((self.type, self.index or 0))

    def __repr__(self) -> str:
        suffix = f", index={self.index}" if self.index is not None else ""
        return f"device(type='{self.type}'{suffix})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")


def cuda_is_available() -> _builtins.bool:
    """True when cupy is installed and sees at least one GPU."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # cupy raises its own CUDA errors when no driver is present
        return False


def module_for(dev: device) -> ModuleType:
    """The array module that stores tensors on ``dev``; a clear error when cuda is unavailable."""
    if dev.type == "cpu":
        return np
    if not cuda_is_available():
        raise RuntimeError(
            "CUDA is not available: install the gpu extra (pip install 'dltool[gpu]') "
            "on a machine with an NVIDIA GPU, or use device='cpu'"
        )
    return _cupy


def array_module(x: Any) -> ModuleType:
    """numpy or cupy, whichever holds ``x``."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    return np


def device_of(array: Any) -> device:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return device("cuda", array.device.id)
    return CPU


def move(array: Any, dev: device) -> Any:
    """Copy ``array`` to ``dev`` (no copy when it is already there)."""
    if device_of(array) == dev:
        return array
    if dev.type == "cpu":
        return _cupy.asnumpy(array)
    xp = module_for(dev)
    with xp.cuda.Device(dev.index or 0):
        return xp.asarray(array)


# ---------------------------------------------------------------- random


class Generator:
    """A seedable source of random numbers, accepted by every random function.

    Differs from PyTorch in the stream: the same seed gives the same numbers in dltool every time,
    but not the numbers PyTorch would give.
    """

    def __init__(self, device: str | device = "cpu") -> None:
        self.device = globals()["device"](device)
        self._initial_seed = 67280421310721
        self._rng = np.random.Generator(np.random.PCG64(self._initial_seed))

    def manual_seed(self, seed: _builtins.int) -> Generator:
        self._initial_seed = _builtins.int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self._initial_seed))
        return self

    def seed(self) -> _builtins.int:
        seed = _builtins.int(np.random.SeedSequence().entropy % (2**63))
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> _builtins.int:
        return self._initial_seed

    def get_state(self) -> Any:
        """The state as a uint8 tensor (a JSON encoding), so it travels inside checkpoints."""
        from dltool.engine.tensor import Tensor

        raw = json.dumps(self._rng.bit_generator.state).encode()
        return Tensor(np.frombuffer(raw, dtype=np.uint8).copy())

    def set_state(self, new_state: Any) -> Generator:
        array = getattr(new_state, "data", new_state)
        self._rng.bit_generator.state = json.loads(np.asarray(array, dtype=np.uint8).tobytes())
        return self

    @property
    def numpy(self) -> np.random.Generator:
        """The numpy generator behind this one (samples are drawn on the CPU)."""
        return self._rng


default_generator = Generator()


def manual_seed(seed: _builtins.int) -> Generator:
    """Seed the default generator, so that every random function becomes reproducible."""
    return default_generator.manual_seed(seed)


def initial_seed() -> _builtins.int:
    return default_generator.initial_seed()


def seed() -> _builtins.int:
    return default_generator.seed()


def get_rng_state() -> Any:
    return default_generator.get_state()


def set_rng_state(new_state: Any) -> None:
    default_generator.set_state(new_state)


def rng(generator: Generator | None) -> np.random.Generator:
    """The numpy generator to draw from: the given one or the default."""
    return (generator or default_generator).numpy
