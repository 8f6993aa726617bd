"""The benchmark entry point runs end to end at a tiny size (timings are not checked: see benchmarks/README.md)."""

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_run_writes_every_workload(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("DLTOOL_DATA", str(data_root))
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--repeat", "1", "--warmup", "0", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    from benchmarks import run

    assert set(report["results"]) == set(run.WORKLOADS)
    for name, workload in report["results"].items():
        assert workload["median"]["dltool"] > 0, name
        assert all(ratio > 0 for ratio in workload["ratios"].values()), name
    assert "threads" in report["environment"]
    assert "workload" in result.stdout  # the table


def test_each_timed_run_follows_an_untimed_run_of_its_own(monkeypatch):
    from benchmarks import run

    calls = []
    seconds = {"dltool": iter([9.0, 2.0, 9.0, 4.0]), "torch": iter([9.0, 1.0, 9.0, 4.0])}

    def case(name):
        def timed_run():
            calls.append(name)
            return next(seconds[name])

        return timed_run

    workload = types.SimpleNamespace(TITLE="fake", cases=lambda settings: {n: case(n) for n in seconds})
    monkeypatch.setitem(sys.modules, "fake_workload", workload)
    monkeypatch.setitem(run.WORKLOADS, "fake", ("fake_workload", {"torch": 1.5}))
    result = run.measure("fake", run.Settings(), repeat=2, warmup=1)
    assert calls == ["dltool", "dltool", "torch", "torch"] * 2
    assert result["samples"] == {"dltool": [2.0, 4.0], "torch": [1.0, 4.0]}  # the 9s were warm-ups
    assert result["ratios"] == {"torch": 3.0 / 2.5}  # of the medians
    assert result["ratio_range"] == {"torch": [1.0, 2.0]}  # of each repetition's pair
    assert result["warmup"] == 1


def test_a_workload_can_ask_for_more_untimed_runs(monkeypatch):
    from benchmarks import run

    calls = []
    workload = types.SimpleNamespace(
        TITLE="fake", MIN_WARMUP=2, cases=lambda settings: {"dltool": lambda: calls.append("dltool") or 1.0}
    )
    monkeypatch.setitem(sys.modules, "fake_workload", workload)
    monkeypatch.setitem(run.WORKLOADS, "fake", ("fake_workload", {}))
    assert run.measure("fake", run.Settings(), repeat=2, warmup=1)["warmup"] == 2
    assert len(calls) == 2 * (2 + 1)
    calls.clear()
    assert run.measure("fake", run.Settings(), repeat=1, warmup=4)["warmup"] == 4  # never fewer than asked
    assert len(calls) == 4 + 1


def test_environment_names_the_blas_kernel_that_runs():
    """The variables that can force OpenBLAS's kernels show as they are, and so does the kernel
    that runs (the test leaves the machine's settings alone)."""
    pytest.importorskip("threadpoolctl")
    import numpy as np

    from benchmarks.common import environment

    if "openblas" not in np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]:
        pytest.skip("numpy's BLAS is not OpenBLAS")
    report = environment(1)
    forced = os.environ.get("OPENBLAS_CORETYPE")
    assert report["OPENBLAS_CORETYPE"] == (forced or "unset")
    assert report["blas_kernel"].startswith("openblas ")
    if forced:
        assert report["blas_kernel"].lower() == f"openblas {forced}".lower()


def test_a_forced_blas_kernel_is_pointed_out():
    from benchmarks.common import forced_kernel_note

    assert forced_kernel_note({"OPENBLAS_CORETYPE": "unset", "blas_kernel": "openblas SkylakeX"}) is None
    note = forced_kernel_note({"OPENBLAS_CORETYPE": "Haswell", "blas_kernel": "openblas Haswell"})
    assert "OPENBLAS_CORETYPE=Haswell" in note and "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in note


def test_the_loader_share_of_an_mlp_epoch_is_reported():
    from benchmarks.data_loader import share_of_mlp_epoch

    assert share_of_mlp_epoch(0.034, 0.4) == "8.5% (MLP epoch 0.400 s)"


def test_busy_processes_spin_while_the_block_runs_and_end_with_it():
    from benchmarks import run

    if not Path("/proc/self/cmdline").exists():
        pytest.skip("reads /proc")
    with run.busy_processes(2) as spinners:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(_spins(s.pid) for s in spinners):
            time.sleep(0.05)  # each child runs python -c "while True: pass" once it has started
        assert all(_spins(s.pid) for s in spinners)
    assert all(s.returncode is not None for s in spinners)


def _spins(pid: int) -> bool:
    try:
        return b"while True: pass" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # not /proc, or the process has gone
        return False


def test_the_contended_ratio_is_compared_with_the_quiet_one():
    from benchmarks import run

    result = {
        "ratios": {"torch": 1.2},
        "contended": {"median": {"dltool": 3.0, "torch": 2.0}, "ratios": {"torch": 1.5}},
    }
    assert run._contended_line(result, 2) == (
        "    with 2 busy processes: dltool 3, torch 2: ratio 1.500 = 1.25 x quiet (<= 1.1 MISS)"
    )
    result["contended"]["ratios"]["torch"] = 1.26
    assert run._contended_line(result, 2).endswith("= 1.05 x quiet (<= 1.1 ok)")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_recurrent_step_carries_its_state_to_the_next(cell):
    from benchmarks.char_lstm import step_cases
    from benchmarks.common import Settings

    step = step_cases(Settings(tiny=True), cell)["dltool"]
    assert step() > 0 and step() > 0  # the second step starts from the first one's state
