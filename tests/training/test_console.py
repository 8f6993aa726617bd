"""The epoch progress bar on a terminal: redrawn by the training loop itself, at most every
``REDRAW_SECONDS``, with no refresh thread beside it and rich told only what it draws; and
dltool's console can be swapped for a while."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.progress import Progress

from dltool.training import console as console_module
from dltool.training.console import EpochProgress, console, console_replaced_by


@pytest.fixture
def terminal() -> Iterator[io.StringIO]:
    """dltool's console drawing as on a terminal, into a string."""
    sink = io.StringIO()
    with console_replaced_by(Console(file=sink, force_terminal=True, force_interactive=True)):
        yield sink


class _Clock:
    """A monotonic clock that moves only when told, for the bar's redraw timing."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_the_bar_is_redrawn_at_most_every_redraw_seconds_without_a_thread(
    terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(console_module, "time", clock)
    redraws, handed = [], []
    refresh, update = Progress.refresh, Progress.update
    monkeypatch.setattr(Progress, "refresh", lambda self: (redraws.append(1), refresh(self)))
    monkeypatch.setattr(Progress, "update", lambda self, *a, **k: (handed.append(k), update(self, *a, **k)))
    threads = threading.active_count()
    with EpochProgress("epoch 1/1", 201) as progress:
        assert threading.active_count() == threads
        redraws.clear()  # the bar's first draw
        for batch in range(1, 200):
            progress.update(batch, {"loss": 0.5}, 1000.0)
        assert len(redraws) == 0 and handed == []  # values between redraws stay with the bar
        clock.now += EpochProgress.REDRAW_SECONDS
        progress.update(200, {"loss": 0.5}, 1000.0)
        progress.update(201, {"loss": 0.25}, 1000.0)
        assert len(redraws) == 1 and [k["completed"] for k in handed] == [200]
    assert [k["completed"] for k in handed] == [200, 201]
    drawn = terminal.getvalue()
    assert "\x1b[" in drawn and "201/201" in drawn and "loss 0.2500" in drawn  # the last state, drawn on exit


def test_no_bar_off_a_terminal() -> None:
    sink = io.StringIO()
    with console_replaced_by(Console(file=sink, force_terminal=False)):
        with EpochProgress("epoch 1/1", 3) as progress:
            progress.update(3, {"loss": 0.5}, 1000.0)
        assert console().file is sink
    assert sink.getvalue() == "" and console().file is not sink


def test_the_first_frame_shows_no_loss_yet(terminal: io.StringIO) -> None:
    with EpochProgress("epoch 1/1", 10):
        pass
    drawn = terminal.getvalue()
    assert "loss -" in drawn and "nan" not in drawn
