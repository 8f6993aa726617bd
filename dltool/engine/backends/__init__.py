"""``dltool.engine.backends``: the switches of PyTorch's backends, as ``torch.backends``."""

from dltool.engine.backends import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps"]
