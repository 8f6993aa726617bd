"""Fixtures shared by the engine's tests."""

import os

import pytest
import threadpoolctl

from dltool.engine import _threads


@pytest.fixture
def _restore_threads(monkeypatch):
    """Leave the thread variables, dltool's thread state and the BLAS thread count as they were."""
    for name in _threads.THREAD_VARIABLES:
        monkeypatch.setenv(name, os.environ.get(name, "1"))  # set_num_threads writes them
    monkeypatch.setattr(_threads, "_state", _threads._State())
    with threadpoolctl.threadpool_limits(
        limits=None, user_api="blas"
    ):  # restores the BLAS thread count on exit
        yield
