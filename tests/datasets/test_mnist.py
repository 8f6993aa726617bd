import gzip

import numpy as np
import pytest
from PIL import Image

import dltool.engine as dl
from dltool.datasets import MNIST, FashionMNIST, default_root, write_idx
from dltool.datasets import transforms as T
from dltool.engine.utils.data import BatchedSamples, DataLoader


@pytest.fixture(scope="module")
def fashion(data_root):
    return {train: FashionMNIST(data_root, train=train) for train in (True, False)}


@pytest.mark.parametrize("train,size,per_class", [(True, 60_000, 6_000), (False, 10_000, 1_000)])
def test_real_fashion_mnist(fashion, train, size, per_class):
    ds = fashion[train]
    assert len(ds) == size
    assert ds.data.shape == (size, 28, 28) and ds.data.dtype == dl.uint8
    assert ds.targets.dtype == dl.int64
    assert np.bincount(ds.targets.numpy()).tolist() == [per_class] * 10
    assert ds.classes[9] == "Ankle boot" and ds.class_to_idx["Trouser"] == 1
    assert 0 < ds.data.numpy().mean() < 255


@pytest.mark.parametrize("train,size", [(True, 60_000), (False, 10_000)])
def test_real_mnist(data_root, train, size):
    ds = MNIST(data_root, train=train)
    counts = np.bincount(ds.targets.numpy(), minlength=10)
    assert len(ds) == size and counts.sum() == size and counts.min() > size // 20
    assert ds.classes[3] == "3 - three"


def test_samples_are_pil_images_and_int_labels(fashion):
    image, label = fashion[False][0]
    assert isinstance(image, Image.Image) and image.size == (28, 28) and image.mode == "L"
    assert isinstance(label, int)
    np.testing.assert_array_equal(np.asarray(image), fashion[False].data.numpy()[0])


def test_fast_path_equals_the_per_sample_path(data_root):
    transform = T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))])
    ds = FashionMNIST(data_root, train=False, transform=transform)
    indices = [5, 0, 9999, 5]
    fast = ds.__getitems__(indices)
    assert isinstance(fast, BatchedSamples)
    images, labels = fast.collated
    assert images.shape == (4, 1, 28, 28) and images.dtype == dl.float32
    for row, i in enumerate(indices):
        image, label = ds[i]
        np.testing.assert_array_equal(images.numpy()[row], image.numpy())
        assert labels[row].item() == label


def test_transforms_without_batch_form_use_the_per_sample_path(data_root):
    ds = FashionMNIST(data_root, train=False, transform=T.Compose([T.RandomHorizontalFlip(), T.ToTensor()]))
    batch = ds.__getitems__([1, 2])
    assert isinstance(batch, list) and batch[0][0].shape == (1, 28, 28) and isinstance(batch[0][1], int)
    ds = FashionMNIST(data_root, train=False, transform=T.ToTensor(), target_transform=lambda y: y + 1)
    assert ds.__getitems__([0])[0][1] == ds.targets[0].item() + 1


def test_loader_over_the_fast_path(data_root):
    ds = FashionMNIST(data_root, train=False, transform=T.ToTensor())
    batches = list(DataLoader(ds, batch_size=128, shuffle=True))
    assert len(batches) == 79 and batches[-1][0].shape == (16, 1, 28, 28)
    assert sum(len(y) for _, y in batches) == 10_000


def _write_split(raw, prefix, n, suffix=".gz"):
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
    write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_reads_gzipped_and_plain_files(tmp_path, suffix):
    _write_split(tmp_path / "MNIST" / "raw", "t10k", 30, suffix)
    ds = MNIST(tmp_path, train=False)
    assert len(ds) == 30 and ds.targets.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_missing_files_error_names_files_and_folder(tmp_path):
    with pytest.raises(RuntimeError) as info:
        FashionMNIST(tmp_path, train=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "download=True" in message


def test_corrupted_files_name_the_file(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_split(raw, "t10k", 20)
    images = raw / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))
    with pytest.raises(ValueError, match="truncated IDX file") as info:
        MNIST(tmp_path, train=False)
    assert str(images) in str(info.value)


def test_swapped_files_are_caught_by_their_magic_number(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_split(raw, "t10k", 20)
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes((raw / "t10k-images-idx3-ubyte.gz").read_bytes())
    with pytest.raises(ValueError, match="magic number 0x00000803, expected 0x00000801"):
        MNIST(tmp_path, train=False)


def test_mismatched_counts_and_bad_labels(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_split(raw, "t10k", 20)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(ValueError, match="holds 20 images but .* holds 19 labels"):
        MNIST(tmp_path, train=False)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.full(20, 12, np.uint8))
    with pytest.raises(ValueError, match="label 12 is out of range for 10 classes"):
        MNIST(tmp_path, train=False)


def test_default_root(monkeypatch):
    monkeypatch.setenv("DLTOOL_DATA", "/somewhere")
    assert default_root() == "/somewhere"
    monkeypatch.delenv("DLTOOL_DATA")
    assert default_root() == "data"
