"""MNIST and Fashion-MNIST, read from the IDX files in ``<root>/<Name>/raw/`` as torchvision lays them out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dltool.datasets.download import download_resources, extract_gzip
from dltool.datasets.idx import read_idx
from dltool.datasets.transforms import batch_transform
from dltool.engine import from_numpy
from dltool.engine.tensor import Tensor
from dltool.engine.utils.data import BatchedSamples, Dataset

_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images of 28 x 28 pixels.

    As in torchvision, a sample is ``(image, target)`` with a PIL image (before ``transform``) and
    an int label; ``data`` is the uint8 ``N x 28 x 28`` tensor and ``targets`` the int64 labels.
    The files may be gzipped or not. When ``transform`` has a batch form (``ToTensor``,
    ``Normalize`` or a ``Compose`` of them) and there is no ``target_transform``,
    ``__getitems__`` transforms a whole batch at once; its targets are then tensors, not ints.

    Args:
        root: the folder holding ``<Name>/raw/``.
        train: the training split, else the test split.
        transform: applied to each PIL image.
        target_transform: applied to each label.
        download: fetch missing files from the mirrors, checking their md5.

    Example:
        >>> from dltool.datasets import default_root
        >>> from dltool.datasets.transforms import ToTensor
        >>> ds = FashionMNIST(default_root(), train=False, transform=ToTensor())
        >>> image, label = ds[0]
        >>> image.shape, len(ds), ds.classes[:2]
        ((1, 28, 28), 10000, ['T-shirt/top', 'Trouser'])
    """

    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ]
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes = [
        "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
        "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
    ]  # fmt: skip

    def __init__(
        self,
        root: str | os.PathLike,
        train: bool = True,
        transform: Any = None,
        target_transform: Any = None,
        download: bool = False,
    ) -> None:
        self.root = os.path.expanduser(os.fspath(root))
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if download:
            self.download()
        self.data, self.targets = self._load_data()

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def _split_files(self) -> list[str]:
        prefix = "train" if self.train else "t10k"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def _find(self, stem: str) -> Path | None:
        """The file for ``stem`` in the raw folder, uncompressed or gzipped."""
        for name in (stem, f"{stem}.gz"):
            path = Path(self.raw_folder, name)
            if path.is_file():
                return path
        return None

    def _load_data(self) -> tuple[Tensor, Tensor]:
        paths = [self._find(stem) for stem in self._split_files()]
        missing = [
            f"{stem}.gz" for stem, path in zip(self._split_files(), paths, strict=True) if path is None
        ]
        if missing:
            raise RuntimeError(
                f"{type(self).__name__} not found: missing {', '.join(missing)} in {self.raw_folder}. "
                f"Pass download=True to fetch them, or put the files there (from {self.mirrors[0]})"
            )
        images_path, labels_path = paths
        images = read_idx(images_path, magic=_IMAGES_MAGIC)  # type: ignore[arg-type]
        labels = read_idx(labels_path, magic=_LABELS_MAGIC)  # type: ignore[arg-type]
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
            )
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(
                f"{labels_path}: label {labels.max()} is out of range for {len(self.classes)} classes"
            )
        return from_numpy(images), from_numpy(labels.astype(np.int64))

    def download(self) -> None:
        """Fetch the files that are missing, from the first mirror that serves them, and keep an
        uncompressed copy of each beside its ``.gz`` (as torchvision does), which later loads read.

        Files already in the folder are never touched: it may be shared, or read-only.
        """
        wanted = [(name, md5) for name, md5 in self.resources if self._find(name.removesuffix(".gz")) is None]
        if wanted:
            download_resources(type(self).__name__, self.mirrors, wanted, self.raw_folder)
            for name, _ in wanted:
                extract_gzip(Path(self.raw_folder, name))  # None (no copy) leaves the .gz to be read

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image: Any = Image.fromarray(self.data.numpy()[index])
        target: Any = int(self.targets.numpy()[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __getitems__(self, indices: list[int]) -> Any:
        """A batch in one step when the transform has a batch form, else the samples one by one."""
        images_fn = batch_transform(self.transform) if self.target_transform is None else None
        if images_fn is None:
            return [self[i] for i in indices]
        index = np.asarray(indices, dtype=np.int64)
        return BatchedSamples([images_fn(self.data.numpy()[index]), from_numpy(self.targets.numpy()[index])])

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    Root location: {self.root}\n    Split: {split}\n    Transform: {self.transform}"
        )


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28 x 28 grayscale images of 10 kinds of clothing, as ``MNIST``."""

    mirrors = [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
