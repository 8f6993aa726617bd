"""Recurrent cells (RNN tanh/relu, LSTM, GRU) as compositions, and the multi-output split they use.

A recurrence touches one time step of a tensor at a time. Indexing ``x[t]`` for every step would
give each step's backward a zero-filled copy of all of ``x`` (quadratic in the length);
``SplitViews`` hands out every piece at once and its backward concatenates the pieces' gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

from dltool.engine.autograd.function import Function
from dltool.engine.ops.elementwise import relu, sigmoid, tanh
from dltool.engine.ops.shape import cat
from dltool.engine.tensor import Tensor


class SplitViews(Function):
    @staticmethod
    def forward(ctx, x, sizes, dim):
        ctx.dim, ctx.sizes, ctx.meta = dim, sizes, (x.shape, x.dtype, x._xp())
        ctx.set_materialize_grads(False)
        xp = x._xp()
        bounds = [sum(sizes[:i]) for i in range(1, len(sizes))]
        return tuple(xp.split(x._data, bounds, axis=dim))

    @staticmethod
    def backward(ctx, *grads):
        shape, dtype, xp = ctx.meta
        pieces = []
        for grad, size in zip(grads, ctx.sizes, strict=True):
            if grad is None:
                piece_shape = shape[: ctx.dim] + (size,) + shape[ctx.dim + 1 :]
                grad = Tensor._make(xp.zeros(piece_shape, dtype=dtype))
            pieces.append(grad)
        return cat(pieces, ctx.dim), None, None


def split_views(x: Tensor, sizes: Sequence[int], dim: int) -> tuple[Tensor, ...]:
    """``x`` cut along ``dim`` into pieces of ``sizes``, with one gradient node for all of them."""
    return SplitViews.apply(x, tuple(sizes), dim)


def unbind_steps(x: Tensor) -> tuple[Tensor, ...]:
    """The time steps of ``(T, ...)`` as ``T`` tensors of shape ``(...)``."""
    return tuple(step.squeeze(0) for step in split_views(x, [1] * x.shape[0], 0))


def _chunks(gates: Tensor, count: int) -> tuple[Tensor, ...]:
    size = gates.shape[-1] // count
    return split_views(gates, [size] * count, gates.ndim - 1)


def rnn_cell_step(x_proj: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None, nonlinearity: str) -> Tensor:
    """Elman step ``act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` from the input projection ``x_proj``.

    Every step takes the hidden weight already transposed (``w_hh_t``), so a sequence transposes
    it once; ``b_hh`` may be ``None`` when it is folded into ``x_proj``.
    """
    pre = x_proj + _hidden_proj(h, w_hh_t, b_hh)
    return tanh(pre) if nonlinearity == "tanh" else relu(pre)


def lstm_cell_step(x_proj: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """LSTM step with PyTorch's gate order (input, forget, cell, output)."""
    i, f, g, o = _chunks(x_proj + _hidden_proj(h, w_hh_t, b_hh), 4)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return sigmoid(o) * tanh(c), c


def gru_cell_step(x_proj: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """GRU step with PyTorch's gate order (reset, update, new); ``r`` gates ``W_hn h + b_hn``.

    ``b_hh`` cannot be folded into ``x_proj`` here: its ``n`` part sits inside the reset gate.
    """
    x_r, x_z, x_n = _chunks(x_proj, 3)
    h_r, h_z, h_n = _chunks(_hidden_proj(h, w_hh_t, b_hh), 3)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return n + z * (h - n)


def cell_step(mode: str, x_proj: Tensor, h: Tensor, c: Tensor | None, w_hh_t: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """One time step of ``mode`` (``RNN_TANH``, ``RNN_RELU``, ``LSTM``, ``GRU``); ``c`` is the LSTM cell state."""
    if mode == "LSTM":
        return lstm_cell_step(x_proj, h, c, w_hh_t, b_hh)  # type: ignore[arg-type]
    if mode == "GRU":
        return gru_cell_step(x_proj, h, w_hh_t, b_hh), None
    return rnn_cell_step(x_proj, h, w_hh_t, b_hh, "tanh" if mode == "RNN_TANH" else "relu"), None


def _hidden_proj(h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    out = h.matmul(w_hh_t)
    return out if b_hh is None else out + b_hh
