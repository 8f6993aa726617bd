"""``MultiheadAttention``, with PyTorch's parameters (``in_proj_weight``, ``out_proj``) and masks."""

from __future__ import annotations

import math
from typing import Any

from dltool.engine.creation import empty
from dltool.engine.nn import functional as F
from dltool.engine.nn import init
from dltool.engine.nn.modules.linear import Linear
from dltool.engine.nn.modules.module import Module
from dltool.engine.nn.parameter import Parameter
from dltool.engine.ops.attention import additive_mask, attend
from dltool.engine.tensor import Tensor


class NonDynamicallyQuantizableLinear(Linear):
    """The output projection of ``MultiheadAttention``; PyTorch's name, so state dicts and reprs match."""


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim // num_heads`` features each.

    Inputs are ``(L, N, E)`` (``(N, L, E)`` with ``batch_first``). Bool masks mark what is *not*
    attended (``True`` = masked), float masks are added to the scores, as in PyTorch.
    ``add_bias_kv`` and ``add_zero_attn`` are not supported.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and num_heads={num_heads} instead"
            )
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("add_bias_kv and add_zero_attn are not supported")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = (
            embed_dim,
            num_heads,
            dropout,
            batch_first,
        )
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        factory = dict(device=device, dtype=dtype)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty((3 * embed_dim, embed_dim), **factory))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty((embed_dim, embed_dim), **factory))
            self.k_proj_weight = Parameter(empty((embed_dim, self.kdim), **factory))
            self.v_proj_weight = Parameter(empty((embed_dim, self.vdim), **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def _projections(self) -> tuple:
        if self._qkv_same_embed_dim:
            weights = self.in_proj_weight.chunk(3)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        return tuple(zip(weights, biases, strict=True))

    def _combined_mask(
        self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, shape: tuple, dtype: Any
    ) -> Tensor | None:
        """One additive mask ``(N*H or 1, L, S)`` from ``attn_mask`` and ``key_padding_mask``."""
        target, source, batch = shape
        mask = additive_mask(attn_mask, True, dtype)
        if mask is not None:
            expected = (target, source) if mask.ndim == 2 else (batch * self.num_heads, target, source)
            if mask.ndim not in (2, 3) or tuple(mask.shape) != expected:
                raise RuntimeError(
                    f"The shape of the {mask.ndim}D attn_mask is {tuple(mask.shape)}, but should be {expected}."
                )
            mask = mask.unsqueeze(0) if mask.ndim == 2 else mask
        padding = additive_mask(key_padding_mask, True, dtype)
        if padding is not None:
            if tuple(padding.shape) != (batch, source):
                raise RuntimeError(
                    f"expecting key_padding_mask shape of {(batch, source)}, but got {tuple(padding.shape)}"
                )
            padding = padding.reshape(batch, 1, 1, source).expand(batch, self.num_heads, 1, source)
            padding = padding.reshape(batch * self.num_heads, 1, source)
            mask = padding if mask is None else mask + padding
        return mask

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "Need attn_mask if specifying the is_causal hint. You may use the Transformer module method "
                "`generate_square_subsequent_mask` to create this mask."
            )
        batched = query.ndim == 3
        if batched and self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        elif not batched:
            query, key, value = (x.unsqueeze(1) for x in (query, key, value))
            key_padding_mask = key_padding_mask.unsqueeze(0) if key_padding_mask is not None else None
        target, batch, embed = query.shape
        source = key.shape[0]
        if embed != self.embed_dim:
            raise RuntimeError(f"was expecting embedding dimension of {self.embed_dim}, but got {embed}")
        heads, head_dim = self.num_heads, self.head_dim
        q, k, v = (
            F.linear(x, w, b).reshape(x.shape[0], batch * heads, head_dim).transpose(0, 1)
            for x, (w, b) in zip((query, key, value), self._projections(), strict=True)
        )
        mask = self._combined_mask(attn_mask, key_padding_mask, (target, source, batch), q.dtype)
        out, weights = attend(
            q, k, v, mask, self.dropout if self.training else 0.0, 1.0 / math.sqrt(head_dim)
        )
        out = F.linear(
            out.transpose(0, 1).reshape(target * batch, embed), self.out_proj.weight, self.out_proj.bias
        )
        out = out.reshape(target, batch, embed)
        if need_weights:
            weights = weights.reshape(batch, heads, target, source)
            weights = weights.mean(dim=1) if average_attn_weights else weights
        if not batched:
            out = out.squeeze(1)
            weights = weights.squeeze(0) if need_weights else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (weights if need_weights else None)
