"""The IDX format of MNIST-like datasets: a big-endian header, then the raw values.

The header is two zero bytes, a type code, the number of dimensions, then one uint32 per
dimension. Files may be gzipped (recognized by their first bytes, not their name). Every read is
checked against the header, so a truncated or foreign file fails with an error that names it.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(code).newbyteorder("="): type_code for type_code, code in _TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from None


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (gzipped or not), in native byte order.

    Args:
        path: the file.
        magic: the magic number the file must have (``0x803`` for uint8 images of 3 dimensions,
            ``0x801`` for uint8 labels), or None to accept any valid IDX file.

    Raises:
        ValueError: the file is not IDX, has another magic number, or holds fewer or more bytes
            than its header declares; the message names the file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _TYPES:
        raise ValueError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()})")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file (the header of {ndim} dimensions is cut short)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_TYPES[raw[2]])
    expected, actual = int(np.prod(shape)) * dtype.itemsize, len(raw) - header
    if actual < expected:
        raise ValueError(
            f"{path}: truncated IDX file: the header declares shape {shape} ({expected} bytes) "
            f"but only {actual} bytes follow"
        )
    if actual > expected:
        raise ValueError(
            f"{path}: {actual - expected} bytes past the data of shape {shape} the header declares"
        )
    array = np.frombuffer(raw, dtype, count=int(np.prod(shape)), offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz`` (no timestamp)."""
    native = np.asarray(array)
    if native.dtype not in _CODES:
        raise TypeError(f"IDX files hold uint8, int8, int16, int32, float32 or float64, not {native.dtype}")
    code = _CODES[native.dtype]
    header = bytes([0, 0, code, native.ndim]) + struct.pack(f">{native.ndim}I", *native.shape)
    raw = header + native.astype(_TYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
