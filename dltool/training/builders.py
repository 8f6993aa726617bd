"""Build the run's objects from the composed config with ``hydra.utils.instantiate``.

Each builder turns whatever goes wrong while building one component into a ``ConfigError`` that
names the component and its ``_target_``, so ``optimizer.lr=-1`` reads as
``optimizer (dltool.engine.optim.Adam): Invalid learning rate: -1.0``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import dltool.engine as dl
from dltool.engine.utils.data import DataLoader, Dataset, Subset, random_split
from dltool.training.checkpoint import capture_rng, restore_rng
from dltool.training.errors import ConfigError, DltoolError, innermost_message
from dltool.training.options import TrainerOptions
from dltool.training.tasks.base import FromConfig, Optimization, Task, to_device

# Keys of a scheduler config that the trainer reads itself instead of passing to the class.
SCHEDULER_KEYS = ("interval",)


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
        raise ConfigError(f"{where}: {innermost_message(ex)}") from ex


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
    """The splits and their loaders. ``val`` is the dataset's own (``dataset.val``) or carved from
    the training set (None without one)."""

    classes: list[str]
    train: Dataset
    val: Dataset | None
    test: Dataset
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader


def build_datasets(cfg: DictConfig, options: TrainerOptions) -> tuple[Dataset, Dataset | None, Dataset]:
    """The train, validation and test datasets: ``dataset.val`` when the config has one (a text
    corpus's last 10%), else ``trainer.val_split`` of the training set, seeded by ``trainer.seed``."""
    full = build("dataset.train", cfg.dataset.train)
    test = build("dataset.test", cfg.dataset.test)
    if cfg.dataset.get("val") is not None and not options.overfit_batches:
        return full, build("dataset.val", cfg.dataset.val), test  # the dataset's own split
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
    """Datasets and loaders; the train loader shuffles from dltool's default generator unless
    ``dataset.shuffle`` is false (a text corpus whose batches continue each other)."""
    train, val, test = build_datasets(cfg, options)
    classes = _classes(train, cfg)

    def loader(dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        with building("data loader"):
            return DataLoader(
                dataset, batch_size=batch_size, shuffle=shuffle, num_workers=options.num_workers
            )

    return Data(
        classes=classes,
        train=train,
        val=val,
        test=test,
        train_loader=loader(
            train, options.batch_size, shuffle=not options.overfit_batches and cfg.dataset.get("shuffle", True)
        ),
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
    """Set ``dataset.num_classes`` from the data when the config leaves it null (image folders,
    a text corpus's vocabulary)."""
    if "num_classes" in cfg.dataset and cfg.dataset.num_classes is None and classes:
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


# ---------------------------------------------------------------- the task and its optimizers


def build_task(cfg: DictConfig, classes: list[str], device: str) -> Task:
    """The run's task, on ``device``: ``task._target_`` called with its other keys.

    A key whose value is a component config (``model: ${model}``) is built first, on its own, so
    that its errors name it (``model (dltool.models.mlp.MLP): ...``) as in any other group.
    """
    node = cfg.task
    parts = {
        str(key): build(_component_name(node, str(key)), node[key])
        for key in node
        if not str(key).startswith("_") and isinstance(node[key], DictConfig) and "_target_" in node[key]
    }
    spec = OmegaConf.create(
        {str(k): v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in parts}
    )
    spec._partial_ = True
    factory = build("task", spec)
    with building("task", node):
        task = factory(**parts)
    target = node._target_
    if not isinstance(task, Task):
        raise ConfigError(f"task ({target}): expected a dltool.training.tasks.Task, got {type(task).__name__}")
    if type(task).training_step is Task.training_step:
        raise ConfigError(f"task ({target}): it has no training_step(batch, batch_idx) method")
    task.classes = list(classes)
    with building("trainer.device"):
        return task.to(device)


def _component_name(node: DictConfig, key: str) -> str:
    """``model`` for ``task.model: ${model}``; ``task.<key>`` for a config written in place."""
    if OmegaConf.is_interpolation(node, key):
        reference = str(node._get_node(key)._value())
        if reference.startswith("${") and reference.endswith("}") and ":" not in reference:
            return reference[2:-1]
    return f"task.{key}"


def check_task_fits(task: Task, data: Data, device: str) -> None:
    """Run two training samples through ``task.check`` before any training.

    A model or loss that does not fit the data (``loss=mse`` on a classifier, a generator whose
    images are not the dataset's size) then fails at once with the shapes, instead of deep inside
    the first step. The random generators are left as they were, so a run draws the same numbers
    either way.

    Raises:
        ConfigError: naming the task and what did not fit.
    """
    rng = capture_rng()
    was_training = task.training
    task.eval()
    try:
        with building("data loader"):
            batch = next(iter(DataLoader(data.train, batch_size=2)))
        with dl.no_grad(), building(f"task ({type(task).__name__}) on a batch of the training data"):
            task.check(to_device(batch, device))
    finally:
        task.train(was_training)
        restore_rng(rng)


def build_optimization(cfg: DictConfig, request: FromConfig, total_steps: int) -> Optimization:
    """The optimizer that ``request`` names in the config, and its scheduler (if any)."""
    node = cfg.get(request.key)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{request.key}: the task needs this optimizer config, and the run has none")
    optimizer = build(request.key, node, request.params)
    scheduler, interval = build_scheduler(cfg, request.scheduler, optimizer, total_steps)
    return Optimization(optimizer, scheduler, interval, request.key, request.scheduler)


def build_scheduler(
    cfg: DictConfig, key: str | None, optimizer: dl.optim.Optimizer, total_steps: int
) -> tuple[Any, str]:
    """The LR scheduler at config ``key`` (None for none or ``scheduler=none``) and when to step
    it: ``epoch`` or ``step``."""
    node = cfg.get(key) if key else None
    if node is None or node.get("_target_") is None:
        return None, "epoch"
    interval = node.get("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise ConfigError(f"{key}.interval: must be 'epoch' or 'step', got {interval!r}")
    spec = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k not in SCHEDULER_KEYS}
    extra = {}
    if "total_steps" in spec and spec["total_steps"] is None:
        del spec["total_steps"]
        extra["total_steps"] = total_steps
    return build(key, OmegaConf.create(spec), optimizer, **extra), interval
