"""Recurrent layers ``RNN``, ``LSTM``, ``GRU`` and their single-step cells, with PyTorch's weights.

Each direction of each layer runs as one fused node (``ops.recurrence``), which projects the
whole input sequence at once and then runs the time steps; a packed sequence, whose batch shrinks
from step to step, runs the cells' compositions step by step instead. ``LSTMCell`` runs each call
as one fused node too; the other cells compose engine ops. Parameter names, shapes, gate order and
init are PyTorch's (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), so state dicts load both ways.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from dltool.engine.creation import empty, zeros
from dltool.engine.nn import functional as F
from dltool.engine.nn import init
from dltool.engine.nn.modules.module import Module
from dltool.engine.nn.parameter import Parameter
from dltool.engine.nn.utils.rnn import PackedSequence
from dltool.engine.ops.recurrence import lstm_cell, recurrence
from dltool.engine.ops.rnn import cell_step, split_views, unbind_steps
from dltool.engine.ops.shape import cat, stack
from dltool.engine.tensor import Tensor

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _reset_uniform(module: Module, hidden_size: int) -> None:
    """PyTorch's recurrent init: every weight and bias from ``U(-1/sqrt(hidden), 1/sqrt(hidden))``."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -bound, bound)


class RNNBase(Module):
    """Multi-layer, optionally bidirectional recurrence over ``(T, N, input_size)`` sequences."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                UserWarning,
                stacklevel=3,
            )
        if not isinstance(hidden_size, int):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size:
            raise NotImplementedError("proj_size is not supported")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                layer_input = input_size if layer == 0 else hidden_size * directions
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    setattr(self, name + suffix, Parameter(empty(shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self, self.hidden_size)

    @property
    def all_weights(self) -> list[list[Parameter]]:
        per_layer = 4 if self.bias else 2
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i : i + per_layer]] for i in range(0, len(names), per_layer)]

    def _layer_weights(self, layer: int, direction: int) -> tuple:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        bias = (getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)) if self.bias else (None, None)
        return getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix), *bias

    def _initial_state(self, hx: Any, batched: bool, batch: int, like: Tensor) -> tuple[Tensor, Tensor | None]:
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        if self.mode == "LSTM" and hx is not None and len(states) != 2:
            raise RuntimeError("LSTM expects hx to be a tuple (h_0, c_0)")
        result = []
        for state in states if hx is not None else (None,) * (2 if self.mode == "LSTM" else 1):
            if state is None:
                state = zeros(expected, dtype=like.dtype, device=like.device)
            else:
                if state.ndim != (3 if batched else 2):
                    raise RuntimeError(
                        f"For {'batched 3-D' if batched else 'unbatched 2-D'} input, hx should also be "
                        f"{3 if batched else 2}-D but got {state.ndim}-D tensor"
                    )
                state = state if batched else state.unsqueeze(1)
                if tuple(state.shape) != expected:
                    raise RuntimeError(f"Expected hidden size {expected}, got {list(state.shape)}")
            result.append(state)
        return result[0], (result[1] if self.mode == "LSTM" else None)

    def _run_direction(self, x: Tensor, h: Tensor, c: Tensor | None, weights: tuple, reverse: bool, sizes: list[int] | None) -> tuple:
        """Run one direction of one layer: every step over the whole batch as one fused node, or
        over the packed batch ``sizes`` step by step; returns the outputs, last ``h`` and ``c``."""
        w_ih, w_hh, b_ih, b_hh = weights
        if sizes is None:
            return recurrence(self.mode, x, h, c, w_ih, w_hh, b_ih, b_hh, reverse)
        if b_hh is not None and self.mode != "GRU":  # outside GRU's reset gate the two biases are one
            b_ih, b_hh = b_ih + b_hh, None
        steps = split_views(F.linear(x, w_ih, b_ih), sizes, 0)
        w_hh_t = w_hh.t()
        outputs: list[Any] = [None] * len(steps)
        for t in reversed(range(len(steps))) if reverse else range(len(steps)):
            running = steps[t].shape[0]
            if running == h.shape[0]:
                h, c = cell_step(self.mode, steps[t], h, c, w_hh_t, b_hh)
                outputs[t] = h
                continue
            # a packed batch: only the first `running` (longest) sequences still have this step
            rest = [running, h.shape[0] - running]
            h_run, h_done = split_views(h, rest, 0)
            c_run, c_done = split_views(c, rest, 0) if c is not None else (None, None)
            h_run, c_run = cell_step(self.mode, steps[t], h_run, c_run, w_hh_t, b_hh)
            h = cat([h_run, h_done])
            c = cat([c_run, c_done]) if c is not None else None
            outputs[t] = h_run
        return cat(outputs, 0), h, c

    def forward(self, input: Tensor | PackedSequence, hx: Any = None) -> tuple[Any, Any]:
        packed = isinstance(input, PackedSequence)
        if packed:
            x, batch_sizes, sorted_indices, unsorted_indices = input
            sizes = [int(n) for n in batch_sizes.tolist()]
            batched, batch = True, sizes[0]
        else:
            if input.ndim not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.ndim}D instead")
            batched = input.ndim == 3
            x = input.transpose(0, 1) if batched and self.batch_first else (input if batched else input.unsqueeze(1))
            batch, sizes = x.shape[1], None
        if x.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]}")
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype:
            raise ValueError(
                f"RNN input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). Convert input: "
                f"input.to({weight.dtype}), or convert model: model.to({x.dtype})"
            )
        initial = [s for s in self._initial_state(hx, batched, batch, x) if s is not None]
        if packed and sorted_indices is not None:  # states follow the packed (longest-first) order
            initial = [s.index_select(1, sorted_indices) for s in initial]
        h0s = unbind_steps(initial[0])
        c0s = unbind_steps(initial[1]) if len(initial) == 2 else [None] * len(h0s)
        directions = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                output, h, c = self._run_direction(x, h0s[k], c0s[k], self._layer_weights(layer, direction), direction == 1, sizes)
                outputs.append(output)
                h_n.append(h)
                c_n.append(c)
            x = cat(outputs, -1) if directions == 2 else outputs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        states = [stack(h_n)] + ([stack(c_n)] if self.mode == "LSTM" else [])
        if packed:
            if unsorted_indices is not None:
                states = [s.index_select(1, unsorted_indices) for s in states]
            x = PackedSequence(x, batch_sizes, sorted_indices, unsorted_indices)
        elif not batched:
            x, states = x.squeeze(1), [s.squeeze(1) for s in states]
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, (tuple(states) if self.mode == "LSTM" else states[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` with tanh or relu.

    Example:
        >>> rnn = RNN(10, 20, num_layers=2)
        >>> output, h_n = rnn(randn(5, 3, 10))
        >>> output.shape, h_n.shape
        ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; ``forward(input, (h_0, c_0))`` returns ``output, (h_n, c_n)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0, device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit; gate order (reset, update, new) as in PyTorch."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype)


# =============================================================== cells


class _CellBase(Module):
    _mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size = _GATES[self._mode] * hidden_size
        self.weight_ih = Parameter(empty((gate_size, input_size), device=device, dtype=dtype))
        self.weight_hh = Parameter(empty((gate_size, hidden_size), device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(gate_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(gate_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self, self.hidden_size)

    def _cell(self, input: Tensor, hx: Any, mode: str) -> Any:
        if input.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        states = hx if isinstance(hx, (tuple, list)) else (hx, None)
        zero = zeros((x.shape[0], self.hidden_size), dtype=x.dtype, device=x.device)
        h, c = ((zero if s is None else (s if batched else s.unsqueeze(0))) for s in states)
        self._check_cell_inputs(x, h, c)
        if mode == "LSTM":
            h, c = lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        else:
            h, c = cell_step(mode, F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh.t(), self.bias_hh)
        if not batched:
            h, c = h.squeeze(0), (c.squeeze(0) if c is not None else None)
        return (h, c) if mode == "LSTM" else h

    def _check_cell_inputs(self, x: Tensor, h: Tensor, c: Tensor | None) -> None:
        """PyTorch's checks of a cell's input and states, with its messages."""
        if x.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}")
        if x.dtype != self.weight_ih.dtype:
            raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {x.dtype} and {self.weight_ih.dtype}")
        for k, state in enumerate(s for s in (h, c) if s is not None):
            if state.shape[0] != x.shape[0]:
                raise RuntimeError(f"Input batch size {x.shape[0]} doesn't match hidden{k} batch size {state.shape[0]}")
            if state.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {state.shape[1]}, expected {self.hidden_size}")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(_CellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._cell(input, hx, "RNN_" + self.nonlinearity.upper())


class LSTMCell(_CellBase):
    _mode = "LSTM"

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Tensor]:
        return self._cell(input, hx, "LSTM")


class GRUCell(_CellBase):
    _mode = "GRU"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._cell(input, hx, "GRU")
