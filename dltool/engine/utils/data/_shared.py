"""Batches from workers to the main process through shared memory, as PyTorch moves its tensors.

A worker pickles a batch with protocol 5 and writes the large array buffers out of band into one
file in ``/dev/shm``; the main process maps that file, unlinks it at once, and rebuilds the arrays
as views of the mapping. That is one copy in total, where a pipe costs four (and a context switch
per 64 KiB). Without ``/dev/shm``, or when it is full, batches are pickled whole.

A file is named ``dltool-<main pid>-<8 hex digits>-<worker pid>-<n>``. One whose main process was
killed before unpacking it would hold its RAM until reboot, so each new loader removes those.
"""

from __future__ import annotations

import glob
import itertools
import mmap
import os
import pickle
import re
import secrets
from dataclasses import dataclass
from typing import Any

from dltool.engine.utils._process import pid_alive

_SHM_DIR = "/dev/shm"
_MIN_BYTES = 1 << 16  # smaller buffers ride in the pickle itself
_ALIGN = 64
_counter = itertools.count()
# what new_prefix and pack name a file; the main pid has at most 7 digits (pid_max <= 2**22)
_NAME = re.compile(r"dltool-([1-9][0-9]{0,6})-[0-9a-f]{8}-[0-9]+-[0-9]+")


def new_prefix() -> str:
    """The start of the file names of one loader iterator's batches, made in this process."""
    return f"dltool-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass
class _Packed:
    """A pickled batch; with a ``name``, its large buffers wait in that shared-memory file."""

    payload: bytes
    name: str | None = None
    layout: tuple[tuple[int, int], ...] = ()  # (offset, nbytes) of each out-of-band buffer
    size: int = 0


def _write(path: str, buffers: list[memoryview], layout: list[tuple[int, int]], size: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # NOTE: reserving the pages turns a full /dev/shm into an OSError here instead of a SIGBUS
        # when the copy below touches a page that can't be backed
        os.posix_fallocate(fd, 0, size)
        with mmap.mmap(fd, size) as mapping:
            for (offset, nbytes), buffer in zip(layout, buffers, strict=True):
                mapping[offset : offset + nbytes] = buffer
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


def pack(data: Any, prefix: str) -> Any:
    """``data`` pickled for the queue, its large arrays in a shared-memory file when possible."""
    if not os.path.isdir(_SHM_DIR):
        return data
    buffers: list[memoryview] = []

    def in_band(buffer: pickle.PickleBuffer) -> bool:
        raw = buffer.raw()
        if raw.nbytes < _MIN_BYTES:
            return True
        buffers.append(raw)
        return False

    payload = pickle.dumps(data, protocol=5, buffer_callback=in_band)
    if not buffers:
        return _Packed(payload)
    layout, size = [], 0
    for buffer in buffers:
        size = -(-size // _ALIGN) * _ALIGN
        layout.append((size, buffer.nbytes))
        size += buffer.nbytes
    name = f"{prefix}-{os.getpid()}-{next(_counter)}"
    try:
        _write(os.path.join(_SHM_DIR, name), buffers, layout, size)
    except OSError:
        return data
    return _Packed(payload, name, tuple(layout), size)


def unpack(item: Any) -> Any:
    """The batch ``pack`` sent; its large arrays are views of the mapped file, which is unlinked."""
    if not isinstance(item, _Packed):
        return item
    if item.name is None:
        return pickle.loads(item.payload)
    path = os.path.join(_SHM_DIR, item.name)
    fd = os.open(path, os.O_RDWR)
    try:
        view = memoryview(mmap.mmap(fd, item.size))
    finally:
        os.close(fd)
        os.unlink(path)
    return pickle.loads(item.payload, buffers=[view[offset : offset + n] for offset, n in item.layout])


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:  # unpacked or removed meanwhile
        pass
    except PermissionError:  # another user's, in the sticky /dev/shm
        pass


def discard(prefix: str) -> None:
    """Remove the files of batches that were never unpacked (an epoch ended early)."""
    for path in glob.glob(os.path.join(_SHM_DIR, f"{glob.escape(prefix)}-*")):
        _remove(path)


def discard_stale() -> None:
    """Remove the batch files of main processes that are gone.

    A main process killed between a worker's ``pack`` and its own ``unpack`` leaves its batches in
    ``/dev/shm``, which is RAM that nothing else ever frees. Files of live processes, and names
    not exactly ``pack``'s, are left alone. One directory listing: cheap at each loader start.
    """
    for path in glob.glob(os.path.join(_SHM_DIR, "dltool-*")):
        match = _NAME.fullmatch(os.path.basename(path))
        if match is not None and not pid_alive(int(match[1])):
            _remove(path)
