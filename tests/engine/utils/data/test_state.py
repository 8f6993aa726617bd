"""Loader state: a run resumed from ``state_dict`` sees exactly the batches of an uninterrupted run."""

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.utils.data import DataLoader, IterableDataset, TensorDataset, WeightedRandomSampler


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(11))


def _dataset():
    return TensorDataset(dl.arange(11))


CONFIGS = {
    "shuffle": lambda: DataLoader(_dataset(), batch_size=2, shuffle=True),
    "generator": lambda: DataLoader(
        _dataset(), batch_size=2, shuffle=True, generator=dl.Generator().manual_seed(9)
    ),
    "sequential": lambda: DataLoader(_dataset(), batch_size=2),
    "drop_last": lambda: DataLoader(_dataset(), batch_size=2, shuffle=True, drop_last=True),
    "weighted": lambda: DataLoader(_dataset(), batch_size=2, sampler=WeightedRandomSampler([1.0] * 11, 9)),
    "custom_sampler": lambda: DataLoader(
        _dataset(), batch_size=2, sampler=[10, 0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    ),
    "iterable": lambda: DataLoader(Stream(), batch_size=2),
    "workers": lambda: DataLoader(_dataset(), batch_size=2, shuffle=True, num_workers=2),
    "persistent": lambda: DataLoader(
        _dataset(), batch_size=2, shuffle=True, num_workers=2, persistent_workers=True
    ),
}


def _epoch(iterator):
    """The epoch's batches, each with a draw from the global RNG as a model's dropout would make."""
    return [(_values(batch), dl.rand(1).item()) for batch in iterator]


def _values(batch):
    return (batch[0] if isinstance(batch, list) else batch).tolist()


def _through_checkpoint(value):
    """What a checkpoint gives back: tensors as numpy arrays, containers rebuilt."""
    if isinstance(value, dict):
        return {k: _through_checkpoint(v) for k, v in value.items()}
    if isinstance(value, dl.Tensor):
        return value.numpy().copy()
    return value


def _uninterrupted(make):
    """Two epochs of a run that never stops."""
    dl.manual_seed(0)
    loader = make()
    return [_epoch(loader) for _ in range(2)]


def _start(make, stop):
    """A fresh run, stopped after ``stop`` batches: its loader, iterator and what it saw."""
    dl.manual_seed(0)
    loader = make()
    iterator = iter(loader)
    return loader, iterator, [(_values(next(iterator)), dl.rand(1).item()) for _ in range(stop)]


def _resume(make, loader_state, rng_state):
    dl.manual_seed(123)  # the resumed process starts from elsewhere
    resumed = make()
    dl.set_rng_state(rng_state)
    resumed.load_state_dict(loader_state)
    return resumed


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("stop", [0, 2, 4])
def test_resume_mid_epoch_sees_the_uninterrupted_batches(name, stop):
    make = CONFIGS[name]
    reference = _uninterrupted(make)
    loader, iterator, seen = _start(make, stop)
    state, rng_state = _through_checkpoint(loader.state_dict()), dl.get_rng_state().numpy().copy()
    del iterator, loader
    resumed = _resume(make, state, rng_state)
    assert seen + _epoch(resumed) == reference[0]
    assert _epoch(resumed) == reference[1]


@pytest.mark.parametrize("name", ["shuffle", "generator", "workers"])
def test_resume_between_epochs_starts_the_next_epoch(name):
    make = CONFIGS[name]
    reference = _uninterrupted(make)
    loader, iterator, seen = _start(make, 0)
    assert seen + _epoch(iterator) == reference[0]
    state = _through_checkpoint(loader.state_dict())
    assert state["batches_yielded"] == 0 and state["base_seed"] is None
    assert _epoch(_resume(make, state, dl.get_rng_state())) == reference[1]


def test_state_round_trips_through_a_checkpoint_file(tmp_path):
    make = CONFIGS["generator"]
    reference = _uninterrupted(make)
    loader, _, seen = _start(make, 3)
    dl.save({"loader": loader.state_dict(), "rng": dl.get_rng_state()}, tmp_path / "last.ckpt")
    checkpoint = dl.load(tmp_path / "last.ckpt")
    assert seen + _epoch(_resume(make, checkpoint["loader"], checkpoint["rng"])) == reference[0]


def test_state_holds_the_epoch_order_and_position():
    loader = DataLoader(_dataset(), batch_size=4, shuffle=True)
    iterator = iter(loader)
    first = next(iterator)[0].tolist()
    state = loader.state_dict()
    assert state["batches_yielded"] == 1
    indices = np.asarray(state["sampler"]["indices"])
    assert sorted(indices.tolist()) == list(range(11)) and indices[:4].tolist() == first
    assert loader.state_dict()["batches_yielded"] == 1
    loader.load_state_dict(state)
    assert loader.state_dict() == state  # pending until the next iteration


def test_load_state_dict_rejects_a_foreign_dict():
    with pytest.raises(KeyError, match="DataLoader state_dict is missing keys"):
        DataLoader(_dataset()).load_state_dict({"batches_yielded": 3})
