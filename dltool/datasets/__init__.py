"""Datasets on disk: MNIST and Fashion-MNIST (IDX files), image folders, text corpora, and pillow transforms."""

from dltool.datasets import transforms, utils
from dltool.datasets.download import default_root
from dltool.datasets.folder import DatasetFolder, ImageFolder
from dltool.datasets.idx import read_idx, write_idx
from dltool.datasets.mnist import MNIST, FashionMNIST
from dltool.datasets.text import TextCorpus

__all__ = [
    "MNIST",
    "DatasetFolder",
    "FashionMNIST",
    "ImageFolder",
    "TextCorpus",
    "default_root",
    "read_idx",
    "transforms",
    "utils",
    "write_idx",
]
