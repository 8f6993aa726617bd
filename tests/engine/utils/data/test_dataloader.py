import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    SequentialSampler,
    TensorDataset,
)


class Items(Dataset):
    """Per-item samples (no __getitems__), counting the calls."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        return dl.tensor([float(i)]), i


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def _order(loader):
    return [batch[1].tolist() for batch in loader]


def test_sequential_batches_and_len():
    loader = DataLoader(Items(10), batch_size=4)
    assert len(loader) == 3
    assert _order(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, y = next(iter(loader))
    assert x.shape == (4, 1) and y.dtype == dl.int64


def test_drop_last():
    loader = DataLoader(Items(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and _order(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_shuffle_order_is_fixed_by_the_seed():
    dl.manual_seed(1)
    loader = DataLoader(Items(12), batch_size=5, shuffle=True)
    first, second = _order(loader), _order(loader)
    dl.manual_seed(1)
    assert _order(loader) == first
    assert first != second
    assert sorted(sum(first, [])) == list(range(12))


def test_shuffle_order_with_a_generator_ignores_the_global_seed():
    orders = []
    for global_seed in (0, 1):
        dl.manual_seed(global_seed)
        orders.append(
            _order(DataLoader(Items(12), batch_size=5, shuffle=True, generator=dl.Generator().manual_seed(7)))
        )
    assert orders[0] == orders[1]


def test_batch_size_none_disables_batching():
    loader = DataLoader(TensorDataset(dl.arange(3)), batch_size=None)
    assert [x.item() for (x,) in loader] == [0, 1, 2] and len(loader) == 3


def test_custom_sampler_batch_sampler_and_collate_fn():
    loader = DataLoader(Items(6), batch_size=2, sampler=[5, 4, 3, 2, 1, 0])
    assert _order(loader) == [[5, 4], [3, 2], [1, 0]]
    loader = DataLoader(Items(5), batch_sampler=[[0, 4], [2]])
    assert _order(loader) == [[0, 4], [2]] and len(loader) == 2
    loader = DataLoader(Items(4), batch_size=2, collate_fn=lambda batch: [label for _, label in batch])
    assert list(loader) == [[0, 1], [2, 3]]


class BatchOnly(TensorDataset):
    def __getitem__(self, index):
        raise AssertionError("the loader fetched a single item")


def test_fast_path_fetches_whole_batches():
    x = dl.randn(10, 3)
    dataset = BatchOnly(x, dl.arange(10))
    batches = list(DataLoader(dataset, batch_size=4, shuffle=True))
    rows = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(rows, x.numpy()[labels])
    items = Items(6)
    list(DataLoader(items, batch_size=4))
    assert items.calls == 6


def test_iterable_dataset_batches_drop_last_and_len():
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    assert len(DataLoader(Stream(7), batch_size=3)) == 3
    assert len(DataLoader(Stream(7), batch_size=3, drop_last=True)) == 2


def test_settings_are_frozen_after_init():
    loader = DataLoader(Items(3))
    with pytest.raises(
        ValueError, match="batch_size attribute should not be set after DataLoader is initialized"
    ):
        loader.batch_size = 2


BAD_OPTIONS = [
    ("map", {"batch_size": 0}),
    ("map", {"batch_size": -2}),
    ("map", {"batch_size": 1.5}),
    ("map", {"shuffle": True, "sampler": "SAMPLER"}),
    ("map", {"batch_sampler": "BATCH_SAMPLER", "batch_size": 4}),
    ("map", {"batch_sampler": "BATCH_SAMPLER", "shuffle": True}),
    ("map", {"batch_sampler": "BATCH_SAMPLER", "drop_last": True}),
    ("map", {"batch_size": None, "drop_last": True}),
    ("map", {"num_workers": -1}),
    ("map", {"timeout": -1}),
    ("map", {"prefetch_factor": 2}),
    ("map", {"persistent_workers": True}),
    ("map", {"multiprocessing_context": "spawn"}),
    ("map", {"num_workers": 1, "multiprocessing_context": "nonsense"}),
    ("iterable", {"shuffle": True}),
    ("iterable", {"sampler": "SAMPLER"}),
]


@pytest.mark.parametrize("kind,options", BAD_OPTIONS, ids=[str(o) for _, o in BAD_OPTIONS])
def test_bad_options_raise_pytorchs_errors(kind, options):
    torch = pytest.importorskip("torch")

    def build(lib, dataset):
        data = lib.utils.data
        placeholders = {"SAMPLER": data.SequentialSampler(range(4)), "BATCH_SAMPLER": [[0, 1]]}
        kwargs = {k: placeholders.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
        return data.DataLoader(dataset, **kwargs)

    torch_data = torch.utils.data
    torch_dataset = (
        torch_data.TensorDataset(torch.zeros(4))
        if kind == "map"
        else type("S", (torch_data.IterableDataset,), {"__iter__": lambda self: iter([])})()
    )
    with pytest.raises((ValueError, TypeError)) as expected:
        build(torch, torch_dataset)
    ours = TensorDataset(dl.zeros(4)) if kind == "map" else Stream(0)
    with pytest.raises(expected.type) as got:
        build(dl, ours)
    # sampler reprs name their class and address, which differ between the libraries
    assert str(got.value).split("=<")[0] == str(expected.value).split("=<")[0]


def test_batch_sampler_object_is_exposed():
    loader = DataLoader(Items(5), batch_size=2)
    assert isinstance(loader.batch_sampler, BatchSampler)
    assert isinstance(loader.sampler, SequentialSampler)
