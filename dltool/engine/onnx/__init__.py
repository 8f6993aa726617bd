"""ONNX export from a trace: ``dltool.engine.onnx.export(model, args, f, ...)``, as PyTorch's.

The model runs once under ``jit.trace`` (in eval mode) and each recorded op is written as ONNX
nodes (``_ops``). A dynamic axis is found by tracing a second time with that axis one longer:
sizes in the ops' arguments that change with it are read from the input's shape at run time.
Needs the ``onnx`` package (``pip install dltool[export]``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from dltool.engine.autograd.grad_mode import no_grad
from dltool.engine.jit import Graph, Node, Value, _as_inputs, _Recordings
from dltool.engine.jit._graph import _parameter_names
from dltool.engine.nn.modules.module import Module
from dltool.engine.onnx._builder import Builder, Derived, Dim, UnsupportedOperatorError
from dltool.engine.tensor import Tensor
from dltool.engine.utils._structure import leaves

__all__ = ["UnsupportedOperatorError", "export"]

_DEFAULT_OPSET = 17
_MIN_OPSET = 17  # LayerNormalization-era ops; Split and Squeeze take their sizes as inputs


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'dltool[export]'") from None
    return onnx


def export(
    model: Module | Any,
    args: Any,
    f: str | os.PathLike | IO[bytes],
    export_params: bool = True,
    verbose: bool = False,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    opset_version: int | None = None,
    dynamic_axes: dict[str, Any] | None = None,
) -> None:
    """Trace ``model`` on ``args`` and write the graph to ``f`` as an ONNX model.

    Args:
        model: a ``Module`` (exported in eval mode, then put back) or a function of tensors.
        args: a tensor or a tuple of tensors, the example inputs.
        f: a path, or a binary file object, to write to.
        export_params: must be True (the parameters are always stored, as initializers).
        verbose: print the ONNX graph.
        input_names: names of the graph's inputs (default: the forward's parameter names).
        output_names: names of the outputs, the returned tensors flattened (default ``output``,
            or ``output0``, ``output1``, ... for several).
        opset_version: the ONNX opset, 17 (the default) or newer.
        dynamic_axes: ``{name: [axis, ...]}`` or ``{name: {axis: "dim_name"}}`` for inputs and
            outputs whose sizes vary, such as the batch axis.

    Raises:
        ImportError: the onnx package is not installed.
        UnsupportedOperatorError: the model uses an op with no ONNX form here (named), or an op's
            sizes depend on a dynamic axis in a way ONNX cannot express here.
        ValueError: a bad opset, name or axis.
    """
    onnx = _require_onnx()
    if not export_params:
        raise ValueError("export_params=False is not supported: the parameters are always stored")
    opset = _opset(onnx, opset_version)
    inputs = _as_inputs(args)
    with _eval(model), no_grad():
        _, graph = _record(model, inputs)
        names_in = _names(input_names, [v.name for v in graph.inputs], "input_names")
        dynamic_in = _axes(dynamic_axes or {}, names_in, inputs)
        grown = None
        if dynamic_in:
            _, grown = _record(
                model, tuple(_grow(x, dynamic_in.get(n, {})) for x, n in zip(inputs, names_in, strict=True))
            )
    outputs = leaves(graph.outputs, Value)
    default_out = ["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))]
    names_out = _names(output_names, default_out, "output_names")
    model_proto = _build(onnx, opset, graph, grown, names_in, names_out, dynamic_in, dynamic_axes or {})
    onnx.checker.check_model(model_proto)
    if verbose:
        print(onnx.helper.printable_graph(model_proto.graph))
    if isinstance(f, (str, os.PathLike)):
        onnx.save(model_proto, os.fspath(f))
    else:
        f.write(model_proto.SerializeToString())


def _opset(onnx: Any, opset_version: int | None) -> int:
    newest = onnx.defs.onnx_opset_version()
    opset = _DEFAULT_OPSET if opset_version is None else opset_version
    if not _MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset_version must be between {_MIN_OPSET} and {newest} (the installed onnx's newest), got {opset}"
        )
    return opset


@contextlib.contextmanager
def _eval(model: Any) -> Iterator[None]:
    if not isinstance(model, Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def _record(model: Any, inputs: tuple) -> tuple[Any, Graph]:
    return _Recordings(model, model if isinstance(model, Module) else None).record(inputs)


def _names(given: list[str] | None, default: list[str], what: str) -> list[str]:
    if given is None:
        return default
    if len(given) != len(default) or len(set(given)) != len(given):
        raise ValueError(f"{what} must be {len(default)} distinct names, got {list(given)}")
    return list(given)


def _axes(dynamic_axes: dict, names: list[str], inputs: tuple) -> dict[str, dict[int, str]]:
    """The dynamic axes of the inputs as ``{input name: {axis: dim name}}``."""
    found: dict[str, dict[int, str]] = {}
    for name, x in zip(names, inputs, strict=True):
        axes = dynamic_axes.get(name)
        if axes is None:
            continue
        axes = (
            axes
            if isinstance(axes, dict)
            else {a: f"{name}_dynamic_axes_{i + 1}" for i, a in enumerate(axes)}
        )
        for axis in axes:
            if not -x.ndim <= axis < x.ndim:
                raise ValueError(
                    f"dynamic_axes[{name!r}] has axis {axis}, but {name} has {x.ndim} dimensions"
                )
        found[name] = {a % x.ndim: str(d) for a, d in axes.items()}
    return found


def _grow(x: Tensor, axes: dict[int, str]) -> Tensor:
    """``x`` one longer along each of ``axes`` (its first slice repeated), so sizes that follow
    those axes show in a second trace."""
    data = x._data
    for axis in axes:
        data = x._xp().concatenate([data, data.take([0], axis=axis)], axis=axis)
    return Tensor._make(data)


# =============================================================== ints that follow dynamic axes


def _symbolic(first: Any, second: Any, dims: list[tuple], where: str) -> Any:
    """``first`` with each int that differs in ``second`` replaced by a ``Dim`` (or ``Derived``)."""
    if isinstance(first, Value):
        if not isinstance(second, Value) or first.name != second.name:
            raise _changes(where)
        return first
    if isinstance(first, (tuple, list)) and type(first) is type(second) and len(first) == len(second):
        return type(first)(_symbolic(a, b, dims, where) for a, b in zip(first, second, strict=True))
    if isinstance(first, slice) and isinstance(second, slice):
        parts = [
            _symbolic(getattr(first, k), getattr(second, k), dims, where) for k in ("start", "stop", "step")
        ]
        return slice(*parts)
    if (
        isinstance(first, (int, np.integer))
        and not isinstance(first, bool)
        and isinstance(second, (int, np.integer))
    ):
        if first == second:
            return first
        for name, axis, before, after, _ in dims:
            if (before, after) == (first, second):
                return Dim(name, axis, int(first))
        return Derived(int(first))
    same = (
        np.array_equal(first, second)
        if isinstance(first, np.ndarray)
        else type(first) is type(second) and first == second
    )
    if not same:
        raise _changes(where)
    return first


def _changes(where: str) -> UnsupportedOperatorError:
    return UnsupportedOperatorError(
        f"the model's graph changes with the size of a dynamic axis at {where}; export with that axis static"
    )


def _node_args(node: Node) -> tuple:
    names = _parameter_names(node.op)[len(node.args) :]
    return node.args + tuple(node.kwargs[n] for n in names if n in node.kwargs)


def _symbolic_args(graph: Graph, grown: Graph | None, dims: list[tuple]) -> list[tuple]:
    if grown is None:
        return [_node_args(n) for n in graph.nodes]
    if len(graph.nodes) != len(grown.nodes):
        raise _changes("its number of ops")
    result = []
    for i, (a, b) in enumerate(zip(graph.nodes, grown.nodes, strict=True)):
        where = f"op {i} ({a.kind})"
        if a.op is not b.op:
            raise _changes(where)
        result.append(_symbolic(_node_args(a), _node_args(b), dims, where))
    return result


# =============================================================== the ONNX graph


def _live(graph: Graph) -> list[bool]:
    """Which nodes the outputs need."""
    needed = {id(v) for v in leaves(graph.outputs, Value)}
    live = [False] * len(graph.nodes)
    for i in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[i]
        if any(id(v) in needed for v in node.outputs):
            live[i] = True
            needed.update(id(a) for a in _values(_node_args(node)))
    return live


def _values(item: Any) -> list[Value]:
    if isinstance(item, Value):
        return [item]
    if isinstance(item, (tuple, list)):
        return [v for x in item for v in _values(x)]
    return []


def _build(
    onnx: Any,
    opset: int,
    graph: Graph,
    grown: Graph | None,
    names_in: list[str],
    names_out: list[str],
    dynamic_in: dict[str, dict[int, str]],
    dynamic_axes: dict,
) -> Any:
    from dltool.engine.onnx._ops import CONVERTERS

    helper = onnx.helper
    b = Builder(onnx, opset)
    dims = [
        (name, axis, value.shape[axis], grown_value.shape[axis], dim_name)
        for name, value, grown_value in zip(
            names_in, graph.inputs, grown.inputs if grown else graph.inputs, strict=True
        )
        for axis, dim_name in dynamic_in.get(name, {}).items()
    ]
    for name, value in zip(names_in, graph.inputs, strict=True):
        b.names[id(value)] = name
    for captured in graph.captured:
        b.names[id(captured.value)] = b.initializer(
            captured.tensor.detach().cpu().numpy(), captured.value.name
        )
    for node, args, live in zip(graph.nodes, _symbolic_args(graph, grown, dims), _live(graph), strict=True):
        if not live:
            continue
        convert = CONVERTERS.get(node.op)
        if convert is None:
            raise UnsupportedOperatorError(
                f"ONNX export does not cover the op {node.kind} ({_qualified(node.op)})"
            )
        try:
            made = convert(b, node, args)
        except UnsupportedOperatorError as error:
            raise UnsupportedOperatorError(f"cannot export {node.kind}: {error}") from None
        for value, name in zip(node.outputs, made, strict=True):
            if name is not None:
                b.names[id(value)] = name
    outputs = leaves(graph.outputs, Value)
    for value, name in zip(outputs, names_out, strict=True):
        b.nodes.append(helper.make_node("Identity", [b.name(value)], [name]))
    grown_outputs = leaves(grown.outputs, Value) if grown else outputs
    inputs_info = [
        _info(helper, name, v, v, dynamic_in.get(name, {}), dims)
        for name, v in zip(names_in, graph.inputs, strict=True)
    ]
    outputs_info = [
        _info(helper, name, v, g, _output_axes(dynamic_axes.get(name), name), dims)
        for name, v, g in zip(names_out, outputs, grown_outputs, strict=True)
    ]
    nodes = b.live_nodes(names_out)
    proto_graph = helper.make_graph(nodes, "main_graph", inputs_info, outputs_info, b.initializers)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(
        proto_graph,
        opset_imports=opsets,
        producer_name="dltool",
        ir_version=helper.find_min_ir_version_for(opsets),
    )


def _qualified(op: Any) -> str:
    return f"{getattr(op, '__module__', '')}.{getattr(op, '__qualname__', op)}"


def _output_axes(axes: Any, name: str) -> dict[int, str]:
    if axes is None:
        return {}
    return (
        dict(axes)
        if isinstance(axes, dict)
        else {a: f"{name}_dynamic_axes_{i + 1}" for i, a in enumerate(axes)}
    )


def _info(helper: Any, name: str, value: Value, grown: Value, axes: dict[int, str], dims: list[tuple]) -> Any:
    """A graph input's or output's type; sizes that change with the dynamic axes get names."""
    shape: list[Any] = []
    for axis, (size, other) in enumerate(zip(value.shape, grown.shape, strict=True)):
        named = axes.get(axis) or axes.get(axis - len(value.shape))
        if named is None and size != other:
            named = next((d for _, _, s, o, d in dims if (s, o) == (size, other)), f"{name}_dim{axis}")
        shape.append(named if named is not None else int(size))
    dtype = helper.np_dtype_to_tensor_dtype(np.dtype(value.dtype))
    return helper.make_tensor_value_info(name, dtype, shape)
