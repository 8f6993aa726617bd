"""``dltool.engine.nn``: modules, parameters, layers, activations and losses, as ``torch.nn``."""

from dltool.engine.nn import functional, init, utils
from dltool.engine.nn.modules.activation import (
    ELU,
    GELU,
    SELU,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from dltool.engine.nn.modules.attention import MultiheadAttention
from dltool.engine.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d
from dltool.engine.nn.modules.container import ModuleDict, ModuleList, Sequential
from dltool.engine.nn.modules.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from dltool.engine.nn.modules.dropout import Dropout, Dropout2d
from dltool.engine.nn.modules.flatten import Flatten, Unflatten
from dltool.engine.nn.modules.linear import Identity, Linear
from dltool.engine.nn.modules.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from dltool.engine.nn.modules.module import Module
from dltool.engine.nn.modules.normalization import GroupNorm, LayerNorm
from dltool.engine.nn.modules.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from dltool.engine.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from dltool.engine.nn.modules.sparse import Embedding
from dltool.engine.nn.parameter import Parameter

__all__ = [
    "ELU", "GELU", "GRU", "LSTM", "RNN", "SELU", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AvgPool1d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "CrossEntropyLoss", "Dropout",
    "Dropout2d", "Embedding", "Flatten", "GRUCell", "GroupNorm", "Hardtanh", "HuberLoss",
    "Identity", "KLDivLoss", "L1Loss", "LSTMCell", "LayerNorm", "LeakyReLU", "Linear",
    "LogSoftmax", "MSELoss", "MaxPool1d", "MaxPool2d", "Mish", "Module", "ModuleDict",
    "ModuleList", "MultiheadAttention", "NLLLoss", "Parameter", "RNNBase", "RNNCell", "ReLU", "ReLU6", "Sequential",
    "SiLU", "Sigmoid", "SmoothL1Loss", "Softmax", "Softplus", "Tanh", "Unflatten", "functional",
    "init", "utils",
]
