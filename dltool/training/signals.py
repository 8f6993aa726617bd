"""Graceful stop on SIGINT/SIGTERM: the loop finishes its step, saves, and exits cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Within ``with StopSignal() as stop:``, the first SIGINT/SIGTERM only sets ``stop.signum``.

    The training loop checks it after every step. A second signal restores the previous handlers
    and is re-raised at once (Ctrl-C twice aborts without waiting for the step to end).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            return
        self._restore()
        signal.raise_signal(signum)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __exit__(self, *exc: object) -> None:
        self._restore()
