"""The character LSTM of ``task=language_model`` trained by a hand-written numpy loop: the floor of
the ``char_lstm`` benchmark.

The same step as ``benchmarks.char_lstm``: ``RNNLanguageModel(cell="lstm")`` without dropout (an
embedding, stacked LSTM layers with PyTorch's gates i, f, g, o, a linear decoder) on (N, T) token
ids, the mean cross-entropy over every position, the gradient norm clipped, Adam; the recurrent
state (h, c) runs on from one step to the next, detached. Written out on raw float32 arrays:

- Layout: batch innermost. A step's state is (H, N) and its gates one (4, H, N) block, each gate
  a contiguous (H, N) slab: numpy's elementwise loops run two to four times slower on the strided
  gate columns of a batch-major (N, 4H) block, and slower still on slabs strided over the steps
  (adding a step's input projection took 86 us from a (4H, T * N) matrix, 18 us from a per-step
  buffer). So the time loops run on per-step buffers (T, ..., N), and the products that span
  every step (each weight's gradient, the decoder) read feature-major (features, T * N) copies,
  one GEMM each; the input projections and the inputs' gradients are batched GEMMs into per-step
  buffers. Biases ride in the GEMMs as a column of the weights against a row of ones under the
  inputs.
- Forward: per step one GEMM ``W_hh h`` and four passes over the gate block (add it to the input
  projection, exp, +1, reciprocal), two for g's ``2s - 1``, then the cell. The gate rows of the
  weights are scaled once per training step by -1 (i, f, o) and -2 (g), so exp of the GEMMs' output
  and the reciprocal give sigmoid(x) for i, f, o and sigmoid(2x) for g, which ``2s - 1`` makes
  tanh(x): numpy's float32 exp is faster than its tanh (106 against 176 us on a 1024 x 64 block
  here).
- Backward: backpropagation through time with each step's gate gradients written over that step's
  activations once read (the block is still in cache); per step one GEMM ``W_hh^T d`` for the
  previous state's gradient; then one transposing copy of all steps' gate gradients for the weight
  gradients' GEMMs.

It is the floor of an engine built on numpy's kernels, because it skips what an engine must do: no
graph is recorded and no Tensor or gradient bookkeeping happens per op; layouts, buffers and the
gates' scaling are chosen once for these shapes; the embedding's gradient is a batched product with
one-hot matrices. What it keeps is the arithmetic. Outside the matrix products it runs on one core,
as numpy's elementwise kernels do.
"""

from __future__ import annotations

import numpy as np

from benchmarks.numpy_layers import AdamFloor

# Per gate (i, f, g, o): what the GEMMs multiply the pre-activation by, so that exp takes them as they come.
GATE_SCALE = (-1.0, -1.0, -2.0, -1.0)


def _tanh(x: np.ndarray, out: np.ndarray) -> None:
    """``tanh(x)`` as ``2 / (1 + exp(-2x)) - 1``: five passes, faster than numpy's float32 tanh
    (34 against 44 us on a 256 x 64 block here). Needs ``np.errstate(over="ignore")``."""
    np.multiply(x, -2, out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(2, out, out=out)
    out -= 1


class _LSTMLayer:
    """One LSTM layer's buffers for (T, N) batches and its forward and backward loops.

    Args:
        weight_ih, weight_hh, bias_ih, bias_hh: the layer's parameters in PyTorch's layout (the
            arrays Adam updates in place).
        steps, batch: the sequence length T and batch size N.
    """

    def __init__(
        self,
        weight_ih: np.ndarray,
        weight_hh: np.ndarray,
        bias_ih: np.ndarray,
        bias_hh: np.ndarray,
        steps: int,
        batch: int,
    ) -> None:
        self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh = weight_ih, weight_hh, bias_ih, bias_hh
        hidden, inputs = weight_hh.shape[1], weight_ih.shape[1]
        t, n = steps, batch
        self.scale = np.repeat(np.array(GATE_SCALE, dtype=np.float32), hidden)[:, None]
        self.w_in = np.empty((4 * hidden, inputs + 1), dtype=np.float32)  # [W_ih | b_ih + b_hh], scaled
        self.w_hh = np.empty_like(weight_hh)  # scaled
        # each step's input projection, made its gates in place: i, f, o sigmoids, g tanh
        self.gates = np.empty((t, 4, hidden, n), dtype=np.float32)
        self.cells = np.empty((t + 1, hidden, n), dtype=np.float32)  # [0]: the carried cell state
        self.tanh_c = np.empty((t, hidden, n), dtype=np.float32)
        # [0]: the carried state; each step's state with a row of ones under it, the next layer's input
        self.states = np.ones((t + 1, hidden + 1, n), dtype=np.float32)
        self.out = np.empty((hidden + 1, t + 1, n), dtype=np.float32)  # the states, feature-major
        self.grad = np.empty((4 * hidden, t * n), dtype=np.float32)  # the gates' pre-activations'
        self.grad_hh = np.empty_like(weight_hh)
        self.grad_in = np.empty_like(self.w_in)  # [W_ih | bias]'s
        self.grad_x = np.empty((t, inputs, n), dtype=np.float32)
        self.proj = np.empty((4 * hidden, n), dtype=np.float32)
        self.work = np.empty((4, hidden, n), dtype=np.float32)
        self.dh, self.dc = np.empty((hidden, n), dtype=np.float32), np.empty((hidden, n), dtype=np.float32)

    def _scale_weights(self) -> None:
        np.multiply(self.weight_ih, self.scale, out=self.w_in[:, :-1])
        np.add(self.bias_ih, self.bias_hh, out=self.w_in[:, -1])
        self.w_in[:, -1] *= self.scale[:, 0]
        np.multiply(self.weight_hh, self.scale, out=self.w_hh)

    def forward(self, x: np.ndarray, h0: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Runs the layer from states ``h0``, ``c0`` (H, N) over ``x`` (T, inputs + 1, N), each
        step's input with a row of ones under it: the outputs in that layout, (T, H + 1, N), and
        feature-major, (H + 1, T * N)."""
        hidden, t, n = self.cells.shape[1], len(self.gates), self.cells.shape[2]
        self._scale_weights()
        np.matmul(self.w_in, x, out=self.gates.reshape(t, 4 * hidden, n))
        self.states[0, :-1], self.cells[0] = h0, c0
        proj, product = self.proj, self.proj[:hidden]
        with np.errstate(over="ignore"):  # exp's inf is a saturated gate: 1 / inf = 0
            for step in range(t):
                a = self.gates[step].reshape(4 * hidden, n)
                a += np.matmul(self.w_hh, self.states[step, :-1], out=proj)
                np.exp(a, out=a)
                a += 1
                np.divide(1, a, out=a)
                i, f, g, o = self.gates[step]
                g *= 2
                g -= 1
                c = self.cells[step + 1]
                np.multiply(f, self.cells[step], out=c)
                c += np.multiply(i, g, out=product)
                _tanh(c, out=self.tanh_c[step])
                np.multiply(o, self.tanh_c[step], out=self.states[step + 1, :-1])
        self.out[...] = self.states.transpose(1, 0, 2)
        return self.states[1:], self.out[:, 1:].reshape(hidden + 1, t * n)

    def last(self) -> tuple[np.ndarray, np.ndarray]:
        """The state after the last step, (H, N) each, copied."""
        return self.states[-1, :-1].copy(), self.cells[-1].copy()

    def backward(self, grad_out: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Backpropagation through time from the outputs' gradient (T, H, N), with ``x`` the input
        ``forward`` got, feature-major (inputs + 1, T * N): the gradients of W_ih, W_hh and the
        bias, and of the input, (T, inputs, N). The gates' gradients overwrite their activations."""
        hidden, t, n = self.cells.shape[1], len(self.gates), self.cells.shape[2]
        dh, dc, work, through_h = self.dh, self.dc, self.work, self.proj[:hidden]
        dh.fill(0)
        dc.fill(0)
        for step in reversed(range(t)):
            gates, tanh_c = self.gates[step], self.tanh_c[step]
            i, f, g, o = gates
            dh += grad_out[step]
            np.multiply(o, dh, out=through_h)  # h = o tanh(c)
            np.subtract(1, o, out=work[3])
            work[3] *= through_h
            np.multiply(work[3], tanh_c, out=o)
            np.multiply(tanh_c, tanh_c, out=work[2])
            np.subtract(1, work[2], out=work[2])
            work[2] *= through_h
            dc += work[2]
            np.subtract(1, gates[:2], out=work[:2])  # c = f c_prev + i g
            work[:2] *= gates[:2]
            work[:2] *= dc
            np.multiply(g, g, out=work[2])
            np.subtract(1, work[2], out=work[2])
            work[2] *= i
            np.multiply(work[0], g, out=i)
            np.multiply(work[2], dc, out=g)
            dc *= f
            np.multiply(work[1], self.cells[step], out=f)
            if step:  # the carried state is detached: nothing flows into it
                np.matmul(self.weight_hh.T, gates.reshape(4 * hidden, n), out=dh)
        grads = self.gates.reshape(t, 4 * hidden, n)
        self.grad.reshape(4 * hidden, t, n)[...] = grads.transpose(1, 0, 2)  # all steps' for the GEMMs
        np.matmul(self.grad, self.out[:hidden, :t].reshape(hidden, t * n).T, out=self.grad_hh)
        np.matmul(self.grad, x.T, out=self.grad_in)
        np.matmul(self.weight_ih.T, grads, out=self.grad_x)
        return self.grad_in[:, :-1], self.grad_hh, self.grad_in[:, -1], self.grad_x


class NumpyCharLSTM(AdamFloor):
    """``RNNLanguageModel(cell="lstm")`` with gradient clipping and Adam on float32 arrays that
    ``step`` updates in place, carrying the recurrent state from one step to the next.

    Args:
        params: PyTorch's parameters in ``state_dict`` order (encoder weight; per layer W_ih, W_hh,
            b_ih, b_hh; decoder weight and bias), as float32 arrays; they are updated in place.
        lr: Adam's learning rate.
        max_norm: the gradient norm ``clip`` clips to.
    """

    def __init__(self, params: list[np.ndarray], lr: float = 2e-3, max_norm: float = 1.0) -> None:
        super().__init__(params, lr)
        self.max_norm = max_norm
        self.num_layers = (len(params) - 3) // 4
        self.state: tuple[np.ndarray, np.ndarray] | None = None  # (h, c), each (layers, H, N)
        self._shape: tuple[int, int] | None = None

    def _allocate(self, batch: int, steps: int) -> None:
        """Buffers for (N, T) batches, kept from one step to the next."""
        if self._shape == (batch, steps):
            return
        embedding, *recurrent, decoder, _ = self.params
        self.layers = [
            _LSTMLayer(*recurrent[4 * k : 4 * k + 4], steps, batch) for k in range(self.num_layers)
        ]
        vocab, width = embedding.shape
        self.embedded = np.empty((steps, batch, width), dtype=np.float32)
        self.inputs = np.ones((steps, width + 1, batch), dtype=np.float32)  # a row of ones under each
        self.features = np.empty((width + 1, steps, batch), dtype=np.float32)  # the same, feature-major
        self.onehot = np.empty((steps, batch, vocab), dtype=np.float32)
        self.w_out = np.empty((decoder.shape[0], decoder.shape[1] + 1), dtype=np.float32)
        self.logits = np.empty((decoder.shape[0], steps * batch), dtype=np.float32)
        self.grad_top = np.empty((steps, decoder.shape[1], batch), dtype=np.float32)
        self._shape = (batch, steps)

    def gradients(self, inputs: np.ndarray, targets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The mean cross-entropy of next-token logits for ``inputs`` (N, T) against ``targets``
        (N, T), and the parameters' gradients (unclipped); the state after the batch is kept."""
        batch, steps = inputs.shape
        self._allocate(batch, steps)
        embedding = self.params[0]
        np.take(embedding, inputs.T, axis=0, out=self.embedded)
        self.inputs[:, :-1] = self.embedded.transpose(0, 2, 1)
        self.features[...] = self.inputs.transpose(1, 0, 2)
        if self.state is None:
            zeros = np.zeros((self.num_layers, self.params[2].shape[1], batch), dtype=np.float32)
            self.state = zeros, zeros
        x, features = self.inputs, [self.features.reshape(len(self.features), -1)]
        for layer, h0, c0 in zip(self.layers, *self.state, strict=True):
            x, out = layer.forward(x, h0, c0)
            features.append(out)
        self.state = tuple(np.stack(s) for s in zip(*(layer.last() for layer in self.layers), strict=True))
        loss, grad_w, grad_b, grad_x = self._decoder(features.pop(), targets.T.reshape(-1))
        grads: list[np.ndarray] = [grad_w, grad_b]
        for layer, x in zip(reversed(self.layers), reversed(features), strict=True):
            grad_ih, grad_hh, grad_bias, grad_x = layer.backward(grad_x, x)
            grads[:0] = [grad_ih, grad_hh, grad_bias, grad_bias.copy()]
        self.onehot.fill(0)
        self.onehot[np.arange(steps)[:, None], np.arange(batch), inputs.T] = 1
        return loss, [np.matmul(grad_x, self.onehot).sum(axis=0).T, *grads]

    def _decoder(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """The decoder on the top layer's outputs ``x`` (H + 1, T * N) with their row of ones, and
        the mean cross-entropy against ``labels`` (T * N): the loss, the gradients of the decoder's
        weight and bias, and of the outputs, per step (T, H, N)."""
        weight, bias = self.params[-2:]
        self.w_out[:, :-1], self.w_out[:, -1] = weight, bias
        logits = np.matmul(self.w_out, x, out=self.logits)  # (V, T * N)
        count = logits.shape[1]
        columns = np.arange(count)
        logits -= logits.max(axis=0)
        picked = logits[labels, columns]
        probs = np.exp(logits, out=logits)
        total = probs.sum(axis=0)
        loss = float(np.mean(np.log(total) - picked))
        probs *= 1 / (total * count)
        probs[labels, columns] -= 1 / count
        grad = probs @ x.T
        steps = probs.reshape(len(probs), -1, self._shape[0]).transpose(1, 0, 2)
        return loss, grad[:, :-1], grad[:, -1], np.matmul(weight.T, steps, out=self.grad_top)

    def clip(self, grads: list[np.ndarray]) -> float:
        """Scales ``grads`` in place to a total norm of at most ``max_norm``, as
        ``clip_grad_norm_`` does; returns the norm before."""
        total = float(np.linalg.norm(np.array([np.linalg.norm(g) for g in grads], dtype=np.float32)))
        coef = self.max_norm / (total + 1e-6)
        if coef < 1:
            for grad in grads:
                grad *= np.float32(coef)
        return total

    def carried(self) -> tuple[np.ndarray, np.ndarray]:
        """The carried state as PyTorch's LSTM returns it: ``(h, c)``, each (layers, N, H)."""
        return tuple(np.ascontiguousarray(s.transpose(0, 2, 1)) for s in self.state)

    def step(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        """One training step on a batch of token windows; returns its loss."""
        loss, grads = self.gradients(inputs, targets)
        self.clip(grads)
        self.adam(grads)
        return loss
