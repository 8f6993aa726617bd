"""Workload: the character language model's training step with a GRU (``model=gru_lm``'s cell) in
place of the LSTM, the same shapes and loop as ``char_lstm``."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.char_lstm import step_cases
from benchmarks.common import Settings

TITLE = "char-GRU step, 64 x 100"


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    return step_cases(settings, "gru")
