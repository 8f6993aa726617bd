"""Downloads against a fake urlopen or an unreachable local address: the tests never use the network."""

import gzip
import hashlib
import io
import urllib.error
import urllib.request

import numpy as np
import pytest

from dltool.datasets import MNIST, read_idx, write_idx
from dltool.datasets import download as download_module
from dltool.datasets.download import download_url, extract_gzip


def _idx_gz(tmp_path, array):
    write_idx(tmp_path / "tmp.gz", array)
    return (tmp_path / "tmp.gz").read_bytes()


@pytest.fixture
def served(tmp_path):
    """Fake mirror files: a tiny valid MNIST test split."""
    return {
        "t10k-images-idx3-ubyte.gz": _idx_gz(tmp_path, np.full((3, 28, 28), 7, np.uint8)),
        "t10k-labels-idx1-ubyte.gz": _idx_gz(tmp_path, np.array([1, 2, 3], np.uint8)),
        "train-images-idx3-ubyte.gz": _idx_gz(tmp_path, np.zeros((2, 28, 28), np.uint8)),
        "train-labels-idx1-ubyte.gz": _idx_gz(tmp_path, np.array([4, 5], np.uint8)),
    }


@pytest.fixture
def fake_urlopen(monkeypatch, served):
    requested = []

    def urlopen(request, timeout=None):
        url = request.full_url
        requested.append(url)
        if not url.startswith("https://mirror.test/"):
            raise urllib.error.URLError("unreachable")
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requested


def _mnist_class(served, mirrors):
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in served.items()}
    return type(
        "MNIST", (MNIST,), {"mirrors": mirrors, "resources": [(n, md5[n]) for n, _ in MNIST.resources]}
    )


def test_download_fetches_verifies_and_reads(tmp_path, served, fake_urlopen):
    dataset_cls = _mnist_class(served, ["https://down.test/", "https://mirror.test/"])
    ds = dataset_cls(tmp_path / "root", train=False, download=True)
    assert len(ds) == 3 and ds.targets.tolist() == [1, 2, 3]
    raw = tmp_path / "root" / "MNIST" / "raw"
    # each .gz and its uncompressed copy, no temporary files left
    copies = [name.removesuffix(".gz") for name in served]
    assert sorted(p.name for p in raw.iterdir()) == sorted([*served, *copies])
    for name, data in served.items():
        assert (raw / name.removesuffix(".gz")).read_bytes() == gzip.decompress(data)
    assert len(fake_urlopen) == 8  # each file: the dead mirror, then the live one
    dataset_cls(tmp_path / "root", train=True, download=True)
    assert len(fake_urlopen) == 8  # present files are not fetched again


def test_checksum_mismatch_leaves_no_file(tmp_path, served, fake_urlopen):
    dataset_cls = _mnist_class(served, ["https://mirror.test/"])
    dataset_cls.resources = [(name, "0" * 32) for name, _ in dataset_cls.resources]
    with pytest.raises(
        RuntimeError, match="checksum mismatch for https://mirror.test/t10k-images-idx3-ubyte.gz"
    ):
        dataset_cls(tmp_path, train=False, download=True)
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def test_offline_error_names_the_files_and_the_folder(tmp_path, served):
    # port 9 (discard) on the loopback interface refuses at once: no network is involved
    dataset_cls = _mnist_class(served, ["http://127.0.0.1:9/"])
    with pytest.raises(RuntimeError) as info:
        dataset_cls(tmp_path, train=False, download=True)
    message = str(info.value)
    for name in served:
        assert name in message
    assert str(tmp_path / "MNIST" / "raw") in message and "by hand" in message
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def test_download_url_is_atomic_on_interruption(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise ConnectionResetError("connection reset")

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout=None: Broken(b""))
    with pytest.raises(ConnectionResetError):
        download_url("https://mirror.test/file.gz", tmp_path / "file.gz")
    assert list(tmp_path.iterdir()) == []


def test_downloaded_gzip_matches_what_was_served(tmp_path, served, fake_urlopen):
    download_url("https://mirror.test/t10k-labels-idx1-ubyte.gz", tmp_path / "labels.gz")
    assert gzip.decompress((tmp_path / "labels.gz").read_bytes())[-3:] == b"\x01\x02\x03"
    assert read_idx(tmp_path / "labels.gz").tolist() == [1, 2, 3]


def test_loads_read_the_uncompressed_copies(tmp_path, served, fake_urlopen):
    dataset_cls = _mnist_class(served, ["https://mirror.test/"])
    dataset_cls(tmp_path, train=False, download=True)
    raw = tmp_path / "MNIST" / "raw"
    for name in served:
        (raw / name).unlink()
    ds = dataset_cls(tmp_path, train=False)
    assert ds.targets.tolist() == [1, 2, 3] and (ds.data.numpy() == 7).all()


def test_files_found_in_place_are_left_alone(tmp_path, served, fake_urlopen):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in served.items():
        (raw / name).write_bytes(data)
    ds = _mnist_class(served, ["https://mirror.test/"])(tmp_path, train=False, download=True)
    assert ds.targets.tolist() == [1, 2, 3]
    assert fake_urlopen == [] and sorted(p.name for p in raw.iterdir()) == sorted(served)


def test_a_copy_that_cannot_be_written_leaves_the_gz_to_be_read(tmp_path, served, fake_urlopen, monkeypatch):
    def disk_full(source, out, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(download_module.shutil, "copyfileobj", disk_full)
    ds = _mnist_class(served, ["https://mirror.test/"])(tmp_path, train=False, download=True)
    assert ds.targets.tolist() == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(served)


def test_corrupt_gzip_gets_no_copy(tmp_path):
    packed = tmp_path / "labels.gz"
    packed.write_bytes(b"\x1f\x8b not really gzip")
    assert extract_gzip(packed) is None
    assert [p.name for p in tmp_path.iterdir()] == [packed.name]
    with pytest.raises(ValueError, match="labels.gz: corrupt or truncated gzip data"):
        read_idx(packed)  # the read is what reports it


def test_interrupted_extraction_leaves_nothing(tmp_path, served, monkeypatch):
    folder = tmp_path / "raw"
    folder.mkdir()
    packed = folder / "t10k-labels-idx1-ubyte.gz"
    packed.write_bytes(served[packed.name])

    def interrupted(source, out, length):
        out.write(source.read(4))
        raise KeyboardInterrupt

    monkeypatch.setattr(download_module.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_gzip(packed)
    assert [p.name for p in folder.iterdir()] == [packed.name]
