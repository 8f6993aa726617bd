"""Build the run's objects from the composed config with ``hydra.utils.instantiate``.

Each builder turns whatever goes wrong while building one component into a ``ConfigError`` that
names the component and its ``_target_``, so ``optimizer.lr=-1`` reads as
``optimizer (dltool.engine.optim.Adam): Invalid learning rate: -1.0``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import dltool.engine as dl
from dltool.engine.utils.data import DataLoader, Dataset, Subset, random_split
from dltool.training.checkpoint import capture_rng, restore_rng
from dltool.training.errors import ConfigError, DltoolError
from dltool.training.options import TrainerOptions

# Keys of a scheduler config that the trainer reads itself instead of passing to the class.
SCHEDULER_KEYS = ("interval",)


def _message(ex: BaseException) -> str:
    """The innermost cause of ``ex`` as one line (Hydra wraps errors of instantiated classes)."""
    while ex.__cause__ is not None:
        ex = ex.__cause__
    text = " ".join(line.strip() for line in str(ex).splitlines() if line.strip())
    return text or type(ex).__name__


@contextlib.contextmanager
def building(what: str, node: Any = None) -> Iterator[None]:
    """Re-raise any error inside as ``ConfigError("<what> (<target>): <message>")``."""
    try:
        yield
    except DltoolError:
        raise
    except Exception as ex:
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        where = f"{what} ({target})" if target else what
        raise ConfigError(f"{where}: {_message(ex)}") from ex


def _check_numbers(what: str, node: DictConfig) -> None:
    """Catch ``optimizer.lr=abc``-style mistakes by the type of the parameter's default value."""
    module, _, name = str(node._target_).rpartition(".")
    try:
        signature = inspect.signature(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, ValueError, TypeError):
        return  # instantiate reports an unknown target
    for key, value in node.items():
        param = signature.parameters.get(str(key))
        if param is None or isinstance(param.default, bool) or isinstance(value, (bool, type(None))):
            continue
        if isinstance(param.default, (int, float)) and not isinstance(value, (int, float)):
            raise ConfigError(f"{what}.{key}: expected a number, got {value!r}")


def build(what: str, node: DictConfig, *args: Any, **kwargs: Any) -> Any:
    """``instantiate(node, *args, **kwargs)`` with plain-Python containers and clear errors."""
    with building(what, node):
        _check_numbers(what, node)
        obj = instantiate(node, _convert_="all")
        return obj(*args, **kwargs) if args or kwargs else obj


# ---------------------------------------------------------------- data


@dataclass
class Data:
    """The splits and their loaders. ``val`` is carved from the training set (None without one)."""

    task: str
    classes: list[str]
    train: Dataset
    val: Dataset | None
    test: Dataset
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader


def build_datasets(cfg: DictConfig, options: TrainerOptions) -> tuple[Dataset, Dataset | None, Dataset]:
    """The train, validation and test datasets (validation split seeded by ``trainer.seed``)."""
    full = build("dataset.train", cfg.dataset.train)
    test = build("dataset.test", cfg.dataset.test)
    if options.overfit_batches:
        subset = Subset(full, list(range(min(len(full), options.overfit_batches * options.batch_size))))
        return subset, subset, test
    size = options.val_split if isinstance(options.val_split, int) else round(options.val_split * len(full))
    if size == 0:
        return full, None, test
    if size >= len(full):
        raise ConfigError(
            f"trainer.val_split: {size} validation samples leave none of {len(full)} to train on"
        )
    generator = dl.Generator().manual_seed(options.seed)
    train, val = random_split(full, [len(full) - size, size], generator=generator)
    return train, val, test


def build_data(cfg: DictConfig, options: TrainerOptions) -> Data:
    """Datasets and loaders; the train loader shuffles from dltool's default generator."""
    train, val, test = build_datasets(cfg, options)
    classes = _classes(train, cfg)

    def loader(dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        with building("data loader"):
            return DataLoader(
                dataset, batch_size=batch_size, shuffle=shuffle, num_workers=options.num_workers
            )

    return Data(
        task=cfg.dataset.get("task", "classification"),
        classes=classes,
        train=train,
        val=val,
        test=test,
        train_loader=loader(train, options.batch_size, shuffle=not options.overfit_batches),
        val_loader=loader(val, options.eval_batch_size, shuffle=False) if val is not None else None,
        test_loader=loader(test, options.eval_batch_size, shuffle=False),
    )


def _classes(dataset: Dataset, cfg: DictConfig) -> list[str]:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    names = getattr(dataset, "classes", None)
    if names:
        return [str(n) for n in names]
    count = cfg.dataset.get("num_classes") or 0
    return [str(i) for i in range(count)]


def fill_num_classes(cfg: DictConfig, classes: list[str]) -> None:
    """Set ``dataset.num_classes`` from the data when the config leaves it null (image folders)."""
    if (
        cfg.dataset.get("task", "classification") == "classification"
        and cfg.dataset.get("num_classes") is None
    ):
        with _writable(cfg):
            cfg.dataset.num_classes = len(classes)


@contextlib.contextmanager
def _writable(cfg: DictConfig) -> Iterator[None]:
    readonly = OmegaConf.is_readonly(cfg)
    OmegaConf.set_readonly(cfg, False)
    try:
        yield
    finally:
        OmegaConf.set_readonly(cfg, readonly)


# ---------------------------------------------------------------- model and optimization


def build_model(cfg: DictConfig, device: str) -> dl.nn.Module:
    """The model on ``device``; any importable ``nn.Module`` subclass named by ``model._target_``."""
    model = build("model", cfg.model)
    if not isinstance(model, dl.nn.Module):
        raise ConfigError(f"model ({cfg.model._target_}): expected an nn.Module, got {type(model).__name__}")
    with building("trainer.device"):
        return model.to(device)


def check_loss_fits(model: dl.nn.Module, loss_fn: Any, data: Data, loss_name: str, device: str) -> None:
    """Run two training samples through the model and the loss before any training.

    A loss that does not fit the model's output or the dataset's targets (``loss=mse`` on a
    classifier) then fails at once with both shapes, instead of deep inside the first step.
    The random generators are left as they were, so a run draws the same numbers either way.

    Raises:
        ConfigError: naming the loss, the output and target shapes, and the loss's own complaint.
    """
    rng = capture_rng()
    was_training = model.training
    model.eval()
    try:
        with building("data loader"):
            x, y = next(iter(DataLoader(data.train, batch_size=2)))
        with dl.no_grad(), building(f"model (on input {tuple(x.shape)})"):
            output = model(x.to(device))
        shapes = f"model output {tuple(output.shape)} {output.dtype}, targets {tuple(y.shape)} {y.dtype}"
        if data.task == "classification" and data.classes and tuple(output.shape[1:]) != (len(data.classes),):
            raise ConfigError(
                f"model: its output does not match the dataset's {len(data.classes)} classes ({shapes})"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. MSELoss broadcasting mismatched shapes
                loss_fn(output, y.to(device))
        except Exception as ex:
            raise ConfigError(
                f"loss ({loss_name}) does not fit this model and dataset ({shapes}): {_message(ex)}"
            ) from ex
    finally:
        model.train(was_training)
        restore_rng(rng)


def build_optimizer(cfg: DictConfig, model: dl.nn.Module) -> dl.optim.Optimizer:
    return build("optimizer", cfg.optimizer, model.parameters())


def build_scheduler(cfg: DictConfig, optimizer: dl.optim.Optimizer, total_steps: int) -> tuple[Any, str]:
    """The LR scheduler (None for ``scheduler=none``) and when to step it: ``epoch`` or ``step``."""
    node = cfg.get("scheduler")
    if node is None or node.get("_target_") is None:
        return None, "epoch"
    interval = node.get("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise ConfigError(f"scheduler.interval: must be 'epoch' or 'step', got {interval!r}")
    spec = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in SCHEDULER_KEYS}
    extra = {}
    if "total_steps" in spec and spec["total_steps"] is None:
        del spec["total_steps"]
        extra["total_steps"] = total_steps
    return build("scheduler", OmegaConf.create(spec), optimizer, **extra), interval
