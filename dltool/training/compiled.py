"""``trainer.compile=true``: a task's train step and evaluation pass captured by ``dl.compile``.

The captured part is what runs on tensors. For training: the model, the loss, and
``optimizer_step`` (zero_grad, backward, gradient clipping, the optimizers' updates, which read
their learning rate at each step, so schedulers keep working). For validation and test: the model
and the loss, run by ``Task.validation_sums`` under ``no_grad`` and in eval mode, a compiled
function of its own, so the train step's captures and the evaluation's never evict each other.
The supervised tasks' scores (``score``, a classifier's confusion matrix) read host arrays, so
they run after the replay on the replayed output (``Supervised.validation_values``). For the
language model, the recurrent state a batch starts from is an argument of the captured function
and its final state (detached) a result, so the state carried across batches flows through the
replay as it does in eager mode (``LanguageModel.carried_step``). Checkpoints hold the same
weights and optimizer state either way, so a run may resume with compile switched on or off.
"""

from __future__ import annotations

from typing import Any

import dltool.engine as dl
from dltool.training.errors import ConfigError
from dltool.training.tasks.base import BatchStep, StepOutput, Task
from dltool.training.tasks.language_model import LanguageModel
from dltool.training.tasks.supervised import Supervised

_COMPILABLE = (Supervised, LanguageModel)


def check_compilable(task: Task, num_processes: int) -> None:
    """Refuse ``trainer.compile`` where the step could not be captured whole.

    Raises:
        ConfigError: manual optimization (a GAN), a task other than the supervised ones and the
            language model, one with its own ``training_step`` or ``validation_step``, or
            data-parallel ranks.
    """
    name = type(task).__name__
    if not task.automatic_optimization:
        raise ConfigError(
            f"trainer.compile: task {name} optimizes manually (automatic_optimization = False); "
            "compile captures the trainer's own optimizer step"
        )
    base = next((cls for cls in _COMPILABLE if isinstance(task, cls)), None)
    if (
        base is None
        or type(task).training_step is not base.training_step
        or type(task).validation_step is not base.validation_step
    ):
        raise ConfigError(
            f"trainer.compile: supported for the supervised tasks (classification, regression) and "
            f"language_model, with their own training_step and validation_step; task {name} is not one"
        )
    if num_processes > 1:
        raise ConfigError(
            "trainer.compile: not with trainer.num_processes > 1 (gradients are averaged across ranks)"
        )


def compiled_step(task: Task) -> Any:
    """The compiled train step for ``task`` (checked by ``check_compilable``)."""
    return _LanguageModelStep(task) if isinstance(task, LanguageModel) else _SupervisedStep(task)


def compiled_evaluation(task: Task) -> BatchStep:
    """``task``'s ``validation_step`` with its tensor part compiled, for ``Task.evaluate(step=...)``."""
    return _LanguageModelEvaluation(task) if isinstance(task, LanguageModel) else _SupervisedEvaluation(task)


class _SupervisedStep:
    """``training_step`` then ``optimizer_step`` of a supervised task, replayed after the first call."""

    def __init__(self, task: Supervised) -> None:
        self.task = task
        self.step = dl.compile(self._forward_backward)

    def _forward_backward(self, x: dl.Tensor, y: dl.Tensor) -> tuple[dl.Tensor, dl.Tensor]:
        task = self.task
        output, loss = task.output_and_loss(x, y)
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
        loss = self.task.carried_step(batch, batch_idx, self.step)["loss"]
        return {"loss": float(loss.item())}


class _SupervisedEvaluation:
    """A supervised task's ``validation_step``: model and loss replayed, the task scores the output."""

    def __init__(self, task: Supervised) -> None:
        self.task = task
        self.output_and_loss = dl.compile(task.output_and_loss)

    def __call__(self, batch: Any, batch_idx: int) -> StepOutput:
        x, y = batch
        return self.task.validation_values(batch, *self.output_and_loss(x, y))


class _LanguageModelEvaluation:
    """A language model's ``validation_step``: its loss replayed, the state carried as in training."""

    def __init__(self, task: LanguageModel) -> None:
        self.task = task
        self.loss_and_state = dl.compile(task.loss_and_state)

    def __call__(self, batch: Any, batch_idx: int) -> StepOutput:
        return self.task.carried_step(batch, batch_idx, self.loss_and_state)
