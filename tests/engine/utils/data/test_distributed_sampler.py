"""DistributedSampler: PyTorch's shares, padding and drop_last, with dltool's own permutation."""

from __future__ import annotations

import pytest

from dltool.engine.utils.data import DataLoader, DistributedSampler

CASES = [
    (5, 2, False),
    (5, 2, True),
    (3, 5, False),
    (7, 3, False),
    (10, 4, True),
    (8, 4, False),
    (9, 4, True),
]


def _shares(n: int, replicas: int, drop_last: bool, lib, **options) -> list[list[int]]:
    return [
        list(lib(range(n), num_replicas=replicas, rank=rank, drop_last=drop_last, **options))
        for rank in range(replicas)
    ]


@pytest.mark.parametrize(("n", "replicas", "drop_last"), CASES)
def test_unshuffled_shares_match_pytorch(n: int, replicas: int, drop_last: bool) -> None:
    torch = pytest.importorskip("torch")
    expected = _shares(n, replicas, drop_last, torch.utils.data.DistributedSampler, shuffle=False)
    assert _shares(n, replicas, drop_last, DistributedSampler, shuffle=False) == expected
    samplers = [DistributedSampler(range(n), replicas, rank, drop_last=drop_last) for rank in range(replicas)]
    assert [len(s) for s in samplers] == [len(share) for share in expected]


@pytest.mark.parametrize(("n", "replicas", "drop_last"), CASES)
def test_shuffled_shares_split_one_permutation(n: int, replicas: int, drop_last: bool) -> None:
    shares = _shares(n, replicas, drop_last, DistributedSampler, seed=3)
    interleaved = [share[i] for i in range(len(shares[0])) for share in shares]
    if drop_last:
        assert len(set(interleaved)) == len(interleaved) == n - n % replicas
    else:  # every sample once, the padding repeats the permutation's start
        assert sorted(set(interleaved)) == list(range(n))
        assert interleaved[n:] == (interleaved[:n] * replicas)[: len(interleaved) - n]


def test_epoch_and_seed_set_the_order() -> None:
    sampler = DistributedSampler(range(100), num_replicas=2, rank=0, seed=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    again = DistributedSampler(range(100), num_replicas=2, rank=0, seed=1)
    again.load_state_dict(sampler.state_dict())
    assert list(again) == list(sampler)
    assert list(DistributedSampler(range(100), num_replicas=2, rank=0, seed=2)) != first


def test_in_a_dataloader() -> None:
    sampler = DistributedSampler(range(10), num_replicas=3, rank=2, shuffle=False)
    batches = [batch.tolist() for batch in DataLoader(list(range(10)), batch_size=2, sampler=sampler)]
    assert batches == [[2, 5], [8, 1]]


def test_invalid_rank() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as expected:
        torch.utils.data.DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=str(expected.value).replace("[", r"\[")):
        DistributedSampler(range(4), num_replicas=2, rank=2)


def test_without_a_process_group() -> None:
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(range(4))
