"""Attention: ``scaled_dot_product_attention`` and the multi-head form behind ``MultiheadAttention``.

Both are compositions (two batched matmuls around a softmax); masks become additive ``-inf`` terms.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dltool.engine.ops.activation import dropout
from dltool.engine.ops.elementwise import where
from dltool.engine.ops.reduce import softmax
from dltool.engine.tensor import Tensor


def additive_mask(mask: Tensor | None, masked_when: bool, dtype: Any) -> Tensor | None:
    """A float mask to add to attention scores: bool masks give ``-inf`` where ``mask == masked_when``."""
    if mask is None or mask.dtype.kind == "f":
        return mask
    if mask.dtype.kind != "b":
        raise RuntimeError(f"only bool and floating types of masks are supported, got {mask.dtype}")
    blocked = mask if masked_when else ~mask
    return where(blocked, Tensor._make(mask._xp().asarray(-np.inf, dtype=dtype)), 0.0).to(dtype)


def attend(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, dropout_p: float, scale: float) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v`` and the attention weights (after dropout)."""
    scores = (query * scale).matmul(key.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores, -1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p)
    return weights.matmul(value), weights


def _causal_mask(target: int, source: int, like: Tensor) -> Tensor:
    xp = like._xp()
    allowed = xp.tril(xp.ones((target, source), dtype=bool))
    return Tensor._make(xp.where(allowed, 0.0, -np.inf).astype(like.dtype))


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(Q K^T / sqrt(d) + mask) V`` over the last two dims; a bool mask marks what may be attended."""
    if enable_gqa:
        raise NotImplementedError("enable_gqa is not supported")
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    mask = _causal_mask(query.shape[-2], key.shape[-2], query) if is_causal else additive_mask(attn_mask, False, query.dtype)
    return attend(query, key, value, mask, dropout_p, scale)[0]
