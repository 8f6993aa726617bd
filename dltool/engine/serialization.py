"""``save`` / ``load``: checkpoints as a zip of ``.npy`` arrays plus a JSON tree, never pickle.

Unlike ``torch.save``, the format cannot hold arbitrary Python objects, so loading a file from
elsewhere can never run code. It holds what checkpoints need: dicts (keys of any type below that
is hashable, kept as they are), lists, tuples, tensors, numpy arrays and scalars, ints, floats,
strings, bools and ``None``.

Format, version 1: a zip archive whose entries are stored uncompressed:

- ``dltool.json``: ``{"format": "dltool", "version": 1, "root": NODE}``;
- ``arrays/<n>.npy``: the n-th array, in numpy's ``.npy`` format (never an object array).

A NODE is ``null``, a bool, a string, an integer, a finite float, or an object with a ``kind``:

- ``{"kind": "float", "value": "inf" | "-inf" | "nan"}``;
- ``{"kind": "list" | "tuple", "items": [NODE, ...]}``;
- ``{"kind": "dict", "items": [[KEY_NODE, NODE], ...]}``;
- ``{"kind": "tensor", "array": n, "device": "cpu", "requires_grad": false}``;
- ``{"kind": "ndarray", "array": n}`` and ``{"kind": "scalar", "array": n}`` (a numpy scalar).

An object saved twice in one call (the same tensor in two places) is stored once and loads as
one object; distinct tensors that share storage load as separate copies.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
import zipfile
import zlib
from typing import IO, Any

import numpy as np

from dltool.engine import backend
from dltool.engine.tensor import Tensor

_FORMAT, _VERSION, _HEADER = "dltool", 1, "dltool.json"
_ZIP64_FROM = 1 << 30  # entries this large get zip64 headers (the plain limit is 2 GiB)
# What a damaged or foreign archive raises while it is read and decoded.
_CORRUPTION = (
    zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError,
    AttributeError, NotImplementedError,
)  # fmt: skip

FileLike = str | os.PathLike | IO[bytes]


def save(obj: Any, f: FileLike) -> None:
    """Write ``obj`` to ``f`` (a path or a writable binary file object).

    A path is written atomically: to a temporary file in the same folder, flushed and fsynced,
    then renamed over ``f``, so a crash mid-save leaves any previous file intact.

    Raises:
        TypeError: ``obj`` holds something the format cannot store; nothing is written.

    Example:
        >>> save({"model": model.state_dict(), "epoch": 3}, "last.ckpt")
    """
    arrays: list[np.ndarray] = []
    root = _Encoder(arrays).encode(obj, "obj")
    header = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root}, allow_nan=False)
    if isinstance(f, (str, os.PathLike)):
        _write_atomic(os.fspath(f), header, arrays)
    else:
        _write_zip(f, header, arrays)


def load(f: FileLike, map_location: Any = None, *, weights_only: bool | None = None) -> Any:
    """Read an object written by ``save``.

    Args:
        f: a path or a readable, seekable binary file object.
        map_location: ``None`` puts tensors back on the device they were saved from; ``"cpu"``,
            ``"cuda"`` or a ``device`` puts all of them there. numpy arrays stay numpy arrays.
        weights_only: accepted for PyTorch compatibility; loading never runs code either way.

    Raises:
        RuntimeError: the file is not a dltool checkpoint, or it is truncated or corrupted.

    Example:
        >>> checkpoint = load("last.ckpt", map_location="cpu")
    """
    device = _target_device(map_location)
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", repr(f))
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(open(f, "rb")) if isinstance(f, (str, os.PathLike)) else f
        try:
            archive = stack.enter_context(zipfile.ZipFile(file))
            header = json.loads(archive.read(_HEADER))
            if header.get("format") != _FORMAT or header.get("version") != _VERSION:
                raise ValueError(f"unknown format {header.get('format')!r} version {header.get('version')!r}")
            return _Decoder(archive, device).decode(header["root"])
        except _CORRUPTION as error:
            raise RuntimeError(f"{name}: not a dltool checkpoint or it is corrupted ({error})") from error


# ---------------------------------------------------------------- encoding


class _Encoder:
    """Turns an object into a JSON-ready tree, collecting its arrays (moved to the host) in order."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.memo: dict[int, int] = {}  # id of a saved tensor/array -> its array index
        self.keep: list[Any] = []  # the objects behind memo's ids stay alive until save ends

    def encode(self, obj: Any, path: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, str)) and not isinstance(obj, np.generic):
            return obj
        if isinstance(obj, float) and not isinstance(obj, np.generic):
            return obj if math.isfinite(obj) else {"kind": "float", "value": repr(obj)}
        if isinstance(obj, Tensor):
            device = str(obj.device)
            return {"kind": "tensor", "array": self._array(obj, obj._data, path), "device": device,
                    "requires_grad": obj.requires_grad}  # fmt: skip
        if isinstance(obj, np.ndarray):
            return {"kind": "ndarray", "array": self._array(obj, obj, path)}
        if isinstance(obj, np.generic):
            return {"kind": "scalar", "array": self._array(obj, np.asarray(obj), path)}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(item, f"{path}[{i}]") for i, item in enumerate(obj)]
            return {"kind": "list" if isinstance(obj, list) else "tuple", "items": items}
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, (Tensor, np.ndarray)):
                    raise TypeError(f"save: {path} has a {type(key).__name__} key; keys must be plain values")
                items.append([self.encode(key, path), self.encode(value, f"{path}[{key!r}]")])
            return {"kind": "dict", "items": items}
        raise TypeError(
            f"save: cannot store a {type(obj).__name__} at {path}; a dltool checkpoint holds dicts, lists, "
            "tuples, tensors, numpy arrays and scalars, numbers, strings, bools and None"
        )

    def _array(self, owner: Any, array: Any, path: str) -> int:
        if id(owner) in self.memo:
            return self.memo[id(owner)]
        if array.dtype.hasobject:
            raise TypeError(f"save: {path} is an object array, which cannot be stored without pickle")
        self.memo[id(owner)] = len(self.arrays)
        self.keep.append(owner)
        self.arrays.append(backend.move(array, backend.CPU))
        return self.memo[id(owner)]


def _write_zip(file: IO[bytes], header: str, arrays: list[np.ndarray]) -> None:
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_HEADER, header)
        for i, array in enumerate(arrays):
            with archive.open(f"arrays/{i}.npy", "w", force_zip64=array.nbytes >= _ZIP64_FROM) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def _write_atomic(path: str, header: str, arrays: list[np.ndarray]) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        # O_EXCL: never clobber; mode 0o666 lets the umask decide, as for any new file
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as file:
            _write_zip(file, header, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- decoding


def _target_device(map_location: Any) -> backend.device | None:
    if map_location is None:
        return None
    if not isinstance(map_location, (str, backend.device)):
        raise TypeError(
            f"map_location should be None, a string or a device, but got {type(map_location).__name__}"
        )
    device = backend.device(map_location)
    backend.module_for(device)  # a clear error now when cuda is unavailable
    return device


class _Decoder:
    """Rebuilds objects from a tree, reading each array entry once."""

    def __init__(self, archive: zipfile.ZipFile, device: backend.device | None) -> None:
        self.archive = archive
        self.device = device
        self.memo: dict[int, Any] = {}

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        kind = node["kind"]
        if kind == "float":
            if node["value"] not in ("inf", "-inf", "nan"):
                raise ValueError(f"bad float {node['value']!r}")
            return float(node["value"])
        if kind == "list":
            return [self.decode(item) for item in node["items"]]
        if kind == "tuple":
            return tuple(self.decode(item) for item in node["items"])
        if kind == "dict":
            return {self.decode(key): self.decode(value) for key, value in node["items"]}
        if kind not in ("tensor", "ndarray", "scalar"):
            raise ValueError(f"unknown node kind {kind!r}")
        index = node["array"]
        if index not in self.memo:
            self.memo[index] = self._rebuild(kind, self._read(index), node)
        return self.memo[index]

    def _read(self, index: int) -> np.ndarray:
        if not isinstance(index, int):
            raise ValueError(f"bad array index {index!r}")
        with self.archive.open(f"arrays/{index}.npy") as entry:
            return np.lib.format.read_array(entry, allow_pickle=False)

    def _rebuild(self, kind: str, array: np.ndarray, node: dict[str, Any]) -> Any:
        if kind == "ndarray":
            return array
        if kind == "scalar":
            return array[()]
        device = self.device or backend.device(node["device"])
        if device.type == "cuda" and not backend.cuda_is_available():
            raise RuntimeError(
                "Attempting to deserialize object on a CUDA device but CUDA is not available. "
                "If you are running on a CPU-only machine, please use load with map_location='cpu'"
            )
        tensor = Tensor._make(backend.move(array, device))
        tensor.requires_grad = bool(node.get("requires_grad", False))
        return tensor
