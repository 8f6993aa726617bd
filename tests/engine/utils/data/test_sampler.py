import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.utils import data as ours


def test_sequential_sampler():
    assert list(ours.SequentialSampler(range(4))) == [0, 1, 2, 3]
    assert len(ours.SequentialSampler(range(4))) == 4


def test_random_sampler_is_a_permutation_fixed_by_the_seed():
    dl.manual_seed(5)
    first = list(ours.RandomSampler(range(20)))
    second = list(ours.RandomSampler(range(20)))
    dl.manual_seed(5)
    assert list(ours.RandomSampler(range(20))) == first
    assert sorted(first) == list(range(20)) and first != second


def test_random_sampler_generator():
    sampler = ours.RandomSampler(range(8), generator=dl.Generator().manual_seed(2))
    epochs = [list(sampler) for _ in range(2)]
    again = ours.RandomSampler(range(8), generator=dl.Generator().manual_seed(2))
    assert [list(again) for _ in range(2)] == epochs and epochs[0] != epochs[1]


def test_random_sampler_num_samples_and_replacement():
    drawn = list(ours.RandomSampler(range(5), num_samples=12))
    assert len(drawn) == 12
    assert sorted(drawn[:5]) == sorted(drawn[5:10]) == list(range(5))  # whole rounds of permutations
    with_replacement = ours.RandomSampler(range(3), replacement=True, num_samples=50)
    drawn = list(with_replacement)
    assert len(with_replacement) == 50 and set(drawn) == {0, 1, 2}


@pytest.mark.parametrize(
    "kwargs",
    [{"replacement": 1}, {"num_samples": 0}, {"num_samples": 2.5}],
    ids=["replacement", "num_samples=0", "num_samples=float"],
)
def test_random_sampler_errors_match_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    with pytest.raises((TypeError, ValueError)) as expected:
        torch.utils.data.RandomSampler(range(3), **kwargs)
    with pytest.raises(expected.type, match=str(expected.value).replace("(", r"\(").replace(")", r"\)")):
        ours.RandomSampler(range(3), **kwargs)


def test_subset_random_sampler():
    dl.manual_seed(0)
    drawn = list(ours.SubsetRandomSampler([10, 20, 30, 40]))
    assert sorted(drawn) == [10, 20, 30, 40]
    assert len(ours.SubsetRandomSampler([1, 2])) == 2


def test_weighted_random_sampler_follows_the_weights():
    sampler = ours.WeightedRandomSampler([0.0, 1.0, 3.0], num_samples=4000)
    counts = np.bincount(list(sampler), minlength=3)
    assert counts[0] == 0 and abs(counts[2] / counts[1] - 3) < 0.4
    unique = list(ours.WeightedRandomSampler([1, 1, 1, 1], num_samples=4, replacement=False))
    assert sorted(unique) == [0, 1, 2, 3]


def test_weighted_random_sampler_errors():
    with pytest.raises(
        ValueError, match="num_samples should be a positive integer value, but got num_samples=0"
    ):
        ours.WeightedRandomSampler([1.0], 0)
    with pytest.raises(
        ValueError, match=r"weights should be a 1d sequence but given weights have shape \(1, 2\)"
    ):
        ours.WeightedRandomSampler([[1.0, 2.0]], 1)
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        ours.WeightedRandomSampler([1.0, 1.0], 3, replacement=False)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n,batch_size", [(10, 3), (9, 3), (2, 5)])
def test_batch_sampler_matches_pytorch(n, batch_size, drop_last):
    torch = pytest.importorskip("torch")
    expected = torch.utils.data.BatchSampler(range(n), batch_size, drop_last)
    for sampler in (range(n), ours.SequentialSampler(range(n))):  # generic and array paths
        got = ours.BatchSampler(sampler, batch_size, drop_last)
        assert list(got) == list(expected) and len(got) == len(expected)


@pytest.mark.parametrize("args", [(0, False), (-1, False), (2.0, False), (True, False), (2, 1)])
def test_batch_sampler_errors_match_pytorch(args):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as expected:
        torch.utils.data.BatchSampler(range(3), *args)
    with pytest.raises(ValueError) as got:
        ours.BatchSampler(range(3), *args)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ours.RandomSampler(range(9)),
        lambda: ours.RandomSampler(range(9), generator=dl.Generator().manual_seed(4)),
        lambda: ours.SubsetRandomSampler([3, 1, 4, 1, 5]),
        lambda: ours.WeightedRandomSampler([1.0, 2.0, 3.0], 7),
    ],
    ids=["random", "random-generator", "subset", "weighted"],
)
def test_sampler_state_replays_the_epoch_then_continues(make):
    sampler = make()
    epoch = list(sampler)
    state = sampler.state_dict()
    following = list(sampler)
    restored = make()
    restored.load_state_dict(state)
    assert list(restored) == epoch  # the saved epoch once
    if state["generator"] is not None:  # an explicit generator continues where it stood
        assert list(restored) == following
