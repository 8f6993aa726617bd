"""Learning-rate schedulers with PyTorch's API, formulas and ``state_dict`` (``torch.optim.lr_scheduler``).

Schedulers use PyTorch's chainable (recursive) formulas, so their learning rates equal PyTorch's
to the last bit; the closed forms serve ``step(epoch)`` and ``SequentialLR`` milestones, as there.
A scheduler's ``state_dict`` is its attributes except the optimizer; lambdas are not saved.
dltool does not warn when ``scheduler.step()`` comes before ``optimizer.step()``.
"""

from dltool.engine.optim.lr_scheduler.core import LambdaLR, LRScheduler
from dltool.engine.optim.lr_scheduler.decay import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    StepLR,
)
from dltool.engine.optim.lr_scheduler.special import OneCycleLR, ReduceLROnPlateau, SequentialLR

__all__ = [
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]
