"""Running ``dltool train`` as N MPI ranks: the launcher, and what rank 0 alone does.

``trainer.num_processes=N`` re-runs the same command under ``mpiexec -n N`` (the one of the
``mpich`` wheel next to the Python executable, else the system's); a command already started by a
launcher (``mpiexec``, ``srun``) is recognized by the launcher's environment and not started again.
Every rank trains; rank 0 alone writes files and prints. A rank that fails calls ``MPI_Abort``
after printing its error, so the others do not wait forever in a collective.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import dltool.engine as dl
from dltool.engine import distributed as dist
from dltool.engine.nn.parallel import DistributedDataParallel
from dltool.engine.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from dltool.training.errors import ConfigError
from dltool.training.options import TrainerOptions
from dltool.training.tasks import MeanMetrics, Task, tagged

log = logging.getLogger("dltool")

# Set by MPICH/Hydra (PMI_*), Open MPI (OMPI_*), PMIx launchers and srun in each process it starts.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS")
# How long a failing rank above 0 waits for rank 0 to record the same failure before ending the job.
_ABORT_GRACE_S = 1.0
# The thread pools a rank's BLAS and OpenMP code size themselves by.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def under_launcher() -> bool:
    """Whether an MPI launcher (``mpiexec``, ``srun``) started this process."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def is_main_process() -> bool:
    """Whether this process is rank 0 (or runs alone): the one that writes files and prints."""
    return not under_launcher() or comm_world().Get_rank() == 0


def find_mpiexec() -> str | None:
    """The ``mpiexec`` beside the running Python (the ``mpich`` wheel's), else the one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mpiexec")


def launch_command(num_processes: int, argv: list[str]) -> list[str]:
    """The command that runs ``argv`` (this process's command line) as ``num_processes`` ranks."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise ConfigError(
            f"trainer.num_processes={num_processes} needs an MPI launcher: pip install 'dltool[mpi]' "
            "(or put mpiexec on PATH)"
        )
    return [mpiexec, "-n", str(num_processes), sys.executable, *argv]


def relaunch(
    num_processes: int,
    args: list[str],
    threads: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``dltool ARGS`` as ``num_processes`` MPI ranks and wait; their exit code.

    Each rank gets ``threads`` BLAS threads; by default an equal share of the cores (threads
    beyond the cores spin against each other), unless the environment already sets them. The
    ranks get ``environ`` (by default this process's environment) and those settings.
    """
    command = launch_command(num_processes, ["-m", "dltool.cli", *args])
    share = str(max(1, (os.cpu_count() or 1) // num_processes))
    env = dict(os.environ if environ is None else environ)
    for name in BLAS_THREAD_VARIABLES:
        if threads is None:
            env.setdefault(name, share)
        else:
            env[name] = str(threads)
    job = subprocess.Popen(command, env=env)
    # the launcher passes SIGTERM (and SIGINT) on to the ranks, which save and stop together
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: job.send_signal(signum))
    try:
        while True:
            try:
                return job.wait()
            except KeyboardInterrupt:  # the terminal sent SIGINT to mpiexec too; wait for the ranks
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def _mpi() -> Any:
    """mpi4py's ``MPI`` (importing it initializes MPI), or a ConfigError naming the extra."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ConfigError("running under an MPI launcher needs mpi4py: pip install 'dltool[mpi]'") from None
    return MPI


def comm_world() -> Any:
    """``MPI.COMM_WORLD``."""
    return _mpi().COMM_WORLD


def in_group() -> bool:
    """Whether a launcher started this process as one of several ranks."""
    return under_launcher() and comm_world().Get_size() > 1


def follow_run_dir() -> str | None:
    """On a rank above 0, rank 0's run dir (which rank 0's Hydra chose, timestamp and all), sent
    by ``lead_run_dir``; None on rank 0 and outside a group."""
    if not in_group() or comm_world().Get_rank() == 0:
        return None
    return _broadcast_text(comm_world(), "")  # if rank 0 fails first, its MPI_Abort ends this wait


def lead_run_dir(run_dir: Path) -> None:
    """On rank 0, send the run dir its Hydra chose to the ranks waiting in ``follow_run_dir``."""
    if in_group() and comm_world().Get_rank() == 0:
        _broadcast_text(comm_world(), str(run_dir.resolve()))


def _broadcast_text(comm: Any, text: str) -> str:
    size = np.array([len(text.encode())], dtype=np.int64)
    comm.Bcast(size, root=0)
    payload = (
        np.frombuffer(text.encode(), dtype=np.uint8).copy()
        if comm.Get_rank() == 0
        else np.empty(int(size[0]), np.uint8)
    )
    comm.Bcast(payload, root=0)
    return payload.tobytes().decode()


def abort_job(code: int) -> None:
    """End every rank (``MPI_Abort``): the others may be waiting in a collective for this one.

    A rank above 0 first gives rank 0 a moment: an error every rank meets (a bad config) is
    recorded in metrics.json by rank 0 alone, and the first abort ends every rank where it stands.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if comm_world().Get_rank() != 0:
        time.sleep(_ABORT_GRACE_S)
    comm_world().Abort(code)


class Ranks:
    """The trainer's process group: a group of one without a launcher, else every MPI rank.

    It wraps the task in DistributedDataParallel (gradients averaged during backward), gives each
    rank its share of the training data (``DistributedSampler``, PyTorch's padding) and of the
    evaluation data (no padding: a sample is counted once), reduces metrics, and gathers every
    rank's state for rank 0's checkpoints.
    """

    def __init__(self, rank: int = 0, size: int = 1) -> None:
        self.rank, self.size = rank, size
        self.is_main = rank == 0
        self._ddp: Any = None
        self._hooks: list[Any] = []  # the per-model arming hooks of a task that optimizes by hand

    @classmethod
    def join(cls, num_processes: int, device: str) -> Ranks:
        """The ranks the launcher started (checked against ``trainer.num_processes``)."""
        size = comm_world().Get_size() if under_launcher() else 1
        if num_processes > 1 and size == 1:
            raise ConfigError(
                f"trainer.num_processes={num_processes}: start the run with `dltool train` (which "
                "launches the ranks) or under mpiexec/srun"
            )
        if num_processes not in (1, size):
            raise ConfigError(
                f"trainer.num_processes={num_processes} but the MPI launcher started {size} ranks"
            )
        if size == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "mpi")
        return cls(dist.get_rank(), size)

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        if self.size > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def describe_batch(self, batch_size: int) -> str:
        """``; batch 32 x 2 processes = 64`` for the start line ('' for one process)."""
        return (
            f"; batch {batch_size} x {self.size} processes = {batch_size * self.size}"
            if self.size > 1
            else ""
        )

    # ------------------------------------------------------------ training

    def wrap(self, task: Task) -> None:
        """Average ``task``'s gradients over the ranks from now on (and start from rank 0's weights).

        With automatic optimization the task is one DistributedDataParallel, armed before each step
        (one loss, one backward). A task that optimizes by hand (a GAN's two optimizers and two
        backward passes) gets one DistributedDataParallel per model, each child module that owns
        parameters, armed at each of that model's training forwards as calling a wrapped module
        in PyTorch does: every backward pass averages the gradients of the models it reaches.
        """
        if self.size == 1:
            return
        if task.automatic_optimization:
            self._ddp = DistributedDataParallel(task, gradient_as_bucket_view=True)
            # gradients zeroed in place stay the buckets' views: the sync is then the all-reduce alone
            task.grads_to_none = False
            return
        for model in _models(task, self.size):
            ddp = DistributedDataParallel(model, gradient_as_bucket_view=True)
            self._hooks.append(model.register_forward_pre_hook(_arming(ddp)))

    def before_step(self) -> None:
        """What DistributedDataParallel's forward does first: rank 0's buffers, arm the gradient hooks."""
        if self._ddp is not None:
            self._ddp._pre_forward()

    def train_loader(self, loader: DataLoader, seed: int) -> DataLoader:
        """``loader`` over this rank's share of its dataset (shuffled if ``loader`` shuffles)."""
        if self.size == 1:
            return loader
        sampler = DistributedSampler(
            loader.dataset, self.size, self.rank, shuffle=isinstance(loader.sampler, RandomSampler), seed=seed
        )
        return DataLoader(
            loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers
        )

    def set_epoch(self, loader: DataLoader, epoch: int) -> None:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)

    # ------------------------------------------------------------ metrics

    def evaluate(
        self, task: Task, loader: DataLoader, split: str, options: TrainerOptions
    ) -> dict[str, float]:
        """``task``'s validation pass over ``split``, each rank on every N-th sample of the samples
        a single process would use, the means reduced over the ranks."""
        used = min(len(loader.dataset), options.num_batches(split, len(loader)) * loader.batch_size)
        shard = Subset(loader.dataset, range(self.rank, used, self.size))
        batches = DataLoader(shard, batch_size=loader.batch_size, num_workers=loader.num_workers)
        sums = task.validation_sums(batches, options.device)
        return tagged(task.epoch_metrics(self.reduce_means(sums).compute()), split)

    def reduce_means(self, means: MeanMetrics) -> MeanMetrics:
        """The sample-weighted means of every rank's ``means`` (rank 0's keys)."""
        if self.size == 1:
            return means
        text = _broadcast_text(comm_world(), "\n".join(means.sums))
        keys = text.split("\n") if text else []
        totals = dl.tensor(
            [means.sums.get(key, 0.0) for key in keys] + [float(means.count)], dtype=dl.float64
        )
        dist.all_reduce(totals)
        reduced = MeanMetrics()
        reduced.load_state_dict(
            {"sums": dict(zip(keys, totals.tolist()[:-1], strict=True)), "count": int(totals[-1])}
        )
        return reduced

    # ------------------------------------------------------------ checkpoints

    def gather(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every rank's ``state`` on rank 0 (None elsewhere), through dltool's serialization."""
        if self.size == 1:
            return [state]
        buffer = io.BytesIO()
        dl.save(state, buffer)
        payload = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
        comm = comm_world()
        sizes = np.zeros(self.size, dtype=np.int64) if self.is_main else None
        comm.Gather(np.array([payload.size], dtype=np.int64), sizes, root=0)
        received = np.empty(int(sizes.sum()), dtype=np.uint8) if self.is_main else None
        comm.Gatherv(payload, (received, sizes) if self.is_main else None, root=0)
        if not self.is_main:
            return None
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return [dl.load(io.BytesIO(received[a:b].tobytes())) for a, b in itertools.pairwise(offsets)]

    def layout_matches(self, checkpoint: Mapping[str, Any]) -> bool:
        """Whether ``checkpoint`` was written by as many processes as run now (else a warning: the
        interrupted epoch restarts, in another data order)."""
        saved = checkpoint.get("distributed")
        saved_size = 1 if saved is None else int(saved["world_size"])
        if saved_size == self.size:
            return True
        log.warning(
            f"resuming a checkpoint of {saved_size} process(es) with {self.size}: the data order changes, "
            "so the interrupted epoch restarts from its first batch and the run is not bit-exact"
        )
        return False

    def own_state(self, checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
        """This rank's entry of ``checkpoint``'s per-rank states; None for a checkpoint of one process
        or of another number of them (every rank then continues rank 0's generators)."""
        saved = checkpoint.get("distributed")
        if saved is None or int(saved["world_size"]) != self.size:
            return None
        return saved["ranks"][self.rank]

    def agreed_signal(self, signum: int | None) -> int | None:
        """The stop signal any rank caught (None if none did): every rank stops at the same step."""
        if self.size == 1:
            return signum
        flag = np.array([signum or 0], dtype=np.int64)
        comm_world().Allreduce(_mpi().IN_PLACE, flag, op=_mpi().MAX)
        return int(flag[0]) or None

    def decided_by_main(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank: a choice that rank 0 alone makes (a sweep's pruner's)
        and that every rank must follow at the same step."""
        if self.size == 1:
            return flag
        value = np.array([int(flag)], dtype=np.int64)
        comm_world().Bcast(value, root=0)
        return bool(value[0])

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def _models(task: Task, size: int) -> list[dl.nn.Module]:
    """The child modules of ``task`` that own trainable parameters: what a task that optimizes by
    hand runs forward, each wrapped on its own (its parameters must all belong to them)."""
    models = [child for child in task.children() if any(p.requires_grad for p in child.parameters())]
    own = [name for name, param in task.named_parameters(recurse=False) if param.requires_grad]
    if own:
        raise ConfigError(
            f"trainer.num_processes={size}: a task that optimizes by hand is averaged model by model "
            f"(its child modules), and {type(task).__name__} holds parameters of its own: {', '.join(own)}"
        )
    return models


def _arming(ddp: DistributedDataParallel) -> Any:
    """A forward pre-hook that does what ``ddp``'s forward does first: rank 0's buffers, and the
    gradient hooks armed for the backward pass that follows (when gradients are on)."""

    def hook(module: dl.nn.Module, args: tuple) -> None:
        ddp._pre_forward()

    return hook
