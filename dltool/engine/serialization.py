"""``save`` / ``load``: checkpoints as a zip of ``.npy`` arrays plus a JSON tree, never pickle.

Unlike ``torch.save``, the format cannot hold arbitrary Python objects, so loading a file from
elsewhere can never run code. It holds what checkpoints need: dicts (keys of any type below that
is hashable, kept as they are), lists, tuples, tensors, numpy arrays and scalars, ints, floats,
strings, bools and ``None``.

Format, version 1: a zip archive whose entries are stored uncompressed (``load`` refuses
compressed ones, so a small file cannot inflate into a large one):

- ``dltool.json``: a JSON object, ``{"format": "dltool", "version": 1, "root": NODE}``;
- ``arrays/<n>.npy``: the n-th array, in numpy's ``.npy`` format 1.0, 2.0 or 3.0, never an object
  array; its header's shape and dtype account for exactly the entry's size.

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
from typing import IO, Any

import numpy as np

from dltool.engine import backend
from dltool.engine.tensor import Tensor

_FORMAT, _VERSION, _HEADER = "dltool", 1, "dltool.json"
_ZIP64_FROM = 1 << 30  # entries this large get zip64 headers (the plain limit is 2 GiB)
# What a damaged or foreign archive raises while it is read and decoded. RecursionError: a deeply
# nested tree, which json.loads and _Decoder.decode both walk recursively.
_CORRUPTION = (
    zipfile.BadZipFile, EOFError, KeyError, IndexError, TypeError, ValueError, AttributeError,
    NotImplementedError, RecursionError,
)  # fmt: skip
# NOTE: 3.0 is 2.0 with the header in UTF-8, which numpy writes only for non-latin-1 field names.
# Read as 2.0, such names come out garbled, but not the shape and item size that get checked;
# read_array then decodes the header properly.
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
    (3, 0): np.lib.format.read_array_header_2_0,
}

FileLike = str | os.PathLike | IO[bytes]


def save(obj: Any, f: FileLike) -> None:
    """Write ``obj`` to ``f`` (a path or a writable binary file object).

    A path is written atomically: to a temporary file in the same folder, flushed and fsynced,
    then renamed over ``f``, so a crash mid-save leaves any previous file intact.

    Raises:
        TypeError: ``obj`` holds something the format cannot store; nothing is written.
        OSError: writing to the path failed (a full disk, say); the error names the path, and any
            previous file is left intact.

    Example:
        >>> save({"model": nn.Linear(4, 2).state_dict(), "epoch": 3}, "last.ckpt")
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
        RuntimeError: the file is not a dltool checkpoint, or it is truncated, corrupted or
            crafted to exhaust memory (compressed entries, array headers that overstate their data).

    Example:
        >>> save({"model": nn.Linear(4, 2).state_dict(), "epoch": 3}, "last.ckpt")
        >>> checkpoint = load("last.ckpt", map_location="cpu")
        >>> checkpoint["epoch"], list(checkpoint["model"])
        (3, ['weight', 'bias'])
    """
    device = _target_device(map_location)
    name = os.fspath(f) if isinstance(f, (str, os.PathLike)) else getattr(f, "name", repr(f))
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(open(f, "rb")) if isinstance(f, (str, os.PathLike)) else f
        try:
            size = file.seek(0, os.SEEK_END)
            archive = stack.enter_context(zipfile.ZipFile(file))
            decoder = _Decoder(archive, size, device)
            return decoder.decode(decoder.root())
        except _CORRUPTION as error:
            raise RuntimeError(f"{name}: not a dltool checkpoint or it is corrupted ({error})") from error


def add_safe_globals(safe_globals: list[Any]) -> None:
    """Accepted and ignored: ``load`` never unpickles, so there are no globals to allow."""


def get_safe_globals() -> list[Any]:
    """Always empty: ``load`` never unpickles (``add_safe_globals`` records nothing)."""
    return []


class safe_globals(contextlib.ContextDecorator):
    """``with safe_globals([...]):`` accepted and ignored, as ``add_safe_globals`` is."""

    def __init__(self, safe_globals: list[Any]) -> None:
        self.safe_globals = safe_globals

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


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
        if callable(getattr(obj, "state_dict", None)):  # torch.save(model, f): a module, an optimizer
            name = type(obj).__name__
            raise TypeError(
                f"save: cannot store a {name} at {path}: a dltool checkpoint holds data, never pickled objects, "
                f"so loading one cannot run code; save model.state_dict() instead (optimizer.state_dict() "
                f"for an optimizer) and restore it with .load_state_dict(load(f)) on a {name} built in code"
            )
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


def temporary_name(name: str) -> str:
    """``.<name>.<pid>.<12 hex>.tmp``: where a file named ``name`` is written before its rename.

    The pid tells the leftovers of a killed writer (safe to delete) from a save in progress.
    """
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def _write_atomic(path: str, header: str, arrays: list[np.ndarray]) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, temporary_name(os.path.basename(path)))
    try:
        # O_EXCL: never clobber; mode 0o666 lets the umask decide, as for any new file
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as file:
            _write_zip(file, header, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.errno is not None:
            # a failed write names no file: "[Errno 27] File too large"
            raise OSError(error.errno, error.strerror, path) from error
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
    """Rebuilds objects from a checkpoint's zip, reading each array entry once.

    Args:
        archive: the opened checkpoint.
        size: the file's size in bytes, which bounds what its entries may hold.
        device: where tensors go; ``None`` for where they were saved from.
    """

    def __init__(self, archive: zipfile.ZipFile, size: int, device: backend.device | None) -> None:
        self.archive = archive
        self.unread = size
        self.device = device
        self.memo: dict[int, Any] = {}

    def root(self) -> Any:
        """Read the header entry and return its tree, refusing anything but a dltool header."""
        with self.archive.open(self._entry(_HEADER)) as entry:
            header = json.loads(entry.read())
        if not isinstance(header, dict):
            raise ValueError(f"{_HEADER} holds a {type(header).__name__}, not a JSON object")
        if header.get("format") != _FORMAT or header.get("version") != _VERSION:
            raise ValueError(f"unknown format {header.get('format')!r} version {header.get('version')!r}")
        return header["root"]

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

    def _entry(self, name: str) -> zipfile.ZipInfo:
        """Look up entry ``name``, refusing one that could make a small file fill the memory."""
        info = self.archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
            raise ValueError(f"entry {name} is compressed ({method}); dltool writes stored entries")
        # NOTE: stored entries lie side by side, so together they fit in the file; entries holding
        # more than that overlap, a zip bomb without compression
        self.unread -= info.file_size
        if self.unread < 0:
            raise ValueError(f"entry {name} overlaps others: together they hold more than the file")
        return info

    def _read(self, index: int) -> np.ndarray:
        if not isinstance(index, int):
            raise ValueError(f"bad array index {index!r}")
        info = self._entry(f"arrays/{index}.npy")
        with self.archive.open(info) as entry:
            _check_npy_header(entry, info)
            entry.seek(0)
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


def _check_npy_header(entry: IO[bytes], info: zipfile.ZipInfo) -> None:
    """Read the ``.npy`` header of ``entry`` and check it describes exactly the entry's bytes.

    numpy allocates the array a header declares before it reads any data, so a tiny entry that
    declares shape ``(10**12,)`` would otherwise ask for terabytes.

    Raises:
        ValueError: the header is unreadable, needs pickle, or declares another size or a bad shape.
    """
    version = np.lib.format.read_magic(entry)
    if version not in _NPY_HEADER_READERS:
        raise ValueError(
            f"entry {info.filename} is .npy version {version[0]}.{version[1]}; dltool reads 1.0 to 3.0"
        )
    shape, _, dtype = _NPY_HEADER_READERS[version](entry)
    if dtype.hasobject:
        raise ValueError(f"entry {info.filename} holds dtype {dtype}, which needs pickle to load")
    if not all(type(dim) is int and dim >= 0 for dim in shape):
        raise ValueError(f"entry {info.filename} has a bad shape {shape!r}")
    declared = entry.tell() + math.prod(shape) * dtype.itemsize
    if declared != info.file_size:
        raise ValueError(
            f"entry {info.filename} declares {declared} bytes ({dtype} of shape {shape}) "
            f"but holds {info.file_size}"
        )
