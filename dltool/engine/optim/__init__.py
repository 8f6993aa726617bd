"""Optimizers and learning-rate schedulers with PyTorch's API (``torch.optim``)."""

from dltool.engine.optim import lr_scheduler
from dltool.engine.optim.adagrad import Adagrad
from dltool.engine.optim.adam import Adam
from dltool.engine.optim.adamw import AdamW
from dltool.engine.optim.optimizer import Optimizer
from dltool.engine.optim.rmsprop import RMSprop
from dltool.engine.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
