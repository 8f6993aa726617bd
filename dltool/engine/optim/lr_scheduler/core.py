"""The scheduler base class, ``LRScheduler``, and the function-driven ``LambdaLR`` and ``MultiplicativeLR``."""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from dltool.engine.optim.optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where "
    "possible. Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch "
    "is different from None, the closed form is used instead of the new chainable form, where available."
)


def check_optimizer(optimizer: Any) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    return optimizer


def saved_callable(fn: Callable[..., Any] | None) -> dict[str, Any] | None:
    """What a ``state_dict`` keeps of a user's function: a callable object's attributes, else ``None``."""
    if fn is None or isinstance(fn, types.FunctionType):
        return None
    return fn.__dict__.copy()


def per_group(name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """``value`` once per parameter group (a list or tuple must already have one per group)."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class of the schedulers: ``step()``, ``get_last_lr()``, ``state_dict()``.

    Subclasses implement ``get_lr()`` (the next learning rates from the current ones) and may
    add ``_get_closed_form_lr()`` (the learning rates at ``last_epoch`` from ``base_lrs``).

    Args:
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` are set.
        last_epoch: the index of the last epoch; ``-1`` starts a new schedule.

    Raises:
        KeyError: when resuming (``last_epoch != -1``) with groups that lack ``initial_lr``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        self.optimizer = check_optimizer(optimizer)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming an optimizer"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step()`` set, one per parameter group."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or step) and set the optimizer's learning rates.

        Args:
            epoch: deprecated, as in PyTorch: jump to this epoch using the closed form.
        """
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer."""
        return self._attributes()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

    def _attributes(self, *special: str) -> dict[str, Any]:
        """The attributes to save, without the optimizer and the ``special`` ones."""
        return {
            key: value for key, value in self.__dict__.items() if key != "optimizer" and key not in special
        }

    def _load_attributes(self, state_dict: dict[str, Any], special: str) -> Any:
        """Restore the attributes except ``special``, whose saved value is returned (``state_dict`` is untouched)."""
        self.__dict__.update((key, value) for key, value in state_dict.items() if key != special)
        return state_dict[special]


def _per_group_lambdas(optimizer: Optimizer, lr_lambda: Any) -> list[Callable[[int], float]]:
    """``lr_lambda`` once per parameter group (a list or tuple must already have one per group)."""
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != len(optimizer.param_groups):
            raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
        return list(lr_lambda)
    return [lr_lambda] * len(optimizer.param_groups)


class _LambdaScheduler(LRScheduler):
    """Base of the schedulers driven by ``lr_lambdas``, one function per parameter group.

    ``state_dict`` keeps the attributes of callable objects but not functions or lambdas, as in
    PyTorch.
    """

    lr_lambdas: list[Callable[[int], float]]

    def state_dict(self) -> dict[str, Any]:
        state = self._attributes("lr_lambdas")
        state["lr_lambdas"] = [saved_callable(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        lr_lambdas = self._load_attributes(state_dict, "lr_lambdas")
        for fn, saved in zip(self.lr_lambdas, lr_lambdas, strict=True):
            if saved is not None:
                fn.__dict__.update(saved)


class LambdaLR(_LambdaScheduler):
    """``lr = initial_lr * lr_lambda(epoch)``; one function, or one per parameter group.

    As in PyTorch, ``state_dict`` keeps the attributes of callable objects but not functions or
    lambdas: recreate the scheduler with the same functions before loading.

    Example:
        >>> opt = torch.optim.SGD(nn.Linear(4, 2).parameters(), lr=0.1)
        >>> scheduler = LambdaLR(opt, lr_lambda=lambda epoch: 0.95**epoch)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = check_optimizer(optimizer)
        self.lr_lambdas = _per_group_lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [
            base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs, strict=True)
        ]


class MultiplicativeLR(_LambdaScheduler):
    """Multiply the learning rate by ``lr_lambda(epoch)`` every epoch; one function, or one per group.

    Its ``state_dict`` is saved as ``LambdaLR``'s is: functions and lambdas are not saved.

    Example:
        >>> opt = torch.optim.SGD(nn.Linear(4, 2).parameters(), lr=0.1)
        >>> scheduler = MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.95)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = check_optimizer(optimizer)
        self.lr_lambdas = _per_group_lambdas(optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return [lr * fn(self.last_epoch) for fn, lr in zip(self.lr_lambdas, self._current_lrs(), strict=True)]
