"""Workload: the DataLoader. One shuffled epoch of Fashion-MNIST at batch 128 (ToTensor + Normalize).

dltool's loader takes the fast path (whole batches by fancy indexing); the baselines are a
hand-written numpy loop doing the same indexing and arithmetic, and PyTorch's DataLoader over
in-memory tensors. The extras give that epoch as a fraction of an MLP epoch, and the speed-up of
``num_workers=2`` over ``num_workers=0`` on an ImageFolder of generated PNGs.

``python -m benchmarks.data_loader`` prints the figures on their own.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import dltool.engine as dl
from benchmarks.common import Settings, timed, torch
from dltool.datasets import FashionMNIST, ImageFolder, default_root
from dltool.datasets import transforms as T
from dltool.engine.utils.data import DataLoader, Subset

TITLE = "DataLoader epoch (Fashion-MNIST, batch 128, shuffled)"
BATCH = 128
MEAN, STD = 0.2860, 0.3530
TINY = 2048


def fashion_train() -> FashionMNIST:
    """The training split as a trainer reads it: ToTensor + Normalize."""
    return FashionMNIST(
        default_root(), train=True, transform=T.Compose([T.ToTensor(), T.Normalize((MEAN,), (STD,))])
    )


def fashion_loader(dataset: FashionMNIST, batch_size: int = BATCH, limit: int | None = None) -> DataLoader:
    """Shuffled batches of ``dataset`` (its first ``limit`` samples)."""
    return DataLoader(
        dataset if limit is None else Subset(dataset, range(limit)), batch_size=batch_size, shuffle=True
    )


def epoch_seconds(loader: DataLoader) -> float:
    """Seconds to draw every batch of one epoch from ``loader``."""

    def drain() -> None:
        for _ in loader:
            pass

    return timed(drain)


def numpy_epoch(images: np.ndarray, batch_size: int = BATCH) -> None:
    """The same epoch written by hand: permute, gather uint8 rows, scale and normalize."""
    order = np.random.default_rng().permutation(len(images))
    for start in range(0, len(order), batch_size):
        batch = images[order[start : start + batch_size]]
        x = batch[:, None].astype(np.float32)
        x /= np.float32(255)
        x -= np.float32(MEAN)
        x /= np.float32(STD)


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    limit = TINY if settings.tiny else None
    dataset = fashion_train()
    loader = fashion_loader(dataset, limit=limit)
    images = dataset.data.numpy()[:limit]
    result = {"dltool": lambda: epoch_seconds(loader), "numpy": lambda: timed(lambda: numpy_epoch(images))}
    if torch is not None:
        x = torch.from_numpy((images[:, None] / np.float32(255) - np.float32(MEAN)) / np.float32(STD))
        y = torch.from_numpy(dataset.targets.numpy()[:limit])
        torch_loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True
        )
        result["torch"] = lambda: epoch_seconds(torch_loader)
    return result


def mlp_epoch_seconds(batch_size: int = BATCH, limit: int | None = None) -> float:
    """One SGD epoch of the MLP 784-256-10 with batches sliced from whole tensors (no loader)."""
    from benchmarks.models import mlp, train_epoch

    dataset = FashionMNIST(default_root(), train=True)
    images = (
        dataset.data.numpy()[:limit].reshape(-1, 784) / np.float32(255) - np.float32(MEAN)
    ) / np.float32(STD)
    x, y = dl.from_numpy(images), dl.from_numpy(dataset.targets.numpy()[:limit])
    order = dl.randperm(len(images))
    model = mlp(dl)
    optimizer = dl.optim.SGD(model.parameters(), lr=0.1)
    return timed(lambda: train_epoch(dl, model, optimizer, x, y, order, batch_size))


def write_png_folder(root: Path, num_images: int, size: int = 64, num_classes: int = 10) -> None:
    """``num_images`` random RGB PNGs of ``size`` pixels, spread over ``num_classes`` folders."""
    rng = np.random.default_rng(0)
    for i in range(num_images):
        folder = root / f"class{i % num_classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _timed_epoch(loader: DataLoader) -> tuple[float, float, float]:
    """Wall seconds of one epoch, and the CPU seconds of the main process and of its workers."""
    main, workers = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    wall = epoch_seconds(loader)  # workers are joined at the epoch's end, so their CPU counts
    return wall, _cpu_seconds(resource.RUSAGE_SELF) - main, _cpu_seconds(resource.RUSAGE_CHILDREN) - workers


def worker_speedup(num_images: int = 3000, num_workers: int = 2, repeat: int = 3) -> dict[str, float]:
    """Median epoch figures over an ImageFolder of PNGs with 0 and ``num_workers`` workers.

    Returns wall seconds, main-process CPU seconds and worker CPU seconds for each, and the
    wall-clock speed-up. On a machine whose cores are busy the speed-up shrinks; the main
    process's CPU time still shows the work the workers take off the training loop.
    """
    transform = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.5,) * 3, (0.25,) * 3)])
    with tempfile.TemporaryDirectory() as tmp:
        write_png_folder(Path(tmp), num_images)
        dataset = ImageFolder(tmp, transform=transform)
        loaders = {
            n: DataLoader(dataset, batch_size=64, shuffle=True, num_workers=n) for n in (0, num_workers)
        }
        samples: dict[int, list[tuple[float, float, float]]] = {n: [] for n in loaders}
        for _ in range(repeat):
            for n, loader in loaders.items():
                samples[n].append(_timed_epoch(loader))
    result = {}
    for n, runs in samples.items():
        for name, values in zip(("wall", "main cpu", "worker cpu"), zip(*runs, strict=True), strict=True):
            result[f"workers={n} {name} s"] = statistics.median(values)
    result["speedup"] = result["workers=0 wall s"] / result[f"workers={num_workers} wall s"]
    return result


def share_of_mlp_epoch(loader_seconds: float, mlp_seconds: float) -> str:
    """The loader epoch as a share of an MLP epoch (measured; the goal is the ratio to the numpy floor)."""
    return f"{loader_seconds / mlp_seconds:.1%} (MLP epoch {mlp_seconds:.3f} s)"


def extra(medians: dict[str, float], settings: Settings) -> dict[str, str]:
    """The loader epoch as a fraction of an MLP epoch, and the worker speed-up on PNG folders."""
    limit = TINY if settings.tiny else None
    mlp = statistics.median(mlp_epoch_seconds(limit=limit) for _ in range(3))
    speed = worker_speedup(num_images=300 if settings.tiny else 3000)
    return {
        "loader epoch / MLP epoch (batch 128)": share_of_mlp_epoch(medians["dltool"], mlp),
        "ImageFolder of PNGs, num_workers=2 vs 0": (
            f"{speed['speedup']:.2f}x wall ({speed['workers=0 wall s']:.2f} s -> {speed['workers=2 wall s']:.2f} s "
            f"per epoch); main-process CPU {speed['workers=0 main cpu s']:.2f} s -> "
            f"{speed['workers=2 main cpu s']:.3f} s, worker CPU {speed['workers=2 worker cpu s']:.2f} s"
        ),
    }


if __name__ == "__main__":
    settings = Settings()
    runs = {name: statistics.median(run() for _ in range(3)) for name, run in cases(settings).items()}
    print(TITLE)
    for name, seconds in runs.items():
        print(f"  {name:<8} {seconds:.4f} s/epoch")
    for key, value in extra(runs, settings).items():
        print(f"  {key}: {value}")
