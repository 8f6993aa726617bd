"""``trainer.compile=true``: a supervised task's train step captured once by ``dl.compile`` and replayed.

The captured part is what runs on tensors: the model, the loss, and ``optimizer_step`` (zero_grad,
backward, gradient clipping, the optimizers' updates, which read their learning rate at each step,
so schedulers keep working). The task's ``score`` reads host arrays, so it runs after the replay
on the replayed output. Checkpoints hold the same weights and optimizer state either way, so a run
may resume with compile switched on or off.
"""

from __future__ import annotations

from typing import Any

import dltool.engine as dl
from dltool.training.errors import ConfigError
from dltool.training.tasks.base import Task
from dltool.training.tasks.supervised import Supervised


def check_compilable(task: Task, num_processes: int) -> None:
    """Refuse ``trainer.compile`` where the step could not be captured whole.

    Raises:
        ConfigError: a task other than the supervised ones, one with its own ``training_step``,
            manual optimization, or data-parallel ranks.
    """
    name = type(task).__name__
    if not isinstance(task, Supervised) or type(task).training_step is not Supervised.training_step:
        raise ConfigError(
            f"trainer.compile: supported for the supervised tasks (classification, regression), "
            f"whose training_step is model, loss and score; task {name} is not one"
        )
    if not task.automatic_optimization:
        raise ConfigError(f"trainer.compile: task {name} optimizes manually")
    if num_processes > 1:
        raise ConfigError(
            "trainer.compile: not with trainer.num_processes > 1 (gradients are averaged across ranks)"
        )


class CompiledStep:
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

    def __call__(self, batch: Any) -> dict[str, float]:
        """The step's values (``loss`` and the task's scores), as the eager loop reports them."""
        x, y = batch
        loss, output = self.step(x, y)
        return {"loss": float(loss.item()), **self.task.score(output, y)}
