"""``dltool.engine.nn``: modules, parameters, layers, activations and losses, as ``torch.nn``."""

from dltool.engine.nn import functional, init, parallel, utils
from dltool.engine.nn.modules.activation import (
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    RReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Softshrink,
    Softsign,
    Tanh,
    Tanhshrink,
    Threshold,
)
from dltool.engine.nn.modules.attention import MultiheadAttention
from dltool.engine.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d, LazyBatchNorm1d, LazyBatchNorm2d
from dltool.engine.nn.modules.container import (
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)
from dltool.engine.nn.modules.conv import (
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    ConvTranspose2d,
    LazyConv1d,
    LazyConv2d,
)
from dltool.engine.nn.modules.dropout import Dropout, Dropout2d
from dltool.engine.nn.modules.flatten import Flatten, Unflatten
from dltool.engine.nn.modules.fold import Fold, Unfold
from dltool.engine.nn.modules.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from dltool.engine.nn.modules.linear import Identity, LazyLinear, Linear
from dltool.engine.nn.modules.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CosineEmbeddingLoss,
    CrossEntropyLoss,
    CTCLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MarginRankingLoss,
    MSELoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    NLLLoss,
    PoissonNLLLoss,
    SmoothL1Loss,
    SoftMarginLoss,
    TripletMarginLoss,
)
from dltool.engine.nn.modules.module import Module
from dltool.engine.nn.modules.normalization import GroupNorm, LayerNorm, LocalResponseNorm, RMSNorm
from dltool.engine.nn.modules.padding import (
    CircularPad1d,
    CircularPad2d,
    CircularPad3d,
    ConstantPad1d,
    ConstantPad2d,
    ConstantPad3d,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d,
)
from dltool.engine.nn.modules.pixelshuffle import PixelShuffle, PixelUnshuffle
from dltool.engine.nn.modules.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
    MaxUnpool1d,
    MaxUnpool2d,
)
from dltool.engine.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell
from dltool.engine.nn.modules.sparse import Embedding, EmbeddingBag
from dltool.engine.nn.modules.syncbatchnorm import SyncBatchNorm
from dltool.engine.nn.modules.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from dltool.engine.nn.modules.upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from dltool.engine.nn.parallel import DataParallel
from dltool.engine.nn.parameter import Parameter, UninitializedBuffer, UninitializedParameter

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
    "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyConv1d", "LazyConv2d", "LazyLinear", "Transformer",
    "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer",
    "UninitializedBuffer", "UninitializedParameter",
    "CELU", "CircularPad1d", "CircularPad2d", "CircularPad3d", "ConstantPad1d", "ConstantPad2d",
    "ConstantPad3d", "Fold", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "InstanceNorm1d",
    "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm", "LogSigmoid", "PReLU", "PixelShuffle",
    "PixelUnshuffle", "RMSNorm", "RReLU", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d",
    "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "Softmin", "Softshrink", "Softsign", "SyncBatchNorm",
    "Tanhshrink", "Threshold", "Unfold", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    "DataParallel", "parallel",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "CTCLoss", "CosineEmbeddingLoss", "EmbeddingBag",
    "GaussianNLLLoss", "HingeEmbeddingLoss", "MarginRankingLoss", "MaxUnpool1d", "MaxUnpool2d",
    "MultiLabelSoftMarginLoss", "MultiMarginLoss", "ParameterDict", "ParameterList", "PoissonNLLLoss",
    "SoftMarginLoss", "TripletMarginLoss",
]
