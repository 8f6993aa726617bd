"""Run by test_distributed.py as 2 MPI ranks: the GAN task trained through the trainer's ``Ranks``
(one DistributedDataParallel per model) against one process with the whole batch.

Each rank writes ``rank<r>.json`` into argv[1]: ``{check: "ok" or the failure}``.
"""

from __future__ import annotations

import copy
import json
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import dltool.engine as dl
from dltool.engine import nn
from dltool.models.dcgan import Discriminator, Generator
from dltool.training.distributed import Ranks
from dltool.training.tasks import GAN
from dltool.training.tasks.base import Optimization

STEPS, BATCH, LATENT = 4, 8, 16  # BATCH per rank; the reference process takes SIZE * BATCH
SIZE = 2


def _gan() -> GAN:
    """A small DCGAN (BatchNorm in both networks) with the task's two Adam optimizers."""
    dl.manual_seed(0)
    return GAN(Generator(LATENT, 1, 4, 8), Discriminator(1, 4, 8), samples=4)


def _optimize(task: GAN) -> None:
    adam = {"lr": 2e-3, "betas": (0.5, 0.999)}
    task.attach_optimizations(
        [
            Optimization(dl.optim.Adam(task.discriminator.parameters(), **adam)),
            Optimization(dl.optim.Adam(task.generator.parameters(), **adam)),
        ]
    )


def _train(task: GAN, ranks: Ranks | None, images: np.ndarray, noise: np.ndarray) -> None:
    """STEPS training steps on ``images`` with ``noise`` as the generator's input (rows: this
    process's samples), as the trainer runs them."""
    draws = iter(noise)
    real_randn = dl.randn
    dl.randn = lambda *shape, **kwargs: _next_noise(draws, shape)  # the task draws its noise here
    try:
        for step, batch in enumerate(images):
            if ranks is not None:
                ranks.before_step()
            task.training_step(dl.from_numpy(batch), step)
    finally:
        dl.randn = real_randn


def _next_noise(draws: Iterator[np.ndarray], shape: tuple) -> dl.Tensor:
    noise = next(draws)
    assert noise.shape == shape, (noise.shape, shape)
    return dl.from_numpy(noise)


def check_two_ranks_match_one_process_with_the_global_batch(rank: int, ranks: Ranks) -> None:
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (STEPS, SIZE * BATCH, 1, 8, 8)).astype(np.float32)
    noise = rng.standard_normal((STEPS, SIZE * BATCH, LATENT)).astype(np.float32)
    reference = _gan()
    task = copy.deepcopy(reference)
    # batch statistics over every rank's batch: N ranks of B normalize as one process of N x B
    task.generator = nn.SyncBatchNorm.convert_sync_batchnorm(task.generator)
    task.discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(task.discriminator)
    _optimize(reference)
    _optimize(task)
    ranks.wrap(task)
    _train(reference, None, images, noise)
    mine = slice(rank * BATCH, (rank + 1) * BATCH)
    _train(task, ranks, images[:, mine], noise[:, mine])
    expected = reference.state_dict()
    for name, value in task.state_dict().items():
        np.testing.assert_allclose(value.numpy(), expected[name].numpy(), rtol=1e-4, atol=2e-5, err_msg=name)


def main() -> None:
    ranks = Ranks.join(SIZE, "cpu")
    results = {}
    for name, check in list(globals().items()):
        if name.startswith("check_"):
            try:
                check(ranks.rank, ranks)
                results[name] = "ok"
            except Exception:  # reported; the test names the failing check and rank
                results[name] = traceback.format_exc(limit=-3)
    ranks.close()
    Path(sys.argv[1], f"rank{ranks.rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
