"""How the C allocator treats the large blocks numpy allocates for every intermediate.

glibc serves blocks from 128 KiB up (its threshold grows only to sizes already freed) with fresh
``mmap`` calls and unmaps them on free, so every large temporary of a training step, an im2col
matrix or an activation, faults its pages in again on first touch: about a third of a LeNet step
on the 2-core machine. ``tune_malloc`` makes glibc keep such blocks for reuse instead. Importing
``dltool.engine`` leaves the allocator alone (it belongs to the program): the ``dltool`` command
calls ``tune_malloc`` at start, and a program of your own may too. ``DLTOOL_MALLOC_TUNING=0`` turns
the call into a no-op.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: blocks below it come from the reusable heap
TRIM_THRESHOLD = 2**30  # free memory at the heap's top kept for reuse, not returned to the OS


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds as above; False where that is off or not glibc."""
    if os.environ.get("DLTOOL_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl, ...)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
