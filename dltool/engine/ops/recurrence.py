"""One direction of a recurrent layer (RNN tanh/relu, LSTM, GRU) over a whole sequence as one node.

The input projection of every step comes in already computed (one GEMM, outside). The forward
runs the time loop on raw arrays: one GEMM ``h @ W_hh^T`` per step into preallocated buffers, the
gates updated in place, their activations kept. The backward runs backpropagation through time on
raw arrays and takes ``W_hh``'s gradient as one GEMM over all steps, as cuDNN's and oneDNN's RNN
primitives do. Under ``create_graph=True`` the backward rebuilds the sequence from the cell
compositions of ``ops.rnn`` instead, so higher derivatives are exact. ``LSTMCellStep`` is one
such step with its input projection, for an ``LSTMCell`` called in a Python loop.

NOTE: the gates' nonlinearities come from one pass of a single function over the whole gate block
of a step, its pre-activations scaled per gate (the rows of ``W_hh`` and the bias once per
sequence, the input projection as a step copies it into its own buffer; ``LSTMCellStep`` scales its
pre-activations). An LSTM's gates come from ``exp``: sigmoid is ``1 / (1 + exp(-x))`` and tanh is
``2 sigmoid(2x) - 1``, so its pre-activations are scaled by -1 and, for the cell gate, -2 (numpy's
float32 ``exp`` is about 1.7x faster than its ``tanh``; an ``exp`` that overflows gives the
sigmoid's limit, 0). A GRU's come from ``tanh``: sigmoid is ``(tanh(x / 2) + 1) / 2``, as in
``ops.elementwise``, its sigmoid gates halved (its candidate's pre-activation holds a product,
which no scale of the weights reaches).
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


def _gate_scale(mode: str, weight_shape: tuple, dtype: Any, xp: Any) -> Any:
    """Per row of ``W_hh``, the scale of its gate's pre-activations; None for the plain RNNs."""
    if mode not in _GATE_SCALES:
        return None
    return xp.repeat(xp.asarray(_GATE_SCALES[mode], dtype=dtype), weight_shape[1])


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


# =============================================================== forward loops on raw arrays
# Each takes the input projection ``xs`` (T, N, G*H), the initial states, ``W_hh^T`` and ``b_hh``
# (both scaled by ``scale``, the gates' scale of the pre-activations, None for the plain RNNs),
# and the steps in the order they run; it returns the states (T, N, H), each step's previous
# state, the last cell state (LSTM) and what its backward needs. The gated cells scale ``xs`` into
# a buffer of their own and turn it into the gates' activations in place.


def _lstm_step(a: Any, c_prev: Any, c: Any, tanh_c: Any, h: Any, product: Any, xp: Any) -> None:
    """One LSTM step from its scaled pre-activations ``a`` (N, 4H), which become the gates'
    activations in place; writes the cell state ``c``, ``tanh(c)`` and the hidden state ``h``.

    Call it where numpy's overflow warnings are off (``np.errstate(over="ignore")``)."""
    hidden = a.shape[1] // 4
    xp.exp(a, out=a)
    a += 1
    xp.reciprocal(a, out=a)  # sigmoid(x) for i, f and o; sigmoid(2x) for g
    i, f, g, o = (a[:, k * hidden : (k + 1) * hidden] for k in range(4))
    g *= 2
    g -= 1
    xp.multiply(f, c_prev, out=c)
    c += xp.multiply(i, g, out=product)
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)


def _lstm_forward(xs: Any, h0: Any, c0: Any, w_t: Any, b: Any, scale: Any, order: range, xp: Any) -> tuple:
    out, h_prev = _states(h0, xs.shape[0], order.step < 0, xp)
    cells, c_prev = _states(c0, xs.shape[0], order.step < 0, xp)
    acts, tanh_c = xp.empty_like(xs), xp.empty_like(out)
    proj, product = xp.empty_like(xs[0]), xp.empty_like(h0)
    with np.errstate(over="ignore"):
        for t in order:  # a step's scaling and bias in its own buffer, which stays in cache
            a = xp.multiply(xs[t], scale, out=acts[t])
            if b is not None:
                a += b
            a += xp.matmul(h_prev[t], w_t, out=proj)
            _lstm_step(a, c_prev[t], cells[t], tanh_c[t], out[t], product, xp)
    return out, h_prev, cells[order[-1]].copy(), (acts, c_prev, tanh_c)


def _gru_forward(xs: Any, h0: Any, c0: None, w_t: Any, b: Any, scale: Any, order: range, xp: Any) -> tuple:
    xs = xs * scale
    hidden = xs.shape[2] // 3
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
    xs: Any, h0: Any, c0: None, w_t: Any, b: Any, scale: None, order: range, xp: Any, relu: bool
) -> tuple:
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
# Each takes what its forward kept, the previous states, the outputs' gradient (or None), the
# last states' gradients (buffers it updates in place), ``W_hh`` and the steps in the order
# backward visits them. It returns the gradients of the input projection and of the hidden
# projection ``h W_hh^T + b_hh`` for every step (one array, except for GRU), and of the initial
# states. Every step works in buffers of one step's size, which stay in cache.


def _lstm_backward(
    saved: tuple, h_prev: Any, dout: Any, dh: Any, dc: Any, w: Any, order: range, xp: Any
) -> tuple:
    acts, c_prev, tanh_c = saved
    steps, batch, size = acts.shape
    gates = acts.reshape(steps, batch, 4, size // 4)
    dx, through_h = xp.empty_like(gates), xp.empty_like(dh)
    for t in order:
        i, f, g, o = (gates[t, :, k] for k in range(4))
        d = dx[t]
        if dout is not None:
            dh += dout[t]
        xp.multiply(tanh_c[t], tanh_c[t], out=through_h)  # h = o tanh(c)
        xp.subtract(1, through_h, out=through_h)
        through_h *= o
        dc += xp.multiply(through_h, dh, out=through_h)
        xp.subtract(1, gates[t], out=d)
        d *= gates[t]  # sigmoid's slope, for i, f and o
        d[:, 3] *= tanh_c[t]
        d[:, 3] *= dh
        d[:, 0] *= g
        d[:, 1] *= c_prev[t]
        xp.multiply(g, g, out=d[:, 2])
        xp.subtract(1, d[:, 2], out=d[:, 2])
        d[:, 2] *= i
        d[:, :3] *= dc[:, None]
        dc *= f
        xp.matmul(d.reshape(batch, size), w, out=dh)
    dx = dx.reshape(steps, batch, size)
    return dx, dx, dh, dc


def _gru_backward(
    saved: tuple, h_prev: Any, dout: Any, dh: Any, dc: None, w: Any, order: range, xp: Any
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
        dh *= z
        dh += xp.matmul(dhidden[t].reshape(batch, size), w, out=product)
    return dx.reshape(steps, batch, size), dhidden.reshape(steps, batch, size), dh, None


def _rnn_backward(
    saved: tuple,
    h_prev: Any,
    dout: Any,
    dh: Any,
    dc: None,
    w: Any,
    order: range,
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
        xp.matmul(dx[t], w, out=dh)
    return dx, dx, dh, None


_LOOPS = {
    "LSTM": (_lstm_forward, _lstm_backward),
    "GRU": (_gru_forward, _gru_backward),
    "RNN_TANH": (functools.partial(_rnn_forward, relu=False), functools.partial(_rnn_backward, relu=False)),
    "RNN_RELU": (functools.partial(_rnn_forward, relu=True), functools.partial(_rnn_backward, relu=True)),
}


# =============================================================== the node


class Recurrence(Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_hh, b_hh, mode, reverse):
        xp = x._xp()
        steps = x.shape[0]
        xs, w_t, b = x._data, w_hh._data.T, None if b_hh is None else b_hh._data
        scale = _gate_scale(mode, w_hh.shape, x.dtype, xp)
        if scale is not None:
            w_t, b = (w_hh._data * scale[:, None]).T, None if b is None else b * scale
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        c0_data = None if c0 is None else c0._data
        out, h_prev, c_n, saved = _LOOPS[mode][0](xs, h0._data, c0_data, w_t, b, scale, order, xp)
        ctx.save_for_backward(x, h0, c0, w_hh, b_hh, out)
        ctx.mode, ctx.order, ctx.h_prev, ctx.saved_arrays = mode, order, h_prev, saved
        ctx.set_materialize_grads(False)
        h_n = out[order[-1]].copy()
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    @staticmethod
    def backward(ctx, grad_output, grad_h, grad_c=None):
        x, h0, c0, w_hh, b_hh, _ = ctx.saved_tensors  # the outputs are checked: h_prev is a view of them
        if _grad_state.enabled:  # create_graph: differentiable again through the compositions
            sequence = functools.partial(_composed, ctx.mode, reverse=ctx.order.step < 0)
            grads = _rebuilt_backward(ctx, (x, h0, c0, w_hh, b_hh), (grad_output, grad_h, grad_c), sequence)
            return *grads, None, None
        xp = x._xp()
        dh = xp.zeros_like(h0._data) if grad_h is None else grad_h._data.copy()
        dc = None if c0 is None else (xp.zeros_like(c0._data) if grad_c is None else grad_c._data.copy())
        dout = None if grad_output is None else grad_output._data
        backward = _LOOPS[ctx.mode][1]
        dx, dhidden, dh, dc = backward(
            ctx.saved_arrays, ctx.h_prev, dout, dh, dc, w_hh._data, ctx.order[::-1], xp
        )
        needs = ctx.needs_input_grad
        dw = None
        if needs[3]:  # all steps' products at once
            dw = dhidden.reshape(-1, dhidden.shape[2]).T @ ctx.h_prev.reshape(-1, ctx.h_prev.shape[2])
        db = sum_rows(dhidden.reshape(-1, dhidden.shape[2])) if b_hh is not None and needs[4] else None
        grads = (dx if needs[0] else None, dh if needs[1] else None, dc if needs[2] else None, dw, db)
        return *(None if g is None else Tensor._make(g) for g in grads), None, None


def _composed(
    mode: str, x: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, reverse: bool
) -> tuple:
    """The same sequence as a composition of the cells' engine ops (differentiable to any order)."""
    steps, w_hh_t = unbind_steps(x), w_hh.t()
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
    x_proj: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    reverse: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one direction of a recurrent layer over a sequence from its input projection.

    Args:
        mode: ``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"`` or ``"GRU"``; gate order and formulas are
            PyTorch's.
        x_proj: ``x W_ih^T + b_ih`` for every step, ``(T, N, G * H)``.
        h0: the initial hidden state ``(N, H)``.
        c0: the initial cell state ``(N, H)`` for LSTM, else None.
        weight_hh: ``W_hh``, ``(G * H, H)``.
        bias_hh: ``b_hh``, ``(G * H,)``, or None. Outside GRU it adds to the pre-activations as
            ``b_ih`` does, so a layer passes ``b_ih + b_hh`` here and an input projection without bias.
        reverse: run the steps from last to first.

    Returns:
        The hidden states of all steps ``(T, N, H)``, the last step's hidden state and, for LSTM,
        its cell state (else None).
    """
    result = Recurrence.apply(x_proj, h0, c0, weight_hh, bias_hh, mode, reverse)
    return result if len(result) == 3 else (*result, None)


# =============================================================== one LSTM step (LSTMCell)


class LSTMCellStep(Function):
    """One LSTM step with both projections (``LSTMCell``) as one node.

    A cell called in a Python loop would otherwise record a dozen nodes per step (two linears,
    adds, a split, five activations, products); here the forward runs ``_lstm_step`` on raw
    arrays after the two GEMMs, and the backward runs one step of the sequence's BPTT, then one
    GEMM per operand gradient. Under ``create_graph=True`` it differentiates the composition of
    ``ops.rnn`` instead.
    """

    array_gradients = True

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b_ih, b_hh):
        xp = x._xp()
        a = xp.matmul(x._data, w_ih._data.T)
        a += xp.matmul(h._data, w_hh._data.T)
        for b in (b_ih, b_hh):
            if b is not None:
                a += b._data
        a *= _gate_scale("LSTM", w_hh.shape, a.dtype, xp)
        c_next, tanh_c, h_next = xp.empty_like(c._data), xp.empty_like(c._data), xp.empty_like(h._data)
        with np.errstate(over="ignore"):
            _lstm_step(a, c._data, c_next, tanh_c, h_next, xp.empty_like(c_next), xp)
        ctx.save_for_backward(x, h, c, w_ih, w_hh, b_ih, b_hh)
        ctx.saved_arrays = (a[None], c._data[None], tanh_c[None])
        ctx.set_materialize_grads(False)
        return h_next, c_next

    @staticmethod
    def backward(ctx, grad_h, grad_c):
        inputs = ctx.saved_tensors
        if _grad_state.enabled:  # create_graph: differentiable again through the composition
            return _rebuilt_backward(ctx, inputs, (grad_h, grad_c), _composed_lstm_cell)
        x, h, c, w_ih, w_hh, b_ih, b_hh = (None if t is None else t._data for t in inputs)
        xp = backend.array_module(x)
        dh = xp.zeros_like(h) if grad_h is None else _data(grad_h).copy()
        dc = xp.zeros_like(c) if grad_c is None else _data(grad_c).copy()
        d, _, dh, dc = _lstm_backward(ctx.saved_arrays, None, None, dh, dc, w_hh, range(1), xp)
        d = d[0]
        needs = ctx.needs_input_grad
        db = sum_rows(d) if needs[5] or needs[6] else None
        return (
            d @ w_ih if needs[0] else None,
            dh if needs[1] else None,
            dc if needs[2] else None,
            d.T @ x if needs[3] else None,
            d.T @ h if needs[4] else None,
            db if needs[5] else None,
            db if needs[6] else None,
        )


def _data(value: Any) -> Any:
    return value._data if isinstance(value, Tensor) else value


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
