"""``dltool.engine.utils``: the data loading package, as ``torch.utils``."""

from dltool.engine.utils import data

__all__ = ["data"]
