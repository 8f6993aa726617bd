"""DataLoader with worker processes: order, errors, seeding and clean shutdown (small datasets)."""

import glob
import multiprocessing
import os
import time

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, get_worker_info
from dltool.engine.utils.data._shared import _Packed, pack, unpack


class Items(Dataset):
    def __init__(self, n, fail_at=None, exit_at=None, sleep=0.0):
        self.n, self.fail_at, self.exit_at, self.sleep = n, fail_at, exit_at, sleep

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyError(f"cannot load item {i}")
        if i == self.exit_at:
            os._exit(3)
        time.sleep(self.sleep)
        return i


class WhoAmI(Dataset):
    """Each sample says which worker made it and draws from that worker's engine RNG."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return info.id, dl.rand(1).item(), info.seed


class Shards(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        return iter(range(info.id, self.n, info.num_workers))


class Large(Dataset):
    """64 KiB samples: their batches travel through shared memory."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"image": np.full((128, 128), i, np.float32), "label": i}


def _no_children():
    return multiprocessing.active_children() == []


def _shared_files():
    return glob.glob(f"/dev/shm/dltool-{os.getpid()}-*")


def test_batches_arrive_in_order_and_match_single_process():
    dataset = TensorDataset(dl.arange(23))
    dl.manual_seed(4)
    single = [b[0].tolist() for b in DataLoader(dataset, batch_size=3, shuffle=True)]
    dl.manual_seed(4)
    loader = DataLoader(dataset, batch_size=3, shuffle=True, num_workers=2)
    assert [b[0].tolist() for b in loader] == single
    assert _no_children()


def test_per_item_dataset_with_workers_and_uneven_work():
    loader = DataLoader(Items(9, sleep=0.002), batch_size=2, num_workers=2, prefetch_factor=1)
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3], [4, 5], [6, 7], [8]]


def test_worker_error_is_raised_with_the_worker_traceback():
    loader = DataLoader(Items(10, fail_at=5), batch_size=2, num_workers=2)
    with pytest.raises(KeyError) as info:
        list(loader)
    message = str(info.value)
    assert "Caught KeyError in DataLoader worker process 0" in message
    assert "cannot load item 5" in message and "in __getitem__" in message
    assert "Traceback (most recent call last):\n" in message  # readable, not a KeyError repr
    assert _no_children()


def test_worker_init_fn_error_is_raised():
    def init(worker_id):
        raise ValueError(f"init failed in {worker_id}")

    with pytest.raises(ValueError, match="init failed in 0"):
        list(DataLoader(Items(4), num_workers=1, worker_init_fn=init))
    assert _no_children()


def test_early_break_leaves_no_worker_processes():
    for batch in DataLoader(Items(100), batch_size=2, num_workers=2):
        if batch[0] == 10:
            break
    assert _no_children()


def test_dead_worker_is_reported():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+.*\) exited unexpectedly"):
        list(DataLoader(Items(6, exit_at=3), batch_size=1, num_workers=2))
    assert _no_children()


def test_timeout():
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.2 seconds"):
        list(DataLoader(Items(4, sleep=3.0), num_workers=1, timeout=0.2))
    assert _no_children()


def test_workers_are_seeded_from_the_loader_seed():
    def run():
        dl.manual_seed(11)
        return [
            tuple(map(tuple, zip(*[x.tolist() for x in b], strict=True)))
            for b in DataLoader(WhoAmI(), batch_size=2, num_workers=2)
        ]

    first = run()
    assert first == run()
    samples = [s for batch in first for s in batch]
    assert {s[0] for s in samples} == {0, 1}  # both workers took part
    seeds = {s[0]: s[2] for s in samples}
    assert seeds[1] == seeds[0] + 1  # base_seed + worker_id, as in PyTorch
    assert len({s[1] for s in samples}) == len(samples)  # workers draw different numbers


def test_worker_init_fn_runs_in_each_worker():
    def init(worker_id):
        dl.manual_seed(1000 + worker_id)

    loader = DataLoader(WhoAmI(), batch_size=4, num_workers=2, worker_init_fn=init)
    draws = {}
    for ids, values, _ in loader:
        draws[ids[0].item()] = values[0].item()
    for worker_id, value in draws.items():
        dl.manual_seed(1000 + worker_id)
        assert value == dl.rand(1).item()


def test_iterable_dataset_sharded_by_worker_info():
    batches = [b.tolist() for b in DataLoader(Shards(11), batch_size=2, num_workers=2)]
    assert sorted(sum(batches, [])) == list(range(11))
    assert batches[0] == [0, 2] and batches[1] == [1, 3]


def test_persistent_workers_survive_epochs_and_stop_with_the_loader():
    loader = DataLoader(
        TensorDataset(dl.arange(10)), batch_size=4, shuffle=True, num_workers=2, persistent_workers=True
    )
    epochs, pids = [], []
    for _ in range(3):
        epochs.append(sorted(x for (b,) in loader for x in b.tolist()))
        pids.append({p.pid for p in multiprocessing.active_children()})
    assert epochs == [list(range(10))] * 3
    assert len(pids[0]) == 2 and pids[0] == pids[1] == pids[2]
    del loader
    assert _no_children()


def test_prefetch_keeps_a_bounded_number_of_batches_in_flight():
    iterator = iter(DataLoader(Items(40), batch_size=1, num_workers=2, prefetch_factor=3))
    assert iterator._tasks_outstanding == 6
    next(iterator)
    assert iterator._tasks_outstanding <= 6
    del iterator
    assert _no_children()


def test_spawn_context():
    loader = DataLoader(
        TensorDataset(dl.arange(5)), batch_size=2, num_workers=1, multiprocessing_context="spawn"
    )
    assert [b.tolist() for (b,) in loader] == [[0, 1], [2, 3], [4]]
    assert _no_children()


def test_large_batches_travel_through_shared_memory_and_are_cleaned_up():
    loader = DataLoader(Large(), batch_size=4, num_workers=2)
    batches = list(loader)
    assert [b["label"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    images = batches[1]["image"]
    assert images.shape == (4, 128, 128) and images.numpy()[2].min() == images.numpy()[2].max() == 6
    images.add_(1)  # batches are ordinary writable tensors
    assert images.numpy()[0, 0, 0] == 5
    first = next(iter(DataLoader(Large(), batch_size=2, num_workers=2, prefetch_factor=3)))
    assert first["label"].tolist() == [0, 1]  # the batches still in flight were dropped with their files
    assert _shared_files() == [] and _no_children()


def test_pack_moves_large_buffers_out_of_band():
    data = {"big": dl.arange(20000, dtype=dl.float32), "small": np.arange(3), "text": "x"}
    packed = pack(data, f"dltool-{os.getpid()}-test")
    assert isinstance(packed, _Packed) and len(packed.layout) == 1 and len(packed.payload) < 1000
    restored = unpack(packed)
    assert restored["big"].tolist() == data["big"].tolist() and restored["small"].tolist() == [0, 1, 2]
    assert _shared_files() == []
    small = pack({"a": np.arange(3)}, "unused")
    assert isinstance(small, _Packed) and small.name is None  # pickled once, in band
    assert unpack(small)["a"].tolist() == [0, 1, 2]


class ThreadCounts(Dataset):
    """Each sample is the thread count its worker's engine and BLAS run with."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        import threadpoolctl

        blas = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
        return dl.get_num_threads(), max(blas)


def test_workers_run_one_thread_each():
    loader = DataLoader(ThreadCounts(), batch_size=None, num_workers=2)
    assert [tuple(int(v) for v in sample) for sample in loader] == [(1, 1), (1, 1)]
