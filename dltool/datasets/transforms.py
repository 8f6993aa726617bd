"""Image transforms with torchvision's names, arguments and defaults, on pillow and numpy.

Geometric transforms take PIL images (crops, flips and padding also take ``(..., H, W)`` tensors);
``ToTensor`` turns an image into a CHW float tensor in [0, 1] and ``Normalize`` works on tensors.
Random transforms draw from the engine's default generator, so ``dltool.engine.manual_seed`` makes
them reproducible; each also takes a keyword-only ``generator`` (dltool's addition).

``ToTensor``, ``Normalize`` and a ``Compose`` of them also have a batch form (``batch_transform``),
which in-memory datasets use to transform a whole batch at once.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import numpy as np
from PIL import Image

from dltool.engine import backend, dtypes, from_numpy
from dltool.engine.tensor import Tensor

# ---------------------------------------------------------------- helpers


class InterpolationMode(Enum):
    """How to sample pixels when resizing or rotating."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"

    @property
    def _pil(self) -> Image.Resampling:
        return Image.Resampling[self.name]


def _size_pair(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        return int(size), int(size)  # type: ignore[call-overload]
    if isinstance(size, Sequence) and len(size) == 1:
        return int(size[0]), int(size[0])
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}.")
    return int(size[0]), int(size[1])


def _height_width(img: Any) -> tuple[int, int]:
    if isinstance(img, Image.Image):
        return img.height, img.width
    if isinstance(img, Tensor):
        return img.shape[-2], img.shape[-1]
    raise TypeError(f"img should be PIL Image or Tensor. Got {type(img)}")


def _require_pil(img: Any, name: str) -> Image.Image:
    if not isinstance(img, Image.Image):
        raise TypeError(f"{name} takes a PIL Image in dltool (apply it before ToTensor), got {type(img)}")
    return img


def _pil_fill(fill: Any, img: Image.Image) -> Any:
    """A number repeated per band for a multi-band image, as pillow expects a color there."""
    if isinstance(fill, numbers.Number) and len(img.getbands()) > 1:
        return tuple([int(fill)] * len(img.getbands()))  # type: ignore[call-overload]
    return fill


def _ltrb(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """torchvision's padding forms: all sides, (left/right, top/bottom) or (left, top, right, bottom)."""
    if isinstance(padding, numbers.Number):
        return (int(padding),) * 4  # type: ignore[call-overload, return-value]
    if len(padding) == 1:
        return (int(padding[0]),) * 4  # type: ignore[return-value]
    if len(padding) == 2:
        return int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1])
    if len(padding) == 4:
        return int(padding[0]), int(padding[1]), int(padding[2]), int(padding[3])
    raise ValueError(
        f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} element tuple"
    )


def pad(img: Any, padding: int | Sequence[int], fill: Any = 0, padding_mode: str = "constant") -> Any:
    """Pad the borders of a PIL image or an ``(..., H, W)`` tensor."""
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    left, top, right, bottom = _ltrb(padding)
    is_pil = isinstance(img, Image.Image)
    array = np.asarray(img) if is_pil else img.numpy()
    spatial = (0, 1) if is_pil else (array.ndim - 2, array.ndim - 1)
    widths = [(0, 0)] * array.ndim
    widths[spatial[0]], widths[spatial[1]] = (top, bottom), (left, right)
    if padding_mode == "constant":
        shape = [n + a + b for n, (a, b) in zip(array.shape, widths, strict=True)]
        out = np.empty(shape, dtype=array.dtype)
        out[...] = fill
        inner = [slice(a, a + n) for n, (a, _) in zip(array.shape, widths, strict=True)]
        out[tuple(inner)] = array
    else:
        out = np.pad(array, widths, mode=padding_mode)
    return Image.fromarray(out) if is_pil else Tensor(out)


def crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    """The ``height x width`` region at ``(top, left)`` of a PIL image or an ``(..., H, W)`` tensor."""
    if isinstance(img, Image.Image):
        return img.crop((left, top, left + width, top + height))
    return img[..., top : top + height, left : left + width]


def _flip(img: Any, horizontal: bool) -> Any:
    if isinstance(img, Image.Image):
        return img.transpose(
            Image.Transpose.FLIP_LEFT_RIGHT if horizontal else Image.Transpose.FLIP_TOP_BOTTOM
        )
    return img.flip(-1 if horizontal else -2)


# ---------------------------------------------------------------- composition


class Compose:
    """Apply ``transforms`` one after another."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for transform in self.transforms:
            img = transform(img)
        return img

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({lines}\n)"


class Lambda:
    """A user function as a transform."""

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)


def batch_transform(transform: Callable | None) -> Callable[[np.ndarray], Any] | None:
    """``transform`` as one call on a stack of ``N x H x W (x C)`` uint8 images, or None.

    A transform has a batch form when it defines ``batched(images)`` (``ToTensor``, ``Normalize``)
    or is a ``Compose`` of such; the result equals stacking the per-image results. ``images`` is
    never written to; the steps after the first may work in place on what the step before made.
    """
    if isinstance(transform, Compose):
        parts = [batch_transform(t) for t in transform.transforms]
        if any(part is None for part in parts):
            return None

        def composed(images: Any) -> Any:
            for part in parts:
                images = part(images)  # type: ignore[misc]
            return images

        return composed
    return getattr(transform, "batched", None)


# ---------------------------------------------------------------- conversion


class ToTensor:
    """A PIL image or ``H x W (x C)`` ndarray to a ``C x H x W`` tensor; uint8 is scaled to [0, 1].

    Example:
        >>> ToTensor()(np.array([[0, 255]], dtype=np.uint8))
        tensor([[[0., 1.]]])
    """

    def __call__(self, pic: Any) -> Tensor:
        if isinstance(pic, Image.Image):
            array = np.array(
                pic, dtype={"I": np.int32, "I;16": np.int16, "F": np.float32}.get(pic.mode, np.uint8)
            )
            if pic.mode == "1":
                array = array * np.uint8(255)
            array = array.reshape(pic.height, pic.width, len(pic.getbands()))
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
            array = pic[:, :, None] if pic.ndim == 2 else pic
        else:
            raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
        return self.batched(array[None])[0]

    def batched(self, images: np.ndarray) -> Tensor:
        """``N x H x W (x C)`` images to one ``N x C x H x W`` tensor."""
        chw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        if chw.dtype == np.uint8:  # cast, then divide in place: torchvision's order, quicker
            array = chw.astype(dtypes.get_default_dtype(), order="C")
            array /= array.dtype.type(255)
            return from_numpy(array)
        return from_numpy(np.array(chw, order="C"))  # a copy: later batch steps work in place

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean) / std`` per channel of a float ``(..., C, H, W)`` tensor."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.inplace = inplace
        self._stats: tuple[Any, np.ndarray, np.ndarray] | None = None  # (key, mean, std)

    def __call__(self, tensor: Tensor) -> Tensor:
        return self._normalize(tensor, self.inplace)

    def batched(self, tensor: Tensor) -> Tensor:
        """The batch form, in place: in a batch pipeline its input is the fresh tensor that the
        step before it made (``ToTensor``; a first step would get uint8 images and refuse them)."""
        return self._normalize(tensor, inplace=True)

    def _normalize(self, tensor: Tensor, inplace: bool) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"img should be Tensor Image. Got {type(tensor)}")
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ValueError(
                f"Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = {tensor.shape}"
            )
        array = tensor.numpy()
        mean, std = self._statistics(array.dtype)
        out = np.subtract(array, mean, out=array if inplace else None)
        out /= std
        return tensor if inplace else from_numpy(out)

    def _statistics(self, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std as ``(C, 1, 1)`` arrays of ``dtype``, checked once and kept while they
        stay the same (a loader normalizes every batch with them)."""
        key = (dtype, np.asarray(self.mean).tolist(), np.asarray(self.std).tolist())  # numbers too
        if self._stats is None or self._stats[0] != key:
            mean = np.asarray(self.mean, dtype=dtype).reshape(-1, 1, 1)
            std = np.asarray(self.std, dtype=dtype).reshape(-1, 1, 1)
            if (std == 0).any():
                raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to division by zero.")
            self._stats = (key, mean, std)
        return self._stats[1], self._stats[2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Grayscale:
    """Convert to grayscale with ITU-R 601-2 luma weights, as 1 or 3 identical channels."""

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3):
            raise ValueError("num_output_channels should be either 1 or 3")
        self.num_output_channels = num_output_channels

    def __call__(self, img: Any) -> Any:
        if isinstance(img, Image.Image):
            gray = img.convert("L")
            return gray if self.num_output_channels == 1 else Image.merge("RGB", (gray, gray, gray))
        if img.shape[-3] not in (1, 3):
            raise TypeError(
                f"Input image tensor permitted channel values are [1, 3], but found {img.shape[-3]}"
            )
        array = img.numpy()
        if array.shape[-3] == 3:
            weights = np.asarray([0.2989, 0.587, 0.114], dtype=np.float32).reshape(3, 1, 1)
            array = (array * weights).sum(axis=-3, keepdims=True).astype(array.dtype)
        reps = [1] * (array.ndim - 3) + [self.num_output_channels, 1, 1]
        return Tensor(np.tile(array, reps))


# ---------------------------------------------------------------- geometry


class Resize:
    """Resize a PIL image to ``(h, w)``, or its smaller edge to ``size`` keeping the aspect ratio."""

    def __init__(
        self,
        size: int | Sequence[int],
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
        max_size: int | None = None,
        antialias: bool | None = True,
    ) -> None:
        if not isinstance(size, (int, Sequence)):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        if isinstance(size, Sequence) and len(size) not in (1, 2):
            raise ValueError("If size is a sequence, it should have 1 or 2 values")
        self.size = size
        self.interpolation = interpolation
        self.max_size = max_size
        self.antialias = antialias

    def _output_size(self, height: int, width: int) -> tuple[int, int]:
        if isinstance(self.size, Sequence) and len(self.size) == 2:
            if self.max_size is not None:
                raise ValueError(
                    "max_size should only be passed if size specifies the length of the smaller edge, "
                    "i.e. size should be an int or a sequence of length 1 in torchscript mode."
                )
            return int(self.size[0]), int(self.size[1])
        requested = int(self.size if isinstance(self.size, int) else self.size[0])
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = requested, int(requested * long / short)
        if self.max_size is not None:
            if self.max_size <= requested:
                raise ValueError(
                    f"max_size = {self.max_size} must be strictly greater than the requested size for "
                    f"the smaller edge size = {self.size}"
                )
            if new_long > self.max_size:
                new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def __call__(self, img: Image.Image) -> Image.Image:
        img = _require_pil(img, "Resize")
        height, width = self._output_size(img.height, img.width)
        return img.resize((width, height), self.interpolation._pil)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value})"


class CenterCrop:
    """The central ``size`` region; an image smaller than that is padded with zeros first."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size_pair(size)

    def __call__(self, img: Any) -> Any:
        crop_height, crop_width = self.size
        height, width = _height_width(img)
        if crop_height > height or crop_width > width:
            pad_w, pad_h = max(crop_width - width, 0), max(crop_height - height, 0)
            img = pad(img, (pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2))
            height, width = _height_width(img)
        top = int(round((height - crop_height) / 2.0))
        left = int(round((width - crop_width) / 2.0))
        return crop(img, top, left, crop_height, crop_width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class RandomCrop:
    """A ``size`` region at a random place, after optional ``padding`` (and padding up to ``size``)."""

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        pad_if_needed: bool = False,
        fill: Any = 0,
        padding_mode: str = "constant",
        *,
        generator: backend.Generator | None = None,
    ) -> None:
        self.size = _size_pair(size)
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode
        self.generator = generator

    def __call__(self, img: Any) -> Any:
        if self.padding is not None:
            img = pad(img, self.padding, self.fill, self.padding_mode)
        crop_height, crop_width = self.size
        height, width = _height_width(img)
        if self.pad_if_needed and (width < crop_width or height < crop_height):
            extra = (max(crop_width - width, 0), max(crop_height - height, 0))
            img = pad(img, extra, self.fill, self.padding_mode)
            height, width = _height_width(img)
        if height < crop_height or width < crop_width:
            raise ValueError(
                f"Required crop size {self.size} is larger than input image size {(height, width)}"
            )
        rng = backend.rng(self.generator)
        top = int(rng.integers(0, height - crop_height + 1))
        left = int(rng.integers(0, width - crop_width + 1))
        return crop(img, top, left, crop_height, crop_width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    _horizontal = True

    def __init__(self, p: float = 0.5, *, generator: backend.Generator | None = None) -> None:
        self.p = p
        self.generator = generator

    def __call__(self, img: Any) -> Any:
        if backend.rng(self.generator).random() < self.p:
            return _flip(img, self._horizontal)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability ``p``."""

    _horizontal = False


class RandomRotation:
    """Rotate a PIL image by an angle drawn uniformly from ``degrees`` (counter-clockwise)."""

    def __init__(
        self,
        degrees: float | Sequence[float],
        interpolation: InterpolationMode = InterpolationMode.NEAREST,
        expand: bool = False,
        center: Sequence[int] | None = None,
        fill: Any = 0,
        *,
        generator: backend.Generator | None = None,
    ) -> None:
        if isinstance(degrees, numbers.Number):
            if degrees < 0:  # type: ignore[operator]
                raise ValueError("If degrees is a single number, it must be positive.")
            degrees = (-float(degrees), float(degrees))  # type: ignore[arg-type]
        elif len(degrees) != 2:
            raise ValueError("If degrees is a sequence, it must be of len 2.")
        self.degrees = [float(d) for d in degrees]
        self.interpolation = interpolation
        self.expand = expand
        self.center = center
        self.fill = fill
        self.generator = generator

    def __call__(self, img: Image.Image) -> Image.Image:
        img = _require_pil(img, "RandomRotation")
        angle = float(backend.rng(self.generator).uniform(self.degrees[0], self.degrees[1]))
        return img.rotate(
            angle, self.interpolation._pil, self.expand, self.center, fillcolor=_pil_fill(self.fill, img)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(degrees={self.degrees}, interpolation={self.interpolation.value})"
