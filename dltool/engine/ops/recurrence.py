"""One direction of a recurrent layer (RNN tanh/relu, LSTM, GRU) over a whole sequence as one node.

The node takes the layer's input and both weights. The forward projects the input of every step
at once, then runs the time loop on raw arrays: one GEMM ``h W_hh^T`` per step into preallocated
buffers, the gates updated in place, their activations kept. The backward runs backpropagation
through time on raw arrays and takes each weight's and the input's gradient as one GEMM over all
steps, as cuDNN's and oneDNN's RNN primitives do. Under ``create_graph=True`` the backward
rebuilds the sequence from the cell compositions of ``ops.rnn`` instead, so higher derivatives are
exact. ``LSTMCellStep`` is one LSTM step with both projections, for an ``LSTMCell`` called in a
Python loop.

NOTE: the LSTM runs gate-major. A step's state is ``(H, N)`` and its gates one ``(4, H, N)``
block, so each gate is a contiguous slab: numpy's elementwise loops ran a backward step's gate
arithmetic in 64 against 134 us on the strided gate columns of a batch-major ``(N, 4H)`` block
(char-LM shape). The input projection comes out gate-major from a GEMM per step that reads the
input transposed (BLAS takes the transpose for free); the layer's outputs are written back
batch-major once per step, and the gradients of the input and the weights are GEMMs over the
gate gradients of all steps, kept as one ``(4H, T * N)`` matrix. GRU and the plain RNNs run
batch-major on one projection GEMM.

NOTE: the gates' nonlinearities come from one pass of a single function over the whole gate block
of a step, its pre-activations scaled per gate (through the weights and biases, once per
sequence; ``LSTMCellStep`` scales its pre-activations). An LSTM's gates come from ``exp``: sigmoid
is ``1 / (1 + exp(-x))`` and tanh is ``2 sigmoid(2x) - 1``, so its pre-activations are scaled by
-1 and, for the cell gate, -2 (numpy's float32 ``exp`` is about 1.7x faster than its ``tanh``; an
``exp`` that overflows gives the sigmoid's limit, 0). A GRU's come from ``tanh``: sigmoid is
``(tanh(x / 2) + 1) / 2``, as in ``ops.elementwise``, its sigmoid gates halved (its candidate's
pre-activation holds a product, which no scale of the weights reaches).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.engine import grad
from dltool.engine.autograd.function import Function
from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.ops._utils import sum_rows
from dltool.engine.ops.linalg import linear
from dltool.engine.ops.rnn import cell_step, lstm_cell_step, unbind_steps
from dltool.engine.ops.shape import stack
from dltool.engine.tensor import Tensor

# Per gate, in PyTorch's order, the scale of the pre-activations that the loops expect (see NOTE).
_GATE_SCALES = {"LSTM": (-1.0, -1.0, -2.0, -1.0), "GRU": (0.5, 0.5, 1.0)}


def _gate_scale(mode: str, hidden: int, dtype: Any, xp: Any) -> Any:
    """Per row of ``W_hh``, the scale of its gate's pre-activations, as a column ``(G * H, 1)``."""
    return xp.repeat(xp.asarray(_GATE_SCALES[mode], dtype=dtype), hidden)[:, None]


def _merged_bias(b_ih: Any, b_hh: Any) -> Any:
    """``b_ih + b_hh`` (either may be None): outside GRU's reset gate the two biases are one."""
    if b_ih is None or b_hh is None:
        return b_hh if b_ih is None else b_ih
    return b_ih + b_hh


def _projection(x: Any, w_ih: Any, bias: Any, xp: Any) -> Any:
    """``x W_ih^T + bias`` for every step of ``x`` (T, N, I) as one GEMM, (T, N, G * H)."""
    steps, batch, size = x.shape
    out = xp.matmul(x.reshape(steps * batch, size), w_ih.T)
    if bias is not None:
        out += bias
    return out.reshape(steps, batch, -1)


def _sigmoid_from_halved(v: Any) -> None:
    """``v`` holds ``tanh(x / 2)``; make it ``sigmoid(x)`` in place."""
    v += 1
    v *= 0.5


def _states(first: Any, steps: int, reverse: bool, xp: Any) -> tuple[Any, Any]:
    """Every step's state and each step's previous one (``first`` for the step that runs first),
    as two views of one buffer."""
    buffer = xp.empty((steps + 1,) + first.shape, dtype=first.dtype)
    if reverse:
        buffer[steps] = first
        return buffer[:steps], buffer[1:]
    buffer[0] = first
    return buffer[1:], buffer[:steps]


# =============================================================== one LSTM step, gate-major
# Shared by the sequence's loops and by ``LSTMCellStep``. ``gates`` is a step's (4, H, N) block in
# PyTorch's order i, f, g, o; every state is (H, N).


def _lstm_step(gates: Any, c_prev: Any, c: Any, tanh_c: Any, h: Any, product: Any, xp: Any) -> None:
    """One LSTM step from its scaled pre-activations ``gates``, which become the gates'
    activations in place; writes the cell state ``c``, ``tanh(c)`` and the hidden state ``h``.

    Call it where numpy's overflow warnings are off (``np.errstate(over="ignore")``)."""
    xp.exp(gates, out=gates)
    gates += 1
    xp.reciprocal(gates, out=gates)  # sigmoid(x) for i, f and o; sigmoid(2x) for g
    i, f, g, o = gates
    g *= 2
    g -= 1
    xp.multiply(f, c_prev, out=c)
    c += xp.multiply(i, g, out=product)
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)


def _lstm_step_backward(
    gates: Any, c_prev: Any, tanh_c: Any, dh: Any, dc: Any, grads: Any, work: Any, through_h: Any, xp: Any
) -> None:
    """One step of backpropagation through time from the step's activations ``gates``: writes the
    gradients of its pre-activations into ``grads`` (4, H, N) and turns ``dc``, the cell state's
    gradient from the later steps, into the previous cell state's. ``dh`` is the hidden state's
    gradient; ``work`` (4, H, N) and ``through_h`` (H, N) are scratch."""
    i, f, g, o = gates
    di, df, dg, do = grads
    xp.multiply(o, dh, out=through_h)  # h = o tanh(c)
    xp.subtract(1, o, out=work[3])
    work[3] *= through_h
    xp.multiply(work[3], tanh_c, out=do)
    xp.multiply(tanh_c, tanh_c, out=work[2])
    xp.subtract(1, work[2], out=work[2])
    work[2] *= through_h
    dc += work[2]
    xp.subtract(1, gates[:2], out=work[:2])  # c = f c_prev + i g
    work[:2] *= gates[:2]
    work[:2] *= dc
    xp.multiply(g, g, out=work[2])
    xp.subtract(1, work[2], out=work[2])
    work[2] *= i
    xp.multiply(work[0], g, out=di)
    xp.multiply(work[2], dc, out=dg)
    xp.multiply(work[1], c_prev, out=df)
    dc *= f


# =============================================================== forward loops on raw arrays
# Each takes the input ``x`` (T, N, I), the initial states (N, H), the weights and biases (either
# bias may be None) and the steps in the order they run; it returns the outputs (T, N, H), each
# step's previous hidden state (T, N, H), the last cell state (LSTM, else None) and what its
# backward needs.


def _lstm_forward(
    x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, order: range, xp: Any
) -> tuple:
    steps, batch = x.shape[:2]
    hidden = w_hh.shape[1]
    scale = _gate_scale("LSTM", hidden, x.dtype, xp)
    bias = _merged_bias(b_ih, b_hh)
    bias = None if bias is None else bias[:, None] * scale
    w_hh = w_hh * scale
    gates = xp.matmul(w_ih * scale, x.transpose(0, 2, 1))  # every step's (4H, N), one GEMM each
    out, h_prev = _states(h0, steps, order.step < 0, xp)
    cells, c_prev = _states(c0.T, steps, order.step < 0, xp)
    tanh_c = xp.empty_like(cells)
    proj, h, product = xp.empty_like(gates[0]), xp.empty_like(cells[0]), xp.empty_like(cells[0])
    h_t = xp.ascontiguousarray(h0.T)
    with np.errstate(over="ignore"):
        for t in order:
            a = gates[t]
            if bias is not None:
                a += bias
            a += xp.matmul(w_hh, h_t, out=proj)
            _lstm_step(a.reshape(4, hidden, batch), c_prev[t], cells[t], tanh_c[t], h, product, xp)
            out[t] = h.T
            h_t = h
    c_n = cells[order[-1]].T.copy()
    return out, h_prev, c_n, (gates, c_prev, tanh_c)


def _gru_forward(
    x: Any, h0: Any, c0: None, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, order: range, xp: Any
) -> tuple:
    hidden = w_hh.shape[1]
    scale = _gate_scale("GRU", hidden, x.dtype, xp)
    xs = _projection(x, w_ih * scale, None if b_ih is None else b_ih * scale[:, 0], xp)
    w_t, b = (w_hh * scale).T, None if b_hh is None else b_hh * scale[:, 0]
    hidden_proj = xp.empty_like(xs)
    out, h_prev = _states(h0, xs.shape[0], order.step < 0, xp)
    product = xp.empty_like(h0)
    for t in order:
        a, hg = xs[t], hidden_proj[t]
        xp.matmul(h_prev[t], w_t, out=hg)
        if b is not None:
            hg += b
        rz, n = a[:, : 2 * hidden], a[:, 2 * hidden :]
        rz += hg[:, : 2 * hidden]
        xp.tanh(rz, out=rz)
        _sigmoid_from_halved(rz)
        n += xp.multiply(a[:, :hidden], hg[:, 2 * hidden :], out=product)  # r * (W_hn h + b_hn)
        xp.tanh(n, out=n)
        xp.subtract(h_prev[t], n, out=out[t])
        out[t] *= a[:, hidden : 2 * hidden]
        out[t] += n
    return out, h_prev, None, (xs, hidden_proj[:, :, 2 * hidden :])


def _rnn_forward(
    x: Any, h0: Any, c0: None, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any, order: range, xp: Any, relu: bool
) -> tuple:
    xs, w_t, b = _projection(x, w_ih, None, xp), w_hh.T, _merged_bias(b_ih, b_hh)
    out, h_prev = _states(h0, xs.shape[0], order.step < 0, xp)
    for t in order:
        v = out[t]
        xp.matmul(h_prev[t], w_t, out=v)
        v += xs[t]
        if b is not None:
            v += b
        if relu:
            xp.maximum(v, 0, out=v)
        else:
            xp.tanh(v, out=v)
    return out, h_prev, None, (out,)


# =============================================================== backpropagation through time
# Each takes what its forward kept, each step's previous hidden state, the outputs' gradient
# (T, N, H) or None, the last states' gradients (N, H) (copies, which it may update in place),
# ``W_hh``, the steps in the order backward visits them and whether the initial states' gradients
# are wanted (if not, the GEMM of the step that runs first, which would make them, is skipped). It
# returns, as (T * N, G * H) matrices, the gradients of the input projection ``x W_ih^T + b_ih``
# and of the hidden projection ``h W_hh^T + b_hh`` for every step (the same matrix, except for
# GRU), then the initial states' gradients (None where not wanted).


def _lstm_backward(
    saved: tuple, h_prev: Any, dout: Any, dh: Any, dc: Any, w_hh: Any, order: range, initial: bool, xp: Any
) -> tuple:
    gates, c_prev, tanh_c = saved
    steps, size, batch = gates.shape
    hidden = size // 4
    dh, dc = dh.T.copy(), dc.T.copy()  # gate-major
    grads = xp.empty((4, hidden, steps, batch), dtype=gates.dtype)  # step t's are grads[:, :, t]
    by_step = grads.reshape(size, steps, batch)
    work, through_h = xp.empty((4, hidden, batch), dtype=gates.dtype), xp.empty_like(dh)
    for t in order:
        if dout is not None:
            dh += dout[t].T
        step = gates[t].reshape(4, hidden, batch)
        _lstm_step_backward(step, c_prev[t], tanh_c[t], dh, dc, grads[:, :, t], work, through_h, xp)
        if t != order[-1] or initial:
            xp.matmul(w_hh.T, by_step[:, t], out=dh)
    by_row = grads.reshape(size, steps * batch).T  # row t * N + n, as the input's rows
    return by_row, by_row, dh.T.copy() if initial else None, dc.T.copy()


def _gru_backward(
    saved: tuple, h_prev: Any, dout: Any, dh: Any, dc: None, w_hh: Any, order: range, initial: bool, xp: Any
) -> tuple:
    acts, hidden_n = saved
    steps, batch, size = acts.shape
    gates = acts.reshape(steps, batch, 3, size // 3)
    dx, dhidden = xp.empty_like(gates), xp.empty_like(gates)
    slope_z, product = xp.empty_like(dh), xp.empty_like(dh)
    for t in order:
        r, z, n = (gates[t, :, k] for k in range(3))
        dr, dz, dn = (dx[t, :, k] for k in range(3))
        if dout is not None:
            dh += dout[t]
        xp.multiply(n, n, out=dn)  # h = n + z (h_prev - n), n = tanh(x_n + r hidden_n)
        xp.subtract(1, dn, out=dn)
        dn *= xp.subtract(1, z, out=slope_z)
        dn *= dh
        slope_z *= z
        xp.subtract(h_prev[t], n, out=dz)
        dz *= slope_z
        dz *= dh
        xp.subtract(1, r, out=dr)
        dr *= r
        dr *= hidden_n[t]
        dr *= dn
        dhidden[t, :, :2] = dx[t, :, :2]
        xp.multiply(dn, r, out=dhidden[t, :, 2])
        if t != order[-1] or initial:
            dh *= z
            dh += xp.matmul(dhidden[t].reshape(batch, size), w_hh, out=product)
    rows = steps * batch
    return dx.reshape(rows, size), dhidden.reshape(rows, size), dh if initial else None, None


def _rnn_backward(
    saved: tuple,
    h_prev: Any,
    dout: Any,
    dh: Any,
    dc: None,
    w_hh: Any,
    order: range,
    initial: bool,
    xp: Any,
    relu: bool,
) -> tuple:
    (out,) = saved
    slope = (out > 0).astype(out.dtype) if relu else 1 - out * out
    dx = xp.empty_like(out)
    for t in order:
        if dout is not None:
            dh += dout[t]
        xp.multiply(dh, slope[t], out=dx[t])
        if t != order[-1] or initial:
            xp.matmul(dx[t], w_hh, out=dh)
    dx = dx.reshape(-1, dx.shape[2])
    return dx, dx, dh if initial else None, None


_LOOPS = {
    "LSTM": (_lstm_forward, _lstm_backward),
    "GRU": (_gru_forward, _gru_backward),
    "RNN_TANH": (functools.partial(_rnn_forward, relu=False), functools.partial(_rnn_backward, relu=False)),
    "RNN_RELU": (functools.partial(_rnn_forward, relu=True), functools.partial(_rnn_backward, relu=True)),
}


# =============================================================== the node


def _data(value: Any) -> Any:
    return value._data if isinstance(value, Tensor) else value


class Recurrence(Function):
    """One direction of a recurrent layer over a whole sequence, input projection included, as
    one node: ``recurrence`` below. The loops of ``_LOOPS`` do the work on raw arrays (see the
    module's docstring); the backward takes every weight's and the input's gradient from theirs."""

    array_gradients = True

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mode, reverse):
        xp = x._xp()
        order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        arrays = (_data(t) for t in (x, h0, c0, w_ih, w_hh, b_ih, b_hh))
        out, h_prev, c_n, saved = _LOOPS[mode][0](*arrays, order, xp)
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, out)
        ctx.mode, ctx.order, ctx.h_prev, ctx.saved_arrays = mode, order, h_prev, saved
        ctx.set_materialize_grads(False)
        h_n = out[order[-1]].copy()
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    @staticmethod
    def backward(ctx, grad_output, grad_h, grad_c=None):
        inputs = ctx.saved_tensors[:7]  # the outputs are checked too: h_prev is a view of them
        if _grad_state.enabled:  # create_graph: differentiable again through the compositions
            sequence = functools.partial(_composed, ctx.mode, reverse=ctx.order.step < 0)
            return *_rebuilt_backward(ctx, inputs, (grad_output, grad_h, grad_c), sequence), None, None
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = (_data(t) for t in inputs)
        xp = backend.array_module(x)
        needs = ctx.needs_input_grad
        dh = xp.zeros_like(h0) if grad_h is None else _data(grad_h).copy()
        dc = None if c0 is None else (xp.zeros_like(c0) if grad_c is None else _data(grad_c).copy())
        dout = _data(grad_output)
        backward = _LOOPS[ctx.mode][1]
        d_input, d_hidden, dh, dc = backward(
            ctx.saved_arrays, ctx.h_prev, dout, dh, dc, w_hh, ctx.order[::-1], needs[1], xp
        )
        # every weight's and the input's gradient as one GEMM over all steps
        dx = (d_input @ w_ih).reshape(x.shape) if needs[0] else None
        dw_ih = d_input.T @ x.reshape(-1, x.shape[2]) if needs[3] else None
        dw_hh = d_hidden.T @ ctx.h_prev.reshape(-1, ctx.h_prev.shape[2]) if needs[4] else None
        db_ih = sum_rows(d_input) if b_ih is not None and needs[5] else None
        db_hh = None
        if b_hh is not None and needs[6]:
            db_hh = sum_rows(d_hidden) if d_hidden is not d_input or db_ih is None else db_ih.copy()
        return dx, dh, dc if needs[2] else None, dw_ih, dw_hh, db_ih, db_hh, None, None


def _composed(
    mode: str,
    x: Tensor,
    h: Tensor,
    c: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    reverse: bool,
) -> tuple:
    """The same sequence as a composition of the cells' engine ops (differentiable to any order)."""
    steps, w_hh_t = unbind_steps(linear(x, w_ih, b_ih)), w_hh.t()
    outputs: list[Any] = [None] * len(steps)
    for t in reversed(range(len(steps))) if reverse else range(len(steps)):
        h, c = cell_step(mode, steps[t], h, c, w_hh_t, b_hh)
        outputs[t] = h
    return stack(outputs), h, c


def _rebuilt_backward(ctx: Any, inputs: tuple, grad_outputs: tuple, composed: Any) -> tuple:
    """The gradients of ``inputs`` as a graph of their own: ``composed(*inputs)`` rebuilt from
    clones of them (where the inner ``grad`` stops) and differentiated with ``create_graph=True``."""
    needs = ctx.needs_input_grad[: len(inputs)]
    inputs = tuple(t.clone() if need else t for t, need in zip(inputs, needs, strict=True))
    outputs = composed(*inputs)
    pairs = [(y, g) for y, g in zip(outputs, grad_outputs, strict=True) if g is not None]
    wanted = [t for t, need in zip(inputs, needs, strict=True) if need]
    found = iter(
        grad([y for y, _ in pairs], wanted, [g for _, g in pairs], create_graph=True, allow_unused=True)
    )
    return tuple(next(found) if need else None for need in needs)


def recurrence(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None,
    bias_hh: Tensor | None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one direction of a recurrent layer over a sequence.

    Args:
        mode: ``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"`` or ``"GRU"``; gate order and formulas are
            PyTorch's.
        x: the input of every step, ``(T, N, I)``.
        h0: the initial hidden state ``(N, H)``.
        c0: the initial cell state ``(N, H)`` for LSTM, else None.
        weight_ih: ``W_ih``, ``(G * H, I)``.
        weight_hh: ``W_hh``, ``(G * H, H)``.
        bias_ih: ``b_ih``, ``(G * H,)``, or None.
        bias_hh: ``b_hh``, ``(G * H,)``, or None.
        reverse: run the steps from last to first.

    Returns:
        The hidden states of all steps ``(T, N, H)``, the last step's hidden state and, for LSTM,
        its cell state (else None).
    """
    result = Recurrence.apply(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mode, reverse)
    return result if len(result) == 3 else (*result, None)


# =============================================================== one LSTM step (LSTMCell)


class LSTMCellStep(Function):
    """One LSTM step with both projections (``LSTMCell``) as one node.

    A cell called in a Python loop would otherwise record a dozen nodes per step (two linears,
    adds, a split, five activations, products); here the forward runs ``_lstm_step`` on raw
    arrays after the two GEMMs, and the backward runs ``_lstm_step_backward``, then one GEMM per
    operand gradient. Gate-major as the sequence's loops: the GEMMs read the batch-major inputs
    transposed and the new states are copied back batch-major. Under ``create_graph=True`` it
    differentiates the composition of ``ops.rnn`` instead.
    """

    array_gradients = True

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b_ih, b_hh):
        xp = x._xp()
        a = xp.matmul(w_ih._data, x._data.T)  # (4H, N)
        a += xp.matmul(w_hh._data, h._data.T)
        for b in (b_ih, b_hh):
            if b is not None:
                a += b._data[:, None]
        hidden = w_hh.shape[1]
        a *= _gate_scale("LSTM", hidden, a.dtype, xp)
        gates, c_prev = a.reshape(4, hidden, -1), c._data.T
        c_next, tanh_c, h_next, product = (xp.empty_like(a[:hidden]) for _ in range(4))
        with np.errstate(over="ignore"):
            _lstm_step(gates, c_prev, c_next, tanh_c, h_next, product, xp)
        ctx.save_for_backward(x, h, c, w_ih, w_hh, b_ih, b_hh)
        ctx.saved_arrays = (gates, c_prev, tanh_c)
        ctx.set_materialize_grads(False)
        return h_next.T.copy(), c_next.T.copy()

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        inputs = ctx.saved_tensors
        if _grad_state.enabled:  # create_graph: differentiable again through the composition
            return _rebuilt_backward(ctx, inputs, (grad_h, grad_c), _composed_lstm_cell)
        x, h, c, w_ih, w_hh, b_ih, b_hh = (_data(t) for t in inputs)
        xp = backend.array_module(x)
        gates, c_prev, tanh_c = ctx.saved_arrays
        dh = xp.zeros_like(tanh_c) if grad_h is None else _data(grad_h).T.copy()  # gate-major
        dc = xp.zeros_like(tanh_c) if grad_c is None else _data(grad_c).T.copy()
        grads = xp.empty_like(gates)
        _lstm_step_backward(gates, c_prev, tanh_c, dh, dc, grads, xp.empty_like(gates), xp.empty_like(dh), xp)
        d = grads.reshape(-1, grads.shape[2]).T  # (N, 4H), as the inputs' rows
        needs = ctx.needs_input_grad
        db = sum_rows(d) if needs[5] or needs[6] else None
        return (
            d @ w_ih if needs[0] else None,
            d @ w_hh if needs[1] else None,
            dc.T.copy() if needs[2] else None,
            d.T @ x if needs[3] else None,
            d.T @ h if needs[4] else None,
            db if needs[5] else None,
            db.copy() if needs[6] else None,
        )


def _composed_lstm_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None
) -> tuple:
    return lstm_cell_step(linear(x, w_ih, b_ih), h, c, w_hh.t(), b_hh)


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None,
    bias_hh: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step ``(h, c) -> (h', c')`` from the input ``x`` ``(N, I)`` with PyTorch's gates.

    Args:
        x: the step's input ``(N, I)``.
        h: the hidden state ``(N, H)``.
        c: the cell state ``(N, H)``.
        weight_ih: ``W_ih``, ``(4 * H, I)``.
        weight_hh: ``W_hh``, ``(4 * H, H)``.
        bias_ih: ``b_ih``, ``(4 * H,)``, or None.
        bias_hh: ``b_hh``, ``(4 * H,)``, or None.

    Returns:
        The next hidden and cell states, each ``(N, H)``.
    """
    return LSTMCellStep.apply(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
