import multiprocessing

import numpy as np
import pytest
from PIL import Image

from dltool.datasets import ImageFolder
from dltool.datasets import transforms as T
from dltool.engine.utils.data import DataLoader


def _image(value, size=(6, 4)):
    array = np.zeros((size[1], size[0], 3), np.uint8)
    array[..., 0] = value
    return Image.fromarray(array)


@pytest.fixture
def folder(tmp_path):
    """cat/ (2 PNGs, a JPEG in a subfolder, a text file), dog/ (a BMP and a PNG)."""
    (tmp_path / "cat" / "more").mkdir(parents=True)
    (tmp_path / "dog").mkdir()
    _image(10).save(tmp_path / "cat" / "b.png")
    _image(20).save(tmp_path / "cat" / "a.png")
    _image(30).save(tmp_path / "cat" / "more" / "c.jpg", quality=100)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    _image(40).save(tmp_path / "dog" / "d.bmp")
    Image.fromarray(np.full((4, 6), 50, np.uint8)).save(tmp_path / "dog" / "e.png")  # grayscale
    return tmp_path


def test_classes_samples_and_skipped_files(folder):
    ds = ImageFolder(folder)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    names = [(p.split("/")[-1], c) for p, c in ds.samples]
    assert names == [("a.png", 0), ("b.png", 0), ("c.jpg", 0), ("d.bmp", 1), ("e.png", 1)]
    assert ds.targets == [0, 0, 0, 1, 1] and ds.imgs == ds.samples and len(ds) == 5


def test_images_decode_as_rgb(folder):
    ds = ImageFolder(folder)
    image, label = ds[0]
    assert image.mode == "RGB" and image.size == (6, 4) and label == 0
    assert np.asarray(image)[0, 0].tolist() == [20, 0, 0]
    assert abs(int(np.asarray(ds[2][0])[0, 0, 0]) - 30) <= 2  # JPEG
    assert np.asarray(ds[3][0])[0, 0].tolist() == [40, 0, 0]  # BMP
    assert np.asarray(ds[4][0])[0, 0].tolist() == [50, 50, 50]  # grayscale PNG, as RGB


def test_transform_and_loader_with_workers(folder):
    ds = ImageFolder(folder, transform=T.ToTensor(), target_transform=lambda y: 10 + y)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert [tuple(x.shape) for x, _ in batches] == [(2, 3, 4, 6), (2, 3, 4, 6), (1, 3, 4, 6)]
    assert sum((y.tolist() for _, y in batches), []) == [10, 10, 10, 11, 11]
    assert multiprocessing.active_children() == []


def test_unreadable_image_error_names_the_file(folder):
    broken = folder / "dog" / "f.png"
    broken.write_bytes((folder / "cat" / "a.png").read_bytes()[:40])
    ds = ImageFolder(folder)
    with pytest.raises(OSError, match="cannot read image file") as info:
        ds[ds.samples.index((str(broken), 1))]
    assert str(broken) in str(info.value)


def test_missing_classes_and_empty_classes(tmp_path):
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        ImageFolder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes empty"):
        ImageFolder(tmp_path)
    assert len(ImageFolder(tmp_path, allow_empty=True)) == 0
