"""The pool that runs an op's pieces at one BLAS thread each, and the convolution bands it runs."""

import os
import threading
import time
import warnings

import numpy as np
import pytest
import threadpoolctl

import dltool.engine as dl
from dltool.engine import _blas_pool, nn
from dltool.engine.ops import conv as conv_ops
from tests.engine.test_threads import _blas_threads


@pytest.mark.usefixtures("_restore_threads")
def test_a_group_runs_at_once_on_one_thread_blas_and_the_next_group_after_it():
    dl.set_num_threads(2)
    events, lock = [], threading.Lock()
    running = {"now": 0, "most": 0}

    def task(piece):
        group, _ = piece
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            events.append(("start", group, threading.current_thread().name, _blas_threads()))
        time.sleep(0.05)
        with lock:
            running["now"] -= 1
            events.append(("end", group, None, None))

    _blas_pool.run_in_groups(task, [[(0, i) for i in range(5)], [(1, i) for i in range(4)]], np)
    starts = [e for e in events if e[0] == "start"]
    assert len(starts) == 9 and running["most"] == 2
    assert all(name.startswith("dltool-blas") and blas == {1} for _, _, name, blas in starts)
    last_end_of_first = max(i for i, e in enumerate(events) if e[:2] == ("end", 0))
    first_start_of_second = min(i for i, e in enumerate(events) if e[:2] == ("start", 1))
    assert last_end_of_first < first_start_of_second
    assert _blas_threads() == {2}  # given back after the pieces


@pytest.mark.usefixtures("_restore_threads")
def test_a_piece_that_fails_raises_here_and_gives_the_blas_threads_back():
    dl.set_num_threads(2)

    def task(piece):
        if piece == 3:
            raise MemoryError("piece 3")

    with pytest.raises(MemoryError, match="piece 3"):
        _blas_pool.run_in_groups(task, [range(10)], np)
    assert _blas_threads() == {2}


@pytest.mark.usefixtures("_restore_threads")
def test_too_few_pieces_to_share_run_here_at_the_threads_in_use():
    dl.set_num_threads(2)
    seen = []
    pieces = [range(_blas_pool.MIN_PIECES - 2), [0]]
    _blas_pool.run_in_groups(lambda _: seen.append((threading.current_thread(), _blas_threads())), pieces, np)
    assert seen == [(threading.current_thread(), {2})] * (_blas_pool.MIN_PIECES - 1)


@pytest.mark.usefixtures("_restore_threads")
def test_a_limit_set_outside_dltool_holds_inside_and_after_the_pieces():
    dl.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        seen = []
        _blas_pool.run_in_groups(lambda _: seen.append(threading.current_thread()), [range(8)], np)
        assert set(seen) == {threading.current_thread()}  # one thread: no workers
        assert _blas_threads() == {1}


def _conv_step(threads: int) -> list[np.ndarray]:
    """Output and gradients of a 16-row convolution, at ``threads`` BLAS threads."""
    dl.set_num_threads(threads)
    dl.manual_seed(0)
    layer = nn.Conv2d(16, 32, 3, padding=1)
    x = dl.randn(8, 16, 16, 16, requires_grad=True)
    y = layer(x)
    (y * y).sum().backward()
    return [y.detach().numpy().copy(), x.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()]


@pytest.mark.usefixtures("_restore_threads")
def test_a_convolution_in_bands_has_the_same_bits_at_any_thread_count(monkeypatch):
    monkeypatch.setattr(conv_ops, "BAND_BYTES", 16 * 9 * 16 * 8 * 4 * 2)  # 8 bands of two output rows
    one, two = _conv_step(1), _conv_step(2)
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kernel,dilation,stride",
    [(3, 1, 1), (5, 1, 1), (3, 2, 1), (3, 1, 2), (4, 1, 2), (7, 3, 2), (1, 1, 1), (2, 1, 3)],
)
def test_folded_bands_run_together_share_no_image_row(monkeypatch, kernel, dilation, stride):
    monkeypatch.setattr(conv_ops, "BAND_BYTES", 1)  # as thin as the kernel allows
    run = _blas_pool.run_in_groups
    groups_run = []

    def recorded(task, groups, xp):
        groups_run.extend(groups)
        run(task, groups, xp)

    monkeypatch.setattr(_blas_pool, "run_in_groups", recorded)
    size = (80, 3)
    geometry = conv_ops._geometry(size, (kernel, 1), (dilation, 1), (1, 0), (stride, 1))
    out = geometry[-1]
    a = np.ones((2 * kernel, 3), dtype=np.float32)  # 2 channels' windows
    b = np.ones((3, out[0] * out[1] * 2), dtype=np.float32)  # of 2 images
    conv_ops._folded_product(a, b, size, *geometry)
    bands = sorted(band for group in groups_run for band in group)
    assert len(bands) > 2 and sum(rows for _, rows in bands) == out[0]
    for group in groups_run:
        written = [
            set(range(first * stride, (first + rows - 1) * stride + (kernel - 1) * dilation + 1))
            for first, rows in group
        ]
        for i, rows in enumerate(written):
            assert all(not rows & other for other in written[i + 1 :])


@pytest.mark.usefixtures("_restore_threads")
def test_a_forked_child_makes_its_own_pool():
    dl.set_num_threads(2)
    _blas_pool.run_in_groups(lambda _: None, [range(8)], np)  # the parent's pool has threads now
    with warnings.catch_warnings():  # Python 3.12 warns that forking a threaded process may deadlock
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its copy of the pool has no threads left
        try:
            done = []
            _blas_pool.run_in_groups(done.append, [range(8)], np)
            os._exit(0 if sorted(done) == list(range(8)) else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's pieces never ran")
