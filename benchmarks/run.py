"""Run the benchmarks side by side and print ratios: ``python -m benchmarks.run``.

Every workload times dltool, PyTorch CPU (when installed) and, where it applies, a hand-written
numpy loop doing the same arithmetic, interleaved in one run; the table shows medians.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import Settings, configure_threads, environment, forced_kernel_note
from dltool.engine import host_memory

# workload name -> (module, goal as "baseline: ratio")
WORKLOADS = {
    "overhead": ("benchmarks.overhead", {"torch": 1.0}),
    "mlp": ("benchmarks.mlp", {"numpy": 1.10, "torch": 1.25}),
    "lenet": ("benchmarks.lenet", {"torch": 0.9}),
    "conv": ("benchmarks.conv", {"torch": 2.0}),
    "data_loader": ("benchmarks.data_loader", {"numpy": 1.3}),
    "trainer": ("benchmarks.trainer", {"bare": 1.05}),
    "memory": ("benchmarks.memory", {"torch": 1.5}),
    "gan": ("benchmarks.gan", {}),  # measured, not gated
    "char_lstm": ("benchmarks.char_lstm", {"torch": 1.2}),
    # a module may hold several workloads: "module:attribute"
    "char_gru": ("benchmarks.char_lstm:gru", {"torch": 1.2}),
    "lstm_cell": ("benchmarks.lstm_cell", {"torch": 1.5}),
    "cnn": ("benchmarks.cnn", {"torch": 0.9}),
    "compiled_chain": ("benchmarks.compiled:chain", {"torch": 0.5}),
    "compiled_mlp": ("benchmarks.compiled:mlp_epoch", {"torch": 0.85}),
    "compiled_lenet": ("benchmarks.compiled:lenet_epoch", {"torch": 1.0}),
    "compiled_cnn": ("benchmarks.compiled:cnn_epoch", {"torch": 1.0}),
    "compiled_memory_mlp": ("benchmarks.compiled:mlp_memory", {"eager": 1.0}),
    "compiled_memory_cnn": ("benchmarks.compiled:cnn_memory", {"eager": 1.0}),
}
# With --busy: the most a workload's ratio to PyTorch may grow when other processes hold the cores.
CONTENDED_GOAL = 1.1


def measure(name: str, settings: Settings, repeat: int, warmup: int) -> dict:
    """Median seconds per implementation and the ratios of dltool to each baseline."""
    module_name, goals = WORKLOADS[name]
    module_name, _, attribute = module_name.partition(":")
    module = importlib.import_module(module_name)
    module = getattr(module, attribute) if attribute else module
    cases = module.cases(settings)
    warmup = max(warmup, getattr(module, "MIN_WARMUP", 0))  # a workload may need more to settle
    samples: dict[str, list[float]] = {impl: [] for impl in cases}
    for _ in range(repeat):
        for impl, run in cases.items():  # interleaved, so load on the machine hits all alike
            # NOTE: each timed run follows untimed ones of the same implementation. Right after
            # another framework ran, PyTorch's conv took twice its own steady-state time
            # (dltool's did not), which would handicap whichever implementation runs second.
            for _ in range(warmup):
                run()
            samples[impl].append(run())
    medians = {impl: statistics.median(values) for impl, values in samples.items()}
    ratios = {base: medians["dltool"] / medians[base] for base in medians if base != "dltool"}
    paired = {base: [a / b for a, b in zip(samples["dltool"], samples[base], strict=True)] for base in ratios}
    result = {
        "title": module.TITLE,
        "unit": getattr(module, "UNIT", "s"),
        "median": medians,
        "ratios": ratios,
        "ratio_range": {base: [min(values), max(values)] for base, values in paired.items()},
        "samples": samples,
        "warmup": warmup,
        "goals": {base: goal for base, goal in goals.items() if base in ratios},
    }
    extra = getattr(module, "extra", None)
    if extra is not None:
        result["extra"] = extra(medians, settings)
    return result


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes that spin in Python, each pinned to its own core where it can be."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        for i, spinner in enumerate(spinners):
            if cores:
                os.sched_setaffinity(spinner.pid, {cores[i % len(cores)]})
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _contended_line(result: dict, busy: int) -> str:
    """The contended run's ratios against the quiet ones, marked against ``CONTENDED_GOAL``."""
    contended = result["contended"]
    parts = []
    for base, ratio in contended["ratios"].items():
        growth = ratio / result["ratios"][base]
        mark = "ok" if growth <= CONTENDED_GOAL else "MISS"
        parts.append(
            f"dltool {contended['median']['dltool']:.4g}, {base} {contended['median'][base]:.4g}: ratio "
            f"{ratio:.3f} = {growth:.2f} x quiet (<= {CONTENDED_GOAL} {mark})"
        )
    alone = [f"dltool {contended['median']['dltool']:.4g}"]  # a workload without a baseline
    return f"    with {busy} busy processes: " + "; ".join(parts or alone)


def _table(results: dict, busy: int = 0) -> str:
    lines = [f"{'workload':<58} {'dltool':>10} {'baseline':>18} {'ratio':>7} {'goal':>7}  per repetition"]
    for result in results.values():
        unit = result["unit"]
        dltool = f"{result['median']['dltool']:.4g} {unit}"
        if not result["ratios"]:
            lines.append(f"{result['title']:<58} {dltool:>10}")
        for base, ratio in result["ratios"].items():
            goal = result["goals"].get(base)
            mark = "" if goal is None else ("ok" if ratio <= goal else "MISS")
            baseline = f"{base} {result['median'][base]:.4g} {unit}"
            goal_text = f"<={goal}" if goal else "-"
            low, high = result["ratio_range"][base]
            lines.append(
                f"{result['title']:<58} {dltool:>10} {baseline:>18} {ratio:>7.3f} {goal_text:>5} {mark:<4} "
                f"{low:.2f}-{high:.2f}"
            )
        for key, value in result.get("extra", {}).items():
            lines.append(f"    {key}: {value}")
        if "contended" in result:
            lines.append(_contended_line(result, busy))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before each timed run")
    parser.add_argument("--tiny", action="store_true", help="small sizes: shows the suite works")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for BLAS and torch (default: all cores)"
    )
    parser.add_argument(
        "--busy", type=int, default=0, help="also time each workload beside this many spinning processes"
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latest.json"))
    args = parser.parse_args(argv)
    names = [n for n in args.workloads.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    if args.threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        # BLAS reads its thread count once, at import: start again with it set
        count = str(args.threads)
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": count,
            "OMP_NUM_THREADS": count,
            "MKL_NUM_THREADS": count,
        }
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.run", *sys.argv[1:]], env)
    host_memory.tune_malloc()  # dltool is measured as the dltool command runs it
    settings = Settings(tiny=args.tiny)
    if args.threads:
        settings.threads = args.threads
    configure_threads(settings.threads)
    env = environment(settings.threads)
    print("  ".join(f"{k}={v}" for k, v in env.items()))
    note = forced_kernel_note(env)
    if note:
        print(note, file=sys.stderr)
    results = {}
    for name in names:
        results[name] = measure(name, settings, args.repeat, args.warmup)
        if args.busy:
            with busy_processes(args.busy):
                results[name]["contended"] = measure(name, settings, args.repeat, args.warmup)
        print(f"done: {name}", file=sys.stderr)
    print(_table(results, args.busy))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.date.today().isoformat(),
        "environment": env,
        "busy": args.busy,
        "results": results,
    }
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
