"""Files a run writes whole (metrics, reports, exported models): written to a temporary name beside
the final one and renamed over it, so that a crash leaves the old file or the new one, never a
part of either. Checkpoints have their own writer (``dltool.engine.save``), which also fsyncs the
folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dltool.engine.serialization import temporary_name


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(file)`` into a temporary file beside ``path``, flushed to disk, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name(path.name))
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    """``text`` as ``path``'s whole content (UTF-8), written atomically."""
    write_atomically(path, lambda file: file.write(text.encode()))
