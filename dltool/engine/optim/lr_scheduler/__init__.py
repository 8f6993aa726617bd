"""Learning-rate schedulers with PyTorch's API, formulas and ``state_dict`` (``torch.optim.lr_scheduler``).

Schedulers use PyTorch's chainable (recursive) formulas, so their learning rates equal PyTorch's
to the last bit; the closed forms serve ``step(epoch)`` and ``SequentialLR`` milestones, as there.
A scheduler's ``state_dict`` is its attributes except the optimizer; lambdas are not saved.
dltool does not warn when ``scheduler.step()`` comes before ``optimizer.step()``.

- by epoch (``decay``): ``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``CosineAnnealingLR``,
  ``CosineAnnealingWarmRestarts``, ``LinearLR``, ``ConstantLR``, ``PolynomialLR``;
- from functions (``core``): ``LambdaLR``, ``MultiplicativeLR``;
- per batch, cycling (``cyclic``): ``CyclicLR``, ``OneCycleLR``;
- driving others or a metric (``special``): ``SequentialLR``, ``ChainedScheduler``, ``ReduceLROnPlateau``.
"""

from dltool.engine.optim.lr_scheduler.core import LambdaLR, LRScheduler, MultiplicativeLR
from dltool.engine.optim.lr_scheduler.cyclic import CyclicLR, OneCycleLR
from dltool.engine.optim.lr_scheduler.decay import (
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from dltool.engine.optim.lr_scheduler.special import ChainedScheduler, ReduceLROnPlateau, SequentialLR

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
