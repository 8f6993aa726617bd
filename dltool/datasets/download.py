"""Where datasets live, and fetching their files from published mirrors with checksums.

A download goes to a temporary file in the target folder, is checked against its md5, flushed
and fsynced, then renamed: an interrupted or corrupt download never leaves a file that looks done.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

_CHUNK = 1 << 20


def default_root() -> str:
    """The dataset root: ``$DLTOOL_DATA``, or ``data`` (relative to the working directory)."""
    return os.environ.get("DLTOOL_DATA", "data")


def md5sum(path: str | os.PathLike) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, path: str | os.PathLike, md5: str | None = None, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``path`` atomically, checking its md5 when given.

    Raises:
        OSError: the URL can't be reached or read (``urllib.error.URLError`` is one).
        ValueError: the downloaded bytes don't match ``md5``; nothing is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "dltool"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch for {url}: expected md5 {md5}, got {digest.hexdigest()}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def download_resources(
    name: str, mirrors: Sequence[str], resources: Sequence[tuple[str, str]], folder: str | os.PathLike
) -> None:
    """Fetch each ``(filename, md5)`` of ``resources`` into ``folder``, trying the mirrors in order.

    Raises:
        RuntimeError: some files could not be fetched from any mirror; the message names them,
            the reasons, and the folder to put them in by hand.
    """
    folder = Path(folder)
    failures = []
    for filename, md5 in resources:
        reasons = []
        for mirror in mirrors:
            try:
                download_url(f"{mirror}{filename}", folder / filename, md5)
                break
            except (OSError, ValueError) as error:
                reasons.append(f"{mirror}{filename}: {error}")
        else:
            failures.append((filename, reasons))
    if failures:
        files = ", ".join(filename for filename, _ in failures)
        details = "; ".join(reason for _, reasons in failures for reason in reasons)
        raise RuntimeError(
            f"Could not download {name} ({details}). Download {files} from {mirrors[0]} by hand "
            f"and put them in {folder}"
        )
