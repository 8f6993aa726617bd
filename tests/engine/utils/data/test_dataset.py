import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.utils.data import (
    BatchedSamples,
    ConcatDataset,
    Dataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
)


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i * i


def test_tensor_dataset_rows_and_length():
    x, y = dl.arange(12).reshape(6, 2), dl.tensor([0, 1, 0, 1, 1, 0])
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    row, label = ds[4]
    assert row.tolist() == [8, 9] and label.item() == 1


def test_tensor_dataset_size_mismatch():
    with pytest.raises(ValueError, match="Size mismatch between tensors"):
        TensorDataset(dl.zeros(3, 2), dl.zeros(4))


def test_getitems_is_the_collated_batch_of_the_items():
    ds = TensorDataset(dl.randn(10, 3), dl.arange(10))
    indices = [7, 2, 2, 9]
    fast = ds.__getitems__(indices)
    assert isinstance(fast, BatchedSamples) and len(fast) == 4
    slow = default_collate([ds[i] for i in indices])
    for a, b in zip(default_collate(fast), slow, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # still a sequence of samples for custom collate functions
    assert fast[1][1].item() == 2 and [s[1].item() for s in fast[1:3]] == [2, 2]


def test_subset_maps_indices_and_keeps_the_fast_path():
    ds = TensorDataset(dl.arange(10) * 10)
    sub = Subset(ds, [9, 3, 5])
    assert len(sub) == 3 and sub[0][0].item() == 90
    batch = sub.__getitems__([2, 0])
    assert isinstance(batch, BatchedSamples)
    assert batch.collated[0].tolist() == [50, 90]
    assert Subset(Squares(5), [4, 1]).__getitems__([0, 1]) == [16, 1]


def test_subset_maps_a_batch_like_the_python_lookup_and_follows_reassigned_indices():
    ds = TensorDataset(dl.arange(100))
    parent = [97, 3, 42, 0, 55, 11]
    sub = Subset(ds, parent)
    positions = [5, 0, -1, 2, 2]
    assert sub.__getitems__(positions).collated[0].tolist() == [parent[i] for i in positions]
    assert sub[positions][0].tolist() == [parent[i] for i in positions]
    with pytest.raises(IndexError):
        sub.__getitems__([6])
    sub.indices = [1, 2]
    assert len(sub) == 2 and sub.__getitems__([1, 0]).collated[0].tolist() == [2, 1]


def test_concat_dataset_and_add():
    ds = Squares(3) + Squares(2)
    assert isinstance(ds, ConcatDataset)
    assert len(ds) == 5 and ds.cumulative_sizes == [3, 5]
    assert [ds[i] for i in range(5)] == [0, 1, 4, 0, 1]
    assert ds[-1] == 1
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        ds[-6]
    with pytest.raises(ValueError, match="datasets should not be an empty iterable"):
        ConcatDataset([])


def test_random_split_is_a_seeded_partition():
    parts = random_split(range(10), [3, 7], generator=dl.Generator().manual_seed(1))
    again = random_split(range(10), [3, 7], generator=dl.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    assert [list(p) for p in parts] == [list(p) for p in again]
    dl.manual_seed(3)
    first = [list(p) for p in random_split(range(10), [5, 5])]
    dl.manual_seed(3)
    assert first == [list(p) for p in random_split(range(10), [5, 5])]


@pytest.mark.parametrize("fractions", [[0.3, 0.7], [0.33, 0.33, 0.34], [0.5, 0.25, 0.25], [0.1] * 10])
@pytest.mark.parametrize("n", [10, 11, 97])
def test_random_split_fractions_give_pytorchs_lengths(fractions, n):
    torch = pytest.importorskip("torch")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns about empty splits, as dltool does
        expected = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
        got = [len(p) for p in random_split(range(n), fractions)]
    assert got == expected


def test_random_split_errors():
    with pytest.raises(
        ValueError, match="Sum of input lengths does not equal the length of the input dataset!"
    ):
        random_split(range(10), [3, 3])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(2), [0.9, 0.1])
