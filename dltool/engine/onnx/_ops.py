"""ONNX forms of the engine's ops: one converter per op class, registered in ``CONVERTERS``.

A converter gets the builder, the node and its arguments (with ``Dim``/``Derived`` in place of
ints that follow the dynamic axes) and returns the ONNX names of the node's outputs, None for an
output it does not make (using such an output later is an export error naming the op).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine.jit import Full, Node, Value
from dltool.engine.jit._tracer import Compare
from dltool.engine.onnx._builder import Builder, UnsupportedOperatorError, static
from dltool.engine.ops import elementwise, linalg, normalization, pool, reduce, rnn, shape, sparse, special
from dltool.engine.ops.conv import Convolution, FoldedProduct
from dltool.engine.ops.index import Getitem
from dltool.engine.ops.recurrence import LSTMCellStep, Recurrence

Converter = Callable[[Builder, Node, tuple], list]
CONVERTERS: dict[Any, Converter] = {}


def converts(*ops: Any) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for op in ops:
            CONVERTERS[op] = fn
        return fn

    return register


def _in(b: Builder, item: Any, like: Value | None = None) -> str:
    """The ONNX name of a value, or a constant for a Python number (in ``like``'s dtype)."""
    if isinstance(item, Value):
        return b.name(item)
    return b.scalar(item, like.dtype if like is not None else np.asarray(item).dtype)


# =============================================================== elementwise

_BINARY = {
    elementwise.Add: "Add",
    elementwise.Sub: "Sub",
    elementwise.Mul: "Mul",
    elementwise.Div: "Div",
    elementwise.Pow: "Pow",
    elementwise.Maximum: "Max",
    elementwise.AddScalar: "Add",
    elementwise.SubScalar: "Add",  # SubScalar adds the negated number
    elementwise.MulScalar: "Mul",
    elementwise.DivScalar: "Div",
}

_UNARY = {
    elementwise.Neg: "Neg",
    elementwise.Abs: "Abs",
    elementwise.Exp: "Exp",
    elementwise.Log: "Log",
    elementwise.Sqrt: "Sqrt",
    elementwise.Sin: "Sin",
    elementwise.Cos: "Cos",
    elementwise.Tanh: "Tanh",
    elementwise.Sigmoid: "Sigmoid",
    elementwise.Relu: "Relu",
    elementwise.Clone: "Identity",
    special.Erf: "Erf",
}

_COMPARE = {
    "__eq__": "Equal",
    "__lt__": "Less",
    "__le__": "LessOrEqual",
    "__gt__": "Greater",
    "__ge__": "GreaterOrEqual",
}


@converts(*_BINARY)
def _binary(b: Builder, node: Node, args: tuple) -> list:
    x, y = args[:2]
    like = x if isinstance(x, Value) else y
    return [b.add(_BINARY[node.op], [_in(b, x, like), _in(b, y, like)])]


@converts(*_UNARY)
def _unary(b: Builder, node: Node, args: tuple) -> list:
    return [b.add(_UNARY[node.op], [b.name(args[0])])]


@converts(special.Erfc)
def _erfc(b: Builder, node: Node, args: tuple) -> list:
    return [b.add("Sub", [b.scalar(1, args[0].dtype), b.add("Erf", [b.name(args[0])])])]


@converts(elementwise.Log1p)
def _log1p(b: Builder, node: Node, args: tuple) -> list:
    return [b.add("Log", [b.add("Add", [b.name(args[0]), b.scalar(1, args[0].dtype)])])]


@converts(elementwise.Clamp)
def _clamp(b: Builder, node: Node, args: tuple) -> list:
    x, low, high = args
    bounds = ["" if v is None else _in(b, v, x) for v in (low, high)]
    return [b.add("Clip", [b.name(x), *bounds])]


@converts(elementwise.Where)
def _where(b: Builder, node: Node, args: tuple) -> list:
    condition, x, y = args
    like = x if isinstance(x, Value) else y
    return [b.add("Where", [b.name(condition), _in(b, x, like), _in(b, y, like)])]


@converts(Compare)
def _compare(b: Builder, node: Node, args: tuple) -> list:
    x, other, operator = args
    names = [b.name(x), _in(b, other, x)]
    if operator == "__ne__":
        return [b.add("Not", [b.add("Equal", names)])]
    return [b.add(_COMPARE[operator], names)]


@converts(elementwise.Cast)
def _cast(b: Builder, node: Node, args: tuple) -> list:
    to = b.helper.np_dtype_to_tensor_dtype(np.dtype(node.outputs[0].dtype))
    return [b.add("Cast", [b.name(args[0])], to=to)]


@converts(Full)
def _full(b: Builder, node: Node, args: tuple) -> list:
    size, fill, dtype, _ = args
    if all(isinstance(s, (int, np.integer)) for s in size):
        return [b.const(np.full(size, fill, dtype=dtype), "full")]
    value = b.onnx.numpy_helper.from_array(np.asarray([fill], dtype=dtype))
    return [b.add("ConstantOfShape", [b.ints(size)], value=value)]


# =============================================================== shapes


@converts(shape.Reshape)
def _reshape(b: Builder, node: Node, args: tuple) -> list:
    x, size = args
    layout = b.sources.get(b.name(x))
    if layout is not None and layout[0] == "O,HWN" and len(size) == 4:
        return [layout[2]]  # a convolution's columns as (O, H, W, N): see _convolution
    return [b.add("Reshape", [b.name(x), b.ints(size)])]


@converts(shape.Permute)
def _permute(b: Builder, node: Node, args: tuple) -> list:
    x, dims = args
    layout = b.sources.get(b.name(x))
    if layout is not None and layout[0] == "O,H,W,N" and tuple(dims) == (3, 0, 1, 2):
        return [layout[1]]
    return [b.add("Transpose", [b.name(x)], perm=list(dims))]


@converts(shape.Expand)
def _expand(b: Builder, node: Node, args: tuple) -> list:
    return [b.add("Expand", [b.name(args[0]), b.ints(args[1])])]


@converts(shape.Cat)
def _cat(b: Builder, node: Node, args: tuple) -> list:
    dim, *xs = args
    return [b.add("Concat", [b.name(x) for x in xs], axis=int(dim))]


@converts(rnn.SplitViews)
def _split(b: Builder, node: Node, args: tuple) -> list:
    x, sizes, dim = args
    sizes = static(tuple(sizes), "SplitViews' sizes")
    if len(sizes) == 1:
        return [b.add("Identity", [b.name(x)])]
    parts = b.add(
        "Split", [b.name(x), b.const(np.asarray(sizes, dtype=np.int64))], outputs=len(sizes), axis=int(dim)
    )
    return list(parts)


@converts(shape.Pad)
def _pad(b: Builder, node: Node, args: tuple) -> list:
    x, widths, value = args
    pads = [int(w[0]) for w in widths] + [int(w[1]) for w in widths]
    return [b.add("Pad", [b.name(x), b.ints(pads), b.scalar(value, x.dtype)], mode="constant")]


@converts(Getitem)
def _getitem(b: Builder, node: Node, args: tuple) -> list:
    x, steps, advanced = args
    if advanced or len(steps) != 1:
        raise UnsupportedOperatorError("Getitem with advanced (tensor) indexing has no ONNX export here")
    name, dims = b.name(x), list(x.shape)
    key = steps[0] if isinstance(steps[0], tuple) else (steps[0],)
    if Ellipsis in key:
        at = key.index(Ellipsis)
        fill = len(dims) - sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:at] + (slice(None),) * fill + key[at + 1 :]
    axis, squeeze, unsqueeze = 0, [], []
    for k in key:
        if k is None:
            unsqueeze.append(axis + len(unsqueeze) - len(squeeze))
            continue
        if isinstance(k, (int, np.integer)):
            k, squeeze_it = slice(int(k), int(k) + 1 if k != -1 else None), True
        else:
            squeeze_it = False
        start, stop, step = static((k.start, k.stop, k.step), "an index")
        if (start, stop, step) != (None, None, None):
            starts = [start if start is not None else (0 if (step or 1) > 0 else -1)]
            big = np.iinfo(np.int64).max if (step or 1) > 0 else np.iinfo(np.int64).min
            ends = [stop if stop is not None else big]
            inputs = [name, b.ints(starts), b.ints(ends), b.ints([axis]), b.ints([step or 1])]
            name = b.add("Slice", inputs)
        if squeeze_it:
            squeeze.append(axis)
        axis += 1
    if squeeze:
        name = b.squeeze(name, squeeze)
    if unsqueeze:
        name = b.unsqueeze(name, unsqueeze)
    return [name if name != b.name(x) else b.add("Identity", [name])]


# =============================================================== reductions, normalization


@converts(reduce.Sum, reduce.Amax, reduce.Prod)
def _reduce(b: Builder, node: Node, args: tuple) -> list:
    x, axes, keepdim = args
    op_type = {reduce.Sum: "ReduceSum", reduce.Amax: "ReduceMax", reduce.Prod: "ReduceProd"}[node.op]
    return [b.reduce(op_type, b.name(x), axes, keepdim)]


@converts(reduce.Softmax, reduce.LogSoftmax)
def _softmax(b: Builder, node: Node, args: tuple) -> list:
    op_type = "Softmax" if node.op is reduce.Softmax else "LogSoftmax"
    return [b.add(op_type, [b.name(args[0])], axis=int(args[1]))]


@converts(normalization.Normalize)
def _normalize(b: Builder, node: Node, args: tuple) -> list:
    x, axes, eps = args
    mean = b.reduce("ReduceMean", b.name(x), axes, True)
    centered = b.add("Sub", [b.name(x), mean])
    var = b.reduce("ReduceMean", b.add("Mul", [centered, centered]), axes, True)
    std = b.add("Sqrt", [b.add("Add", [var, b.scalar(eps, x.dtype)])])
    return [b.add("Div", [centered, std]), mean, var]


# =============================================================== linear algebra, embedding


@converts(linalg.Matmul)
def _matmul(b: Builder, node: Node, args: tuple) -> list:
    return [b.add("MatMul", [b.name(args[0]), b.name(args[1])])]


@converts(linalg.Linear)
def _linear(b: Builder, node: Node, args: tuple) -> list:
    x, weight, bias = args
    y = b.add("MatMul", [b.name(x), b.add("Transpose", [b.name(weight)], perm=[1, 0])])
    return [y if bias is None else b.add("Add", [y, b.name(bias)])]


@converts(sparse.Embedding)
def _embedding(b: Builder, node: Node, args: tuple) -> list:
    weight, indices = args[:2]
    return [b.add("Gather", [b.name(weight), b.name(indices)], axis=0)]


# =============================================================== convolution and pooling


def _pads(padding: tuple, extra: tuple = (0, 0)) -> list[int]:
    return [int(p) for p in padding] + [int(p) + int(e) for p, e in zip(padding, extra, strict=True)]


@converts(Convolution)
def _convolution(b: Builder, node: Node, args: tuple) -> list:
    x, weight, bias, kernel, dilation, padding, stride, _ = args
    if len(kernel) != 2:
        raise UnsupportedOperatorError(f"Convolution with a {len(kernel)}-D kernel has no ONNX export here")
    groups = 1 if len(weight.shape) == 2 else weight.shape[0]
    out_channels = weight.shape[-2] * (groups if len(weight.shape) == 3 else 1)
    w = b.add("Reshape", [b.name(weight), b.ints([out_channels, x.shape[1] // groups, *kernel])])
    inputs = [b.name(x), w] + ([] if bias is None else [b.add("Reshape", [b.name(bias), b.ints([-1])])])
    y = b.add(
        "Conv",
        inputs,
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=_pads(padding),
        dilations=list(dilation),
        group=groups,
    )
    # NOTE: the engine's output is (O, H*W*N), which a Reshape and a Permute make NCHW again;
    # those two map back to ``y`` itself, and the unused layout nodes are dropped at the end
    columns = b.add("Transpose", [y], perm=[1, 2, 3, 0])
    flat = b.add("Reshape", [columns, b.ints([out_channels, -1])])
    b.sources[flat] = ("O,HWN", y, columns)
    b.sources[columns] = ("O,H,W,N", y, columns)
    return [flat]


@converts(FoldedProduct)
def _conv_transpose(b: Builder, node: Node, args: tuple) -> list:
    a, columns, size, kernel, dilation, padding, stride, out = args
    groups, _, in_per_group = a.shape
    in_channels = groups * in_per_group
    weight = b.add("Transpose", [b.name(a)], perm=[0, 2, 1])
    weight = b.add("Reshape", [weight, b.ints([in_channels, a.shape[1] // (kernel[0] * kernel[1]), *kernel])])
    x = b.add(
        "Reshape",
        [b.name(columns), b.ints([in_channels, *static(out, "a transposed convolution's input size"), -1])],
    )
    x = b.add("Transpose", [x], perm=[3, 0, 1, 2])
    natural = [
        (n - 1) * s - 2 * p + d * (k - 1) + 1
        for n, s, p, d, k in zip(out, stride, padding, dilation, kernel, strict=True)
    ]
    y = b.add(
        "ConvTranspose",
        [x, weight],
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=_pads(padding),
        dilations=list(dilation),
        group=int(groups),
        output_padding=[int(s) - n for s, n in zip(size, natural, strict=True)],
    )
    return [y]


@converts(pool.MaxPool2d)
def _max_pool(b: Builder, node: Node, args: tuple) -> list:
    x, kernel, step, pad, dil, _, extra = args
    y = b.add(
        "MaxPool",
        [b.name(x)],
        kernel_shape=list(kernel),
        strides=list(step),
        pads=_pads(pad, extra),
        dilations=list(dil),
    )
    return [y, None]


@converts(pool.AvgPool2d)
def _avg_pool(b: Builder, node: Node, args: tuple) -> list:
    x, kernel, step, pad, _, extra, divisor = args
    if any(pad) or any(extra) or not np.all(np.asarray(divisor) == kernel[0] * kernel[1]):
        raise UnsupportedOperatorError(
            "AvgPool2d with padding, ceil_mode or divisor_override has no ONNX export here"
        )
    return [b.add("AveragePool", [b.name(x)], kernel_shape=list(kernel), strides=list(step))]


# =============================================================== recurrent layers

# ONNX's gate order, as blocks of the engine's (PyTorch's): LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h
_GATES = {
    "LSTM": ("LSTM", [0, 3, 1, 2]),
    "GRU": ("GRU", [1, 0, 2]),
    "RNN_TANH": ("RNN", [0]),
    "RNN_RELU": ("RNN", [0]),
}


def _onnx_weights(b: Builder, mode: str, x: Value, weights: tuple) -> tuple[str, str, str]:
    """ONNX's ``W``, ``R`` and ``B`` of one direction from ``(W_ih, W_hh, b_ih, b_hh)`` (the biases
    may be None): their rows in ONNX's gate order, with the leading direction axis."""
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = w_hh.shape[1]
    blocks = _GATES[mode][1]
    rows = b.const(np.concatenate([np.arange(k * hidden, (k + 1) * hidden) for k in blocks]).astype(np.int64))
    zeros = b.const(np.zeros(w_hh.shape[0], dtype=x.dtype))
    w, r, *biases = (
        zeros if t is None else b.add("Gather", [b.name(t), rows], axis=0) for t in (w_ih, w_hh, b_ih, b_hh)
    )
    return b.unsqueeze(w, [0]), b.unsqueeze(r, [0]), b.unsqueeze(b.add("Concat", biases, axis=0), [0])


@converts(Recurrence)
def _recurrence(b: Builder, node: Node, args: tuple) -> list:
    x, h0, c0, *weights, mode, reverse = args
    op_type = _GATES[mode][0]
    w, r, bias = _onnx_weights(b, mode, x, tuple(weights))
    inputs = [b.name(x), w, r, bias, "", b.unsqueeze(b.name(h0), [0])]
    if c0 is not None:
        inputs.append(b.unsqueeze(b.name(c0), [0]))
    attributes: dict[str, Any] = {
        "hidden_size": int(weights[1].shape[1]),
        "direction": "reverse" if reverse else "forward",
    }
    if op_type == "GRU":
        attributes["linear_before_reset"] = 1
    if op_type == "RNN":
        attributes["activations"] = ["Tanh" if mode == "RNN_TANH" else "Relu"]
    outputs = b.add(op_type, inputs, outputs=3 if c0 is not None else 2, **attributes)
    y, *states = outputs
    return [b.squeeze(y, [1]), *(b.squeeze(s, [0]) for s in states)]


@converts(LSTMCellStep)
def _lstm_cell(b: Builder, node: Node, args: tuple) -> list:
    """One step of ONNX's ``LSTM``, its weights' rows in ONNX's gate order."""
    x, h, c, *weights = args
    w, r, bias = _onnx_weights(b, "LSTM", x, tuple(weights))
    x, h, c = (b.unsqueeze(b.name(t), [0]) for t in (x, h, c))
    _, h_n, c_n = b.add("LSTM", [x, w, r, bias, "", h, c], outputs=3, hidden_size=int(weights[1].shape[1]))
    return [b.squeeze(h_n, [0]), b.squeeze(c_n, [0])]
