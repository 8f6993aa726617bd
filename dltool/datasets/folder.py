"""Image folders: one subfolder per class, images decoded with pillow (torchvision's ImageFolder)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PIL import Image

from dltool.engine.utils.data import Dataset

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def pil_loader(path: str) -> Image.Image:
    """The image at ``path`` as RGB.

    Raises:
        OSError: pillow can't decode the file (not an image, truncated, ...); the message names it.
    """
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise OSError(f"cannot read image file {path}: {error}") from error


def find_classes(directory: str) -> tuple[list[str], dict[str, int]]:
    """The sorted subfolder names of ``directory`` and their indices."""
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
    return classes, {name: i for i, name in enumerate(classes)}


def make_dataset(
    directory: str,
    class_to_idx: dict[str, int],
    extensions: tuple[str, ...] | None = None,
    is_valid_file: Callable[[str], bool] | None = None,
    allow_empty: bool = False,
) -> list[tuple[str, int]]:
    """``(path, class_index)`` for every valid file under each class folder, in sorted order."""
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("Both extensions and is_valid_file cannot be None or not None at the same time")
    if is_valid_file is None:
        suffixes = tuple(ext.lower() for ext in extensions)  # type: ignore[union-attr]

        def is_valid_file(path: str) -> bool:
            return path.lower().endswith(suffixes)

    samples, empty = [], []
    for name, index in sorted(class_to_idx.items()):
        found = [
            (os.path.join(folder, filename), index)
            for folder, _, filenames in sorted(os.walk(os.path.join(directory, name), followlinks=True))
            for filename in sorted(filenames)
            if is_valid_file(os.path.join(folder, filename))
        ]
        if not found:
            empty.append(name)
        samples.extend(found)
    if empty and not allow_empty:
        supported = f" Supported extensions are: {', '.join(extensions)}" if extensions else ""
        raise FileNotFoundError(f"Found no valid file for the classes {', '.join(empty)}.{supported}")
    return samples


class DatasetFolder(Dataset):
    """Samples ``(loader(path), class_index)`` from ``root/<class>/**/<file>``."""

    def __init__(
        self,
        root: str | os.PathLike,
        loader: Callable[[str], Any],
        extensions: tuple[str, ...] | None = None,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> None:
        self.root = os.path.expanduser(os.fspath(root))
        self.loader = loader
        self.extensions = extensions
        self.transform = transform
        self.target_transform = target_transform
        self.classes, self.class_to_idx = find_classes(self.root)
        self.samples = make_dataset(self.root, self.class_to_idx, extensions, is_valid_file, allow_empty)
        self.targets = [target for _, target in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def __len__(self) -> int:
        return len(self.samples)


class ImageFolder(DatasetFolder):
    """Images in one subfolder per class (PNG, JPEG, BMP, ...); other files are skipped.

    Example:
        >>> from dltool.datasets.transforms import ToTensor
        >>> for path in ["pets/cat/1.png", "pets/dog/2.jpg"]:
        ...     os.makedirs(os.path.dirname(path), exist_ok=True)
        ...     Image.new("RGB", (32, 32)).save(path)
        >>> ds = ImageFolder("pets", transform=ToTensor())
        >>> ds.classes, ds.class_to_idx
        (['cat', 'dog'], {'cat': 0, 'dog': 1})
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        loader: Callable[[str], Any] = pil_loader,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> None:
        super().__init__(
            root,
            loader,
            IMG_EXTENSIONS if is_valid_file is None else None,
            transform=transform,
            target_transform=target_transform,
            is_valid_file=is_valid_file,
            allow_empty=allow_empty,
        )
        self.imgs = self.samples
