"""``DistributedSampler``: each rank's share of a dataset, as ``torch.utils.data.DistributedSampler``."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.utils.data.sampler import Sampler


class DistributedSampler(Sampler[int]):
    """Rank ``rank``'s interleaved share of ``dataset``, the same length on every rank.

    PyTorch's rules: the (shuffled, with seed ``seed + epoch``) index list is padded by repeating
    its start until it divides evenly by ``num_replicas`` (or, with ``drop_last``, cut to the
    largest multiple), and rank ``r`` takes every ``num_replicas``-th index from ``r``. Call
    ``set_epoch`` at each epoch's start, or every epoch has the same order. The permutation comes
    from dltool's generator, so it is not the one PyTorch draws for the same seed.

    ``state_dict`` / ``load_state_dict`` (dltool's addition) keep the epoch, so a resumed run's
    DataLoader continues the same order.

    Args:
        dataset: the dataset to split (only its length is used).
        num_replicas: the number of ranks (default: the process group's world size).
        rank: this rank (default: the process group's rank).
        shuffle: a new permutation each epoch.
        seed: the shuffle's seed, the same on every rank.
        drop_last: drop the tail instead of padding.

    Example:
        >>> sampler = DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
        >>> list(sampler)
        [1, 3, 0]
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            from dltool.engine import distributed as dist

            if not dist.is_available():
                raise RuntimeError("Requires distributed package to be available")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        if drop_last and len(dataset) % num_replicas != 0:
            self.num_samples = math.ceil((len(dataset) - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(len(dataset) / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = backend.Generator().manual_seed(self.seed + self.epoch).numpy.permutation(n)
        else:
            indices = np.arange(n, dtype=np.int64)
        if self.drop_last:
            indices = indices[: self.total_size]
        else:
            indices = np.resize(indices, self.total_size)  # repeats the start to pad, as PyTorch does
        return iter(indices[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order next (every rank must pass the same epoch)."""
        self.epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        """The epoch and the split (dltool's addition)."""
        return {"epoch": self.epoch, "seed": self.seed, "num_replicas": self.num_replicas}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue ``state_dict``'s epoch (the split itself stays as constructed)."""
        self.epoch = int(state_dict["epoch"])
