"""Errors a user can act on: the CLI prints each as one line and exits non-zero, no traceback."""

from __future__ import annotations

from pathlib import Path


def innermost_message(ex: BaseException) -> str:
    """The innermost cause of ``ex`` as one line (Hydra wraps errors of instantiated classes)."""
    while ex.__cause__ is not None:
        ex = ex.__cause__
    text = " ".join(line.strip() for line in str(ex).splitlines() if line.strip())
    return text or type(ex).__name__


class DltoolError(Exception):
    """A user-facing error (bad config, missing file, bad checkpoint, diverged run)."""


class ConfigError(DltoolError):
    """A config value that cannot work: wrong type, out of range, or rejected by its class."""


class CheckpointError(DltoolError):
    """A checkpoint that is missing, unreadable, foreign, or does not match the model."""


class TrainingDiverged(DltoolError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint.

    A ``KeyboardInterrupt`` so that Hydra's job runner does not swallow it and a sweep stops too.
    """

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(signum, checkpoint)
        self.signum = signum
        self.checkpoint = checkpoint
