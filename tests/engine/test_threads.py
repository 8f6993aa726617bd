"""Thread counts: the ceiling ``set_num_threads`` sets and the count fitted to a busy machine."""

import os

import pytest
import threadpoolctl

import dltool.engine as dl
from dltool.engine import _threads
from tests.engine.test_environment import _raises


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"}


@pytest.mark.usefixtures("_restore_threads")
def test_set_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert dl.get_num_threads() >= 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert dl.get_num_threads() == 3
    dl.set_num_threads(1)
    assert dl.get_num_threads() == 1
    assert all(os.environ[name] == "1" for name in _threads.THREAD_VARIABLES)
    assert all(
        pool["num_threads"] == 1 for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"
    )


@pytest.mark.usefixtures("_restore_threads")
@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_set_num_threads_refuses_non_positive(bad):
    torch = pytest.importorskip("torch")
    expected = "set_num_threads expects a positive integer"
    if bad in (0, -1):
        assert _raises(lambda: torch.set_num_threads(bad)) == (RuntimeError, expected)
    with pytest.raises(RuntimeError, match=expected):
        dl.set_num_threads(bad)


@pytest.fixture
def machine(monkeypatch):
    """A 2-CPU machine whose other processes' ready threads the test sets; no wait between looks."""
    load = {"others": 0}
    monkeypatch.setattr(_threads, "CHECK_INTERVAL", 0.0)
    monkeypatch.setattr(_threads, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(_threads, "_others_ready", lambda: load["others"])
    monkeypatch.setenv("DLTOOL_ADAPTIVE_THREADS", "1")
    dl.set_num_threads(2)
    return load


@pytest.mark.usefixtures("_restore_threads")
def test_busy_machine_gets_one_blas_thread_and_a_quiet_one_the_ceiling(machine):
    machine["others"] = 2  # both cores held by other processes
    for _ in range(3):
        _threads.adapt()
    assert _blas_threads() == {1}
    assert dl.get_num_threads() == 2  # the ceiling stays what the program set
    machine["others"] = 0
    for _ in range(3):
        _threads.adapt()
    assert _blas_threads() == {2}


@pytest.mark.usefixtures("_restore_threads")
def test_one_brief_neighbour_does_not_halve_the_threads(machine):
    machine["others"] = 1
    _threads.adapt()  # the running estimate reads 0.5: one look is not enough
    assert _blas_threads() == {2}
    _threads.adapt()
    assert _blas_threads() == {1}


@pytest.mark.usefixtures("_restore_threads")
def test_adaptation_is_off_unless_asked_for(machine, monkeypatch):
    monkeypatch.delenv("DLTOOL_ADAPTIVE_THREADS")  # a count that follows the load changes results
    machine["others"] = 2
    for _ in range(3):
        _threads.adapt()
    assert _blas_threads() == {2}


@pytest.mark.usefixtures("_restore_threads")
def test_backward_adapts_the_threads(machine):
    machine["others"] = 2
    x = dl.ones(3, requires_grad=True)
    for _ in range(3):
        (x * 2).sum().backward()
    assert _blas_threads() == {1}


@pytest.mark.skipif(not os.path.exists("/proc/loadavg"), reason="reads /proc")
def test_others_ready_reads_the_machine():
    ready = _threads._others_ready()
    assert isinstance(ready, int) and ready >= 0
