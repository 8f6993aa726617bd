"""``trainer.compile=true``: a task's train step captured once by ``dl.compile`` and replayed.

The captured part is what runs on tensors: the model, the loss, and ``optimizer_step`` (zero_grad,
backward, gradient clipping, the optimizers' updates, which read their learning rate at each step,
so schedulers keep working). For the supervised tasks the task's ``score`` reads host arrays, so it
runs after the replay on the replayed output. For the language model, the recurrent state a batch
starts from is an argument of the captured step and its final state (detached) a result, so the
state carried across batches flows through the replay as it does in eager mode. Checkpoints hold
the same weights and optimizer state either way, so a run may resume with compile switched on or off.
"""

from __future__ import annotations

from typing import Any

import dltool.engine as dl
from dltool.training.errors import ConfigError
from dltool.training.tasks.base import Task
from dltool.training.tasks.language_model import LanguageModel
from dltool.training.tasks.supervised import Supervised

_COMPILABLE = (Supervised, LanguageModel)


def check_compilable(task: Task, num_processes: int) -> None:
    """Refuse ``trainer.compile`` where the step could not be captured whole.

    Raises:
        ConfigError: manual optimization (a GAN), a task other than the supervised ones and the
            language model, one with its own ``training_step``, or data-parallel ranks.
    """
    name = type(task).__name__
    if not task.automatic_optimization:
        raise ConfigError(
            f"trainer.compile: task {name} optimizes manually (automatic_optimization = False); "
            "compile captures the trainer's own optimizer step"
        )
    base = next((cls for cls in _COMPILABLE if isinstance(task, cls)), None)
    if base is None or type(task).training_step is not base.training_step:
        raise ConfigError(
            f"trainer.compile: supported for the supervised tasks (classification, regression) and "
            f"language_model, with their own training_step; task {name} is not one"
        )
    if num_processes > 1:
        raise ConfigError(
            "trainer.compile: not with trainer.num_processes > 1 (gradients are averaged across ranks)"
        )


def compiled_step(task: Task) -> Any:
    """The compiled train step for ``task`` (checked by ``check_compilable``)."""
    return _LanguageModelStep(task) if isinstance(task, LanguageModel) else _SupervisedStep(task)


class _SupervisedStep:
    """``training_step`` then ``optimizer_step`` of a supervised task, replayed after the first call."""

    def __init__(self, task: Supervised) -> None:
        self.task = task
        self.step = dl.compile(self._forward_backward)

    def _forward_backward(self, x: dl.Tensor, y: dl.Tensor) -> tuple[dl.Tensor, dl.Tensor]:
        task = self.task
        output = task.model(x)
        loss = task.loss(output, y)
        task.optimizer_step(loss, *task.optimizers())
        return loss, output

    def __call__(self, batch: Any, batch_idx: int) -> dict[str, float]:
        """The step's values (``loss`` and the task's scores), as the eager loop reports them."""
        x, y = batch
        loss, output = self.step(x, y)
        return {"loss": float(loss.item()), **self.task.score(output, y)}


class _LanguageModelStep:
    """A language model's loss and ``optimizer_step``, with the state it starts from as an argument.

    The first batch of a pass (no state) and the later ones (a state) are two captures.
    """

    def __init__(self, task: LanguageModel) -> None:
        self.task = task
        self.step = dl.compile(self._forward_backward)

    def _forward_backward(self, inputs: dl.Tensor, targets: dl.Tensor, state: Any) -> tuple[dl.Tensor, Any]:
        loss, state = self.task.loss_and_state(inputs, targets, state)
        self.task.optimizer_step(loss, *self.task.optimizers())
        return loss, state

    def __call__(self, batch: Any, batch_idx: int) -> dict[str, float]:
        """The step's loss, as the eager loop reports it; the final state kept for the next batch."""
        inputs, targets = batch
        loss, state = self.step(inputs, targets, self.task.initial_state(inputs, batch_idx))
        self.task.keep_state(state)
        return {"loss": float(loss.item())}
