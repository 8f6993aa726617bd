"""Data-parallel overhead on this machine: DDP's gradient sync, overlap, and 2 ranks against threads.

```bash
python -m benchmarks.distributed                  # every measurement, medians of --repeat
python -m benchmarks.distributed --quick          # seconds: fewer steps and repetitions
```

It starts ``mpiexec -n 2`` (one BLAS thread per rank) for the rank measurements and one process
with two BLAS threads for the comparison, and prints one table (benchmarks/README.md has the
latest). Measured, per model (the MLP 784-256-10 and the CNN of ``model=cnn``, batch 64 per rank):

- sync: what DistributedDataParallel adds to a backward pass whose own arithmetic is negligible
  (a loss that is linear in every parameter), against one bare ``comm.Allreduce`` of the same bytes;
- the share of a training step spent on communication: DDP (buckets all-reduced from gradient
  hooks, overlapping backward) and, with overlap off, backward first and then one blocking
  ``Allreduce`` of all gradients, each against the same step without any communication;
- an epoch slice on 2 ranks x 1 thread (batch 64 each) against 1 process x 2 threads (batch 128).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 64  # per rank
MODELS = ("mlp", "cnn")
STEPS = {"mlp": 40, "cnn": 6}  # steps of an epoch slice (--quick divides them)


def _model(name: str) -> Any:
    from dltool.models.cnn import CNN
    from dltool.models.mlp import MLP

    return MLP((1, 28, 28), 10, dropout=0.0) if name == "mlp" else CNN((1, 28, 28), 10, dropout=0.0)


def _batches(steps: int, batch: int, seed: int) -> list[tuple[Any, Any]]:
    import dltool.engine as dl

    rng = np.random.default_rng(seed)
    return [
        (
            dl.from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)),
            dl.from_numpy(rng.integers(0, 10, batch)),
        )
        for _ in range(steps)
    ]


def _median_seconds(fn: Callable[[], Any], repeat: int, sync: Callable[[], Any] = lambda: None) -> float:
    fn()  # untimed: caches, buffers, first-call costs
    samples = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _train(model: Any, batches: list, step_hook: Callable[[], Any] = lambda: None) -> Callable[[], None]:
    """A function that runs SGD steps of ``model`` over ``batches``; ``step_hook`` after each backward."""
    import dltool.engine as dl

    optimizer = dl.optim.SGD(model.parameters(), lr=0.01)

    def run() -> None:
        for x, y in batches:
            optimizer.zero_grad()
            dl.nn.functional.cross_entropy(model(x), y).backward()
            step_hook()
            optimizer.step()

    return run


# ----------------------------------------------------------------------------- the workers


def rank_worker(quick: bool, repeat: int) -> dict[str, Any]:
    """The 2-rank measurements (run under mpiexec); rank 0 returns them."""
    import dltool.engine.distributed as dist

    dist.init_process_group("mpi")
    results = {name: _rank_measurements(name, quick, repeat) for name in MODELS}
    rank = dist.get_rank()
    dist.destroy_process_group()
    return results if rank == 0 else {}


def _rank_measurements(name: str, quick: bool, repeat: int) -> dict[str, float]:
    from mpi4py import MPI

    import dltool.engine as dl
    import dltool.engine.distributed as dist
    from dltool.engine.nn.parallel import DistributedDataParallel

    comm = MPI.COMM_WORLD
    dl.manual_seed(0)
    plain = _model(name)
    params = list(plain.parameters())
    flat = np.zeros(sum(p.numel() for p in params), dtype=np.float32)
    weights = [dl.randn(*p.shape) for p in params]
    ddp = DistributedDataParallel(plain)

    def linear_backward(synced: bool) -> None:
        for p in params:
            p.grad = None
        if synced:
            ddp._pre_forward()
        sum((p * w).sum() for p, w in zip(params, weights, strict=True)).backward()

    def allreduce_after_backward() -> None:
        np.concatenate([p.grad._data.reshape(-1) for p in params], out=flat)
        comm.Allreduce(MPI.IN_PLACE, flat)

    bare = _median_seconds(lambda: comm.Allreduce(MPI.IN_PLACE, flat), repeat * 4, comm.Barrier)
    local = _median_seconds(lambda: linear_backward(False), repeat * 4, comm.Barrier)
    synced = _median_seconds(lambda: linear_backward(True), repeat * 4, comm.Barrier)
    steps = max(2, STEPS[name] // (4 if quick else 1))
    batches = _batches(steps, BATCH, seed=dist.get_rank())
    return {
        "gradient_mib": flat.nbytes / 2**20,
        "bare_allreduce_s": bare,
        "ddp_sync_s": synced - local,
        "epoch_slice_steps": steps,
        "step_local_s": _median_seconds(_train(plain, batches), repeat, comm.Barrier) / steps,
        "step_ddp_s": _median_seconds(_train(ddp, batches), repeat, comm.Barrier) / steps,
        "step_no_overlap_s": _median_seconds(
            _train(plain, batches, allreduce_after_backward), repeat, comm.Barrier
        )
        / steps,
    }


def single_worker(quick: bool, repeat: int) -> dict[str, Any]:
    """The same epoch slices in one process with the global batch (2 BLAS threads)."""
    import dltool.engine as dl

    results = {}
    for name in MODELS:
        dl.manual_seed(0)
        steps = max(2, STEPS[name] // (4 if quick else 1))
        batches = _batches(steps, 2 * BATCH, seed=0)
        results[name] = {"step_s": _median_seconds(_train(_model(name), batches), repeat) / steps}
    return results


# ----------------------------------------------------------------------------- the driver


def _run(command: list[str], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "result.json")
        subprocess.run([*command, "--json", str(out)], env=env, check=True)
        return json.loads(out.read_text())


def table(ranks: dict[str, Any], single: dict[str, Any]) -> str:
    rows = [
        "| model | gradients | DDP sync | bare Allreduce | ratio (goal <= 1.15) | comm share, DDP (overlap) "
        "| comm share, no overlap | 2 ranks x 1 thread | 1 process x 2 threads | ratio (goal <= 1.2) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        r, s = ranks[name], single[name]
        share = 1 - r["step_local_s"] / r["step_ddp_s"]
        share_off = 1 - r["step_local_s"] / r["step_no_overlap_s"]
        rows.append(
            f"| {name} | {r['gradient_mib']:.2f} MiB | {r['ddp_sync_s'] * 1e3:.2f} ms | {r['bare_allreduce_s'] * 1e3:.2f} ms "
            f"| {r['ddp_sync_s'] / r['bare_allreduce_s']:.2f} | {share:.1%} | {share_off:.1%} "
            f"| {r['step_ddp_s'] * 1e3:.1f} ms/step | {s['step_s'] * 1e3:.1f} ms/step | {r['step_ddp_s'] / s['step_s']:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repetitions")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--worker", choices=("ranks", "single"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat
    if args.worker is not None:
        result = (rank_worker if args.worker == "ranks" else single_worker)(args.quick, repeat)
        if result:
            Path(args.json).write_text(json.dumps(result))
        return
    from dltool.training.distributed import find_mpiexec

    own = [
        sys.executable,
        "-m",
        "benchmarks.distributed",
        "--repeat",
        str(repeat),
        *(["--quick"] if args.quick else []),
    ]
    ranks = _run([find_mpiexec() or "mpiexec", "-n", "2", *own, "--worker", "ranks"], threads=1)
    single = _run([*own, "--worker", "single"], threads=2)
    print(table(ranks, single))
    if args.json:
        Path(args.json).write_text(json.dumps({"ranks": ranks, "single": single}, indent=2))


if __name__ == "__main__":
    main()
