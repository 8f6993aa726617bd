"""Data-parallel overhead on this machine: DDP's gradient sync, overlap, and 2 ranks against threads.

```bash
python -m benchmarks.distributed                  # every measurement, medians of --repeat
python -m benchmarks.distributed --quick          # seconds: fewer steps and repetitions
```

It starts ``mpiexec -n 2`` (one BLAS thread per rank) for the rank measurements and one process
with two BLAS threads for the comparison, and prints two tables (benchmarks/README.md has the
latest). Measured, per model (the MLP 784-256-10 and the CNN of ``model=cnn``, batch 128 per
rank: the trainer's default per-process batch, a global batch of 256 as in the ``mlp`` workload):

- sync: what DistributedDataParallel adds to a backward pass whose own arithmetic is negligible
  (a loss that is linear in every parameter), against one bare ``comm.Allreduce`` of the same
  bytes right after the same backward pass (on the gradients it wrote, as hot in cache as DDP's
  all-reduce finds them), and against the floor of any average, one division pass and that
  ``Allreduce``: with ``.grad`` copied to and from the buckets, with
  ``gradient_as_bucket_view=True`` and ``.grad`` set to None before each backward
  (``zero_grad()``'s default: copied into the bucket once), and with bucket views zeroed in place
  (``zero_grad(set_to_none=False)``: no copy, the backward accumulates into the bucket). The
  variants and the bare calls take turns, round after round, so that the machine's drift falls on
  all of them alike;
- the share of a training step spent on communication: DDP as the trainer runs it (bucket views,
  buckets all-reduced from gradient hooks, overlapping backward) and, with overlap off, backward
  first and then one blocking ``Allreduce`` of all gradients, each against the same step without
  any communication;
- an epoch slice on 2 ranks x 1 thread (batch 128 each, gradients zeroed in place as the trainer
  does under DDP) against 1 process x 2 threads (batch 256).
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

BATCH = 128  # per rank: trainer.batch_size's default
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


def _train(
    model: Any, batches: list, step_hook: Callable[[], Any] = lambda: None, set_to_none: bool = True
) -> Callable[[], None]:
    """A function that runs SGD steps of ``model`` over ``batches``; ``step_hook`` after each backward.

    ``set_to_none`` is ``zero_grad``'s: the trainer passes False under DDP, keeping the bucket views.
    """
    import dltool.engine as dl

    optimizer = dl.optim.SGD(model.parameters(), lr=0.01)

    def run() -> None:
        for x, y in batches:
            optimizer.zero_grad(set_to_none)
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


# the ways of syncing that the sync table compares: (DDP's gradient_as_bucket_view, .grad set to None)
SYNC_VARIANTS = {
    "copied": (False, True),
    "views": (True, True),
    "views_zeroed": (True, False),
}


def _interleaved_samples(
    functions: dict[str, Callable[[], Any]],
    rounds: int,
    sync: Callable[[], Any],
    setups: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, list[float]]:
    """Each function's seconds per round, timed in turns (one call each per round) after ``sync``
    and, untimed before it, the function's entry in ``setups`` if it has one."""
    samples: dict[str, list[float]] = {key: [] for key in functions}
    for round_ in range(rounds + 1):
        for key, fn in functions.items():
            if setups and key in setups:
                setups[key]()
            sync()
            start = time.perf_counter()
            fn()
            if round_:  # the first round is untimed: caches, buffers, first-call costs
                samples[key].append(time.perf_counter() - start)
    return samples


def _sync_measurements(name: str, rounds: int) -> dict[str, float]:
    """DDP's sync of a linear loss's gradients, per ``SYNC_VARIANTS``, against a bare ``Allreduce``
    of the bucket (and a division and that ``Allreduce``) right after the same backward pass.

    DDP's sync is the median of the paired, per-round difference between its backward pass and
    the same pass without it. The bare calls are timed alone, after an untimed backward pass has
    written the gradients into the bucket: as hot in cache as DDP's own all-reduce finds them.
    """
    from mpi4py import MPI

    import dltool.engine as dl
    from dltool.engine.nn.parallel import DistributedDataParallel

    comm = MPI.COMM_WORLD
    functions: dict[str, Callable[[], Any]] = {}
    for variant, (as_view, set_to_none) in SYNC_VARIANTS.items():
        dl.manual_seed(0)
        ddp = DistributedDataParallel(_model(name), gradient_as_bucket_view=as_view)
        weights = [dl.randn(*p.shape) for p in ddp.parameters()]
        functions[f"local_{variant}"] = _linear_backward(ddp, weights, set_to_none, synced=False)
        functions[f"ddp_{variant}"] = _linear_backward(ddp, weights, set_to_none, synced=True)
    # the last variant's model: bucket views zeroed in place, so its backward fills the buckets
    buckets = [bucket.flat for bucket in ddp._reducer.buckets]
    functions["bare"] = _allreduce(comm, buckets, divide=False)
    functions["averaged"] = _allreduce(comm, buckets, divide=True)
    fill = functions["local_views_zeroed"]
    samples = _interleaved_samples(functions, rounds, comm.Barrier, setups={"bare": fill, "averaged": fill})
    result = {
        "gradient_mib": sum(flat.nbytes for flat in buckets) / 2**20,
        "bare_allreduce_s": statistics.median(samples["bare"]),
        "averaged_allreduce_s": statistics.median(samples["averaged"]),
    }
    for variant in SYNC_VARIANTS:
        # paired by round, so that drift over the run falls on both sides of each difference
        pairs = zip(samples[f"ddp_{variant}"], samples[f"local_{variant}"], strict=True)
        result[f"sync_{variant}_s"] = statistics.median(synced - local for synced, local in pairs)
    return result


def _allreduce(comm: Any, buckets: list, divide: bool) -> Callable[[], None]:
    """A bare ``Allreduce`` of each bucket; with ``divide``, one division pass first: the floor of
    an average over ranks, what PyTorch's default DDP communication hook does to each bucket, with
    no Python around it."""
    from mpi4py import MPI

    scale = np.float32(1 / comm.Get_size())

    def run() -> None:
        for flat in buckets:
            if divide:
                np.multiply(flat, scale, out=flat)
            comm.Allreduce(MPI.IN_PLACE, flat)

    return run


def _linear_backward(ddp: Any, weights: list, set_to_none: bool, synced: bool) -> Callable[[], None]:
    """A backward pass of ``sum(p * w)`` over ``ddp``'s parameters, synchronized or local."""
    params = list(ddp.parameters())

    def run() -> None:
        ddp.zero_grad(set_to_none)
        if synced:
            ddp._pre_forward()
        sum((p * w).sum() for p, w in zip(params, weights, strict=True)).backward()

    return run


def _rank_measurements(name: str, quick: bool, repeat: int) -> dict[str, float]:
    from mpi4py import MPI

    import dltool.engine as dl
    import dltool.engine.distributed as dist
    from dltool.engine.nn.parallel import DistributedDataParallel

    comm = MPI.COMM_WORLD
    result = _sync_measurements(name, rounds=40 * repeat)
    dl.manual_seed(0)
    plain = _model(name)
    params = list(plain.parameters())
    flat = np.zeros(sum(p.numel() for p in params), dtype=np.float32)
    ddp = DistributedDataParallel(plain, gradient_as_bucket_view=True)  # as the trainer runs it

    def allreduce_after_backward() -> None:
        np.concatenate([p.grad._data.reshape(-1) for p in params], out=flat)
        comm.Allreduce(MPI.IN_PLACE, flat)

    steps = max(2, STEPS[name] // (4 if quick else 1))
    batches = _batches(steps, BATCH, seed=dist.get_rank())
    return {
        **result,
        "epoch_slice_steps": steps,
        "step_local_s": _median_seconds(_train(plain, batches), repeat, comm.Barrier) / steps,
        "step_ddp_s": _median_seconds(_train(ddp, batches, set_to_none=False), repeat, comm.Barrier) / steps,
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


def sync_table(ranks: dict[str, Any]) -> str:
    """DDP's sync against the bare ``Allreduce`` (goal <= 1.15x), per model and variant."""
    rows = [
        "| model | gradients | bare Allreduce | averaged: division + Allreduce | DDP sync, .grad copied "
        "| bucket views, .grad set to None | bucket views, .grad zeroed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        r = ranks[name]
        bare = r["bare_allreduce_s"]
        cells = [
            f"{r[key] * 1e3:.2f} ms ({r[key] / bare:.2f}x)"
            for key in ("averaged_allreduce_s", *(f"sync_{v}_s" for v in SYNC_VARIANTS))
        ]
        rows.append(f"| {name} | {r['gradient_mib']:.2f} MiB | {bare * 1e3:.2f} ms | {' | '.join(cells)} |")
    return "\n".join(rows)


def step_table(ranks: dict[str, Any], single: dict[str, Any]) -> str:
    """Communication's share of a step, and 2 ranks against 2 threads (goal <= 1.2x)."""
    rows = [
        "| model | comm share, DDP (overlap) | comm share, no overlap | 2 ranks x 1 thread "
        "| 1 process x 2 threads | ratio (goal <= 1.2) |",
        "|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        r, s = ranks[name], single[name]
        share = 1 - r["step_local_s"] / r["step_ddp_s"]
        share_off = 1 - r["step_local_s"] / r["step_no_overlap_s"]
        rows.append(
            f"| {name} | {share:.1%} | {share_off:.1%} | {r['step_ddp_s'] * 1e3:.1f} ms/step "
            f"| {s['step_s'] * 1e3:.1f} ms/step | {r['step_ddp_s'] / s['step_s']:.2f} |"
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
    print(sync_table(ranks), step_table(ranks, single), sep="\n\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"ranks": ranks, "single": single}, indent=2))


if __name__ == "__main__":
    main()
