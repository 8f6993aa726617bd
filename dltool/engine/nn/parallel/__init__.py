"""``dltool.engine.nn.parallel``: wrappers that run a module on several devices, as ``torch.nn.parallel``."""

from dltool.engine.nn.parallel.data_parallel import DataParallel
from dltool.engine.nn.parallel.distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
