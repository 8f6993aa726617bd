"""``dltool.engine.utils.data``: datasets, samplers and the DataLoader, as ``torch.utils.data``."""

from dltool.engine.utils.data._collate import default_collate, default_convert
from dltool.engine.utils.data._workers import WorkerInfo, get_worker_info
from dltool.engine.utils.data.dataloader import DataLoader
from dltool.engine.utils.data.dataset import (
    BatchedSamples,
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from dltool.engine.utils.data.distributed import DistributedSampler
from dltool.engine.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler",
    "BatchedSamples",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]
