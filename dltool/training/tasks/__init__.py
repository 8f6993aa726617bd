"""Tasks: what the training loop does with each batch (``task=`` in the config).

``Task`` is the API; the built-in tasks (classification, regression, gan, language_model) use it
as a user's own task does (``task._target_=mypkg.MyTask``).
"""

from dltool.training.tasks.base import (
    FromConfig,
    MeanMetrics,
    Optimization,
    Task,
    batch_size,
    from_config,
    optimizations,
    scalar,
    tagged,
    task_name,
    to_device,
)
from dltool.training.tasks.gan import GAN
from dltool.training.tasks.language_model import LanguageModel
from dltool.training.tasks.supervised import Classification, Regression, Supervised

__all__ = [
    "Classification",
    "GAN",
    "FromConfig",
    "LanguageModel",
    "MeanMetrics",
    "Optimization",
    "Regression",
    "Supervised",
    "Task",
    "batch_size",
    "from_config",
    "optimizations",
    "scalar",
    "tagged",
    "task_name",
    "to_device",
]
