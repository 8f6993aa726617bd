"""The task API: what one training loop does with a batch, in the spirit of a small LightningModule.

A task is an ``nn.Module`` that owns the run's models (so one ``state_dict`` holds them all) and
says, per batch, what to compute:

- ``training_step(batch, batch_idx)`` returns a dict of losses and metrics. With automatic
  optimization (the default) its ``"loss"`` is what the trainer differentiates and steps; a task
  that sets ``automatic_optimization = False`` updates its own optimizers (``self.optimizers()``,
  ``self.optimizer_step``), as a GAN does with its two.
- ``validation_step(batch, batch_idx)`` (optional) returns metrics for the validation and test
  passes; the trainer averages every value over the samples of the pass.
- ``configure_optimizers()`` returns what to optimize with: optimizers built here, or
  ``from_config("optimizer", params)`` requests that the trainer builds from the run's config
  (the default: one optimizer from ``optimizer``, scheduled by ``scheduler``, over all parameters).

The trainer moves each batch to the run's device before a step and sets ``classes`` (the
dataset's class names or vocabulary) before training. Values in the returned dicts may be
tensors with one element or Python numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from PIL import Image

import dltool.engine as dl

StepOutput = Mapping[str, Any]
BatchStep = Callable[[Any, int], StepOutput]  # (batch, batch_idx) -> values, as validation_step


@dataclasses.dataclass
class Optimization:
    """An optimizer and, optionally, its LR scheduler and when to step that: ``epoch`` or ``step``."""

    optimizer: dl.optim.Optimizer
    scheduler: Any = None
    interval: str = "epoch"
    # The run config's keys it was built from (None: built by the task's own code).
    config_key: str | None = None
    scheduler_key: str | None = None


@dataclasses.dataclass
class FromConfig:
    """A request for the trainer: build an optimizer from the config node ``key`` over ``params``,
    and an LR scheduler from the node ``scheduler`` (when given and not ``scheduler=none``)."""

    key: str
    params: Any
    scheduler: str | None = None


def from_config(
    key: str, params: Iterable[dl.nn.Parameter] | Any, scheduler: str | None = None
) -> FromConfig:
    """Ask for the optimizer the run's config names at ``key`` (``optimizer``, ``optimizer_g``).

    Example:
        >>> request = from_config("optimizer", [dl.nn.Parameter(dl.zeros(2))], scheduler="scheduler")
        >>> request.key, request.scheduler
        ('optimizer', 'scheduler')
    """
    return FromConfig(key, list(params), scheduler)


class Task(dl.nn.Module):
    """Base class of the built-in tasks and of users' own (``task._target_=mypkg.MyTask``)."""

    #: False: ``training_step`` zeroes, backpropagates and steps its optimizers itself.
    automatic_optimization: ClassVar[bool] = True
    #: The metric names the steps report (without ``train/`` or ``val/``), so that a bad
    #: ``trainer.monitor`` is refused before training; None: checked at the first epoch's end.
    metric_names: ClassVar[tuple[str, ...] | None] = None
    #: The kinds of dataset (their config's ``task`` key) it trains on; None: any.
    dataset_kinds: ClassVar[tuple[str, ...] | None] = None
    #: The name checkpoints and messages use (``classification``); the class's name by default.
    name: ClassVar[str | None] = None
    #: Tags of ``pictures()`` that the trainer also saves as ``<run>/<tag>/epoch-N.png``.
    saved_pictures: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str] = []
        self.grad_clip: float | None = None  # the trainer's trainer.grad_clip
        # False under data-parallel ranks: zeroing in place keeps DDP's gradients views of its buckets
        self.grads_to_none = True
        self._optimizations: list[Optimization] = []

    # ------------------------------------------------------------ what a task implements

    def training_step(self, batch: Any, batch_idx: int) -> StepOutput:
        """One training batch: ``{"loss": tensor, ...}`` (and the optimizer steps when manual)."""
        raise NotImplementedError(f"{type(self).__name__} has no training_step")

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        """One validation or test batch: metrics to average over the pass."""
        raise NotImplementedError(f"{type(self).__name__} has no validation_step")

    def configure_optimizers(self) -> Any:
        """Optimizers, ``Optimization``s or ``from_config`` requests (one or a list)."""
        return from_config("optimizer", self.parameters(), scheduler="scheduler")

    def epoch_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Metrics derived from a pass's means (a language model's perplexity); unchanged by default."""
        return metrics

    def check(self, batch: Any) -> None:
        """Raise if ``batch`` (two training samples) cannot go through this task; the trainer calls
        it once before training, under ``no_grad``. Runs ``validation_step`` by default."""
        if self.has_validation:
            self.validation_step(batch, 0)

    def on_validation_start(self) -> None:
        """Called before each validation or test pass (reset what the pass accumulates)."""

    def pictures(self) -> dict[str, Image.Image]:
        """Images for the loggers after each epoch's validation (tag -> picture); none by default."""
        return {}

    # ------------------------------------------------------------ what the trainer provides

    def describe(self) -> str:
        """The models the task owns, by class: ``MLP``, ``Generator + Discriminator``."""
        models = [m for m in self.children() if any(True for _ in m.parameters())]
        return " + ".join(type(m).__name__ for m in models) or type(self).__name__

    @property
    def has_validation(self) -> bool:
        """Whether this task defines ``validation_step`` (without one, a run has no val/test pass)."""
        return type(self).validation_step is not Task.validation_step

    def attach_optimizations(self, optimizations: list[Optimization]) -> None:
        """Give the task the optimizers the trainer built from ``configure_optimizers``."""
        self._optimizations = list(optimizations)

    def optimizers(self) -> list[dl.optim.Optimizer]:
        """The optimizers in ``configure_optimizers`` order (for manual optimization)."""
        return [o.optimizer for o in self._optimizations]

    def optimizer_step(self, loss: dl.Tensor, *optimizers: dl.optim.Optimizer) -> None:
        """Zero the gradients, backpropagate ``loss``, clip to ``grad_clip``, step each optimizer."""
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=self.grads_to_none)
        loss.backward()
        for optimizer in optimizers:
            if self.grad_clip is not None:
                params = [p for group in optimizer.param_groups for p in group["params"]]
                dl.nn.utils.clip_grad_norm_(params, self.grad_clip)
            optimizer.step()

    def evaluate(
        self, batches: Iterable[Any], prefix: str, device: str = "cpu", step: BatchStep | None = None
    ) -> dict[str, float]:
        """``validation_step`` over ``batches`` in eval mode: the sample-weighted means, ``prefix/``-tagged."""
        return tagged(self.epoch_metrics(self.validation_sums(batches, device, step).compute()), prefix)

    @dl.no_grad()
    def validation_sums(
        self, batches: Iterable[Any], device: str = "cpu", step: BatchStep | None = None
    ) -> MeanMetrics:
        """``validation_step`` over ``batches`` in eval mode, its outputs summed by sample (data-parallel
        ranks add their sums before the means are taken).

        Args:
            step: what runs each batch in place of ``validation_step`` (``trainer.compile``'s,
                which replays its tensor part).
        """
        step = self.validation_step if step is None else step
        was_training = self.training
        self.eval()
        self.on_validation_start()
        means = MeanMetrics()
        try:
            for batch_idx, batch in enumerate(batches):
                batch = to_device(batch, device)
                means.update(step(batch, batch_idx), batch_size(batch))
        finally:
            self.train(was_training)
        return means


class MeanMetrics:
    """Sample-weighted running means of step outputs, kept as Python floats (memory stays flat)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, values: StepOutput, weight: int) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + scalar(value) * weight
        self.count += weight

    def compute(self) -> dict[str, float]:
        return {key: total / max(self.count, 1) for key, total in self.sums.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = {str(k): float(v) for k, v in state["sums"].items()}
        self.count = int(state["count"])


def scalar(value: Any) -> float:
    """A step output's value as a float (a one-element tensor is read with ``item``)."""
    return float(value.item()) if isinstance(value, dl.Tensor) else float(value)


def tagged(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{key}": value for key, value in metrics.items()}


def to_device(batch: Any, device: str) -> Any:
    """``batch`` with every tensor in it (nested in tuples, lists and dicts) on ``device``."""
    if isinstance(batch, dl.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def batch_size(batch: Any) -> int:
    """The number of samples in a batch: the first dimension of its first tensor."""
    first = next(_tensors(batch), None)
    return int(first.shape[0]) if first is not None and first.dim() else 1


def _tensors(batch: Any) -> Iterator[dl.Tensor]:
    if isinstance(batch, dl.Tensor):
        yield batch
    elif isinstance(batch, (tuple, list)):
        for item in batch:
            yield from _tensors(item)
    elif isinstance(batch, Mapping):
        for item in batch.values():
            yield from _tensors(item)


def optimizations(requested: Any, build: Any) -> list[Optimization]:
    """``configure_optimizers``' return value as a list of ``Optimization``s.

    Args:
        build: turns a ``FromConfig`` request into an ``Optimization`` (the trainer's builder).

    Raises:
        TypeError: an entry is none of Optimizer, Optimization, FromConfig.
    """
    entries: Sequence[Any] = requested if isinstance(requested, (list, tuple)) else [requested]
    result = []
    for entry in entries:
        if isinstance(entry, FromConfig):
            result.append(build(entry))
        elif isinstance(entry, Optimization):
            result.append(entry)
        elif isinstance(entry, dl.optim.Optimizer):
            result.append(Optimization(entry))
        else:
            raise TypeError(
                "configure_optimizers must return Optimizers, Optimizations or from_config(...) "
                f"requests, got {type(entry).__name__}"
            )
    if not result:
        raise TypeError("configure_optimizers returned no optimizer")
    return result


def task_name(task: Task) -> str:
    """``task.name``, or its class's name for a task that does not set one."""
    return task.name or type(task).__name__
