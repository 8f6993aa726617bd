"""``torch.nn.functional``: the stateless forms of layers, activations and losses.

A flat namespace over ``dltool.engine.ops``; the few functions defined here only adapt PyTorch's
signatures (``inplace=``, ``_stacklevel``) or compose a handful of ops.
"""

from __future__ import annotations

from typing import Any

from dltool.engine.ops import elementwise as _elementwise
from dltool.engine.ops import reduce as _reduce
from dltool.engine.ops import shape as _shape
from dltool.engine.ops.activation import (
    celu,
    dropout,
    dropout2d,
    elu,
    gelu,
    glu,
    hardshrink,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    logsigmoid,
    mish,
    prelu,
    relu6,
    rrelu,
    selu,
    silu,
    softmin,
    softplus,
    softshrink,
    softsign,
    tanhshrink,
    threshold,
)
from dltool.engine.ops.attention import scaled_dot_product_attention
from dltool.engine.ops.conv import (
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    fold,
    pad_by_index,
    unfold,
)
from dltool.engine.ops.elementwise import sigmoid, tanh
from dltool.engine.ops.linalg import linear
from dltool.engine.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    one_hot,
    smooth_l1_loss,
)
from dltool.engine.ops.loss_ctc import ctc_loss
from dltool.engine.ops.loss_likelihood import gaussian_nll_loss, poisson_nll_loss
from dltool.engine.ops.loss_margin import (
    cosine_embedding_loss,
    hinge_embedding_loss,
    margin_ranking_loss,
    multi_margin_loss,
    multilabel_soft_margin_loss,
    soft_margin_loss,
    triplet_margin_loss,
)
from dltool.engine.ops.normalization import (
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    local_response_norm,
    rms_norm,
)
from dltool.engine.ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from dltool.engine.ops.resample import interpolate, pixel_shuffle, pixel_unshuffle
from dltool.engine.ops.sparse import embedding, embedding_bag
from dltool.engine.ops.unpool import max_unpool1d, max_unpool2d
from dltool.engine.tensor import Tensor

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv1d", "conv2d",
    "conv_transpose1d", "conv_transpose2d", "cross_entropy", "dropout", "dropout2d", "elu",
    "embedding", "fold", "gelu", "group_norm", "hardtanh", "huber_loss", "instance_norm", "kl_div",
    "l1_loss", "layer_norm", "leaky_relu", "linear", "log_softmax", "max_pool1d", "max_pool2d",
    "mish", "mse_loss", "nll_loss", "normalize", "one_hot", "pad", "relu", "relu6", "scaled_dot_product_attention", "selu",
    "sigmoid", "silu", "smooth_l1_loss", "softmax", "softplus", "tanh", "unfold",
    "celu", "glu", "hardshrink", "hardsigmoid", "hardswish", "interpolate", "local_response_norm",
    "logsigmoid", "pixel_shuffle", "pixel_unshuffle", "prelu", "rms_norm", "rrelu", "softmin",
    "softshrink", "softsign", "tanhshrink", "threshold",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "cosine_embedding_loss", "ctc_loss", "embedding_bag",
    "gaussian_nll_loss", "hinge_embedding_loss", "margin_ranking_loss", "max_unpool1d", "max_unpool2d",
    "multi_margin_loss", "multilabel_soft_margin_loss", "poisson_nll_loss", "soft_margin_loss",
    "triplet_margin_loss",
]


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu_() if inplace else _elementwise.relu(input)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    return _reduce.softmax(input, dim, dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    return _reduce.log_softmax(input, dim, dtype)


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last dims by ``(left, right, top, bottom, ...)`` with a constant or by reflection,
    replication or wrapping (``mode='reflect'|'replicate'|'circular'``)."""
    if mode == "constant":
        return _shape.pad(input, pad, mode, value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if len(pad) % 2 == 0 and (len(pad) > 6 or input.ndim not in (len(pad) // 2 + 1, len(pad) // 2 + 2)):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
        )
    return pad_by_index(input, pad, mode)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``input`` divided by its ``p``-norm along ``dim`` (at least ``eps``)."""
    return input / _elementwise.clamp_min(_reduce.norm(input, p, dim, keepdim=True), eps)
