"""Optimizers and learning-rate schedulers with PyTorch's API (``torch.optim``).

First-order optimizers: ``SGD``, ``ASGD``, ``Adadelta``, ``Adagrad``, ``Adam``, ``AdamW``,
``Adamax``, ``NAdam``, ``RAdam``, ``RMSprop`` and ``Rprop``; ``LBFGS`` is quasi-Newton and needs a
closure. The schedulers are in ``lr_scheduler``.
"""

from dltool.engine.optim import lr_scheduler
from dltool.engine.optim.adadelta import Adadelta
from dltool.engine.optim.adagrad import Adagrad
from dltool.engine.optim.adam import Adam
from dltool.engine.optim.adamax import Adamax
from dltool.engine.optim.adamw import AdamW
from dltool.engine.optim.asgd import ASGD
from dltool.engine.optim.lbfgs import LBFGS
from dltool.engine.optim.nadam import NAdam
from dltool.engine.optim.optimizer import Optimizer
from dltool.engine.optim.radam import RAdam
from dltool.engine.optim.rmsprop import RMSprop
from dltool.engine.optim.rprop import Rprop
from dltool.engine.optim.sgd import SGD

__all__ = [
    "ASGD",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "lr_scheduler",
]
