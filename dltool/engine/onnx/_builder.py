"""The ONNX graph under construction: names of values, nodes, initializers, shapes that follow inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltool.engine.jit import Value


class UnsupportedOperatorError(RuntimeError):
    """The graph has an op (or an op's use) that ONNX export does not cover."""


@dataclass(frozen=True)
class Dim:
    """An int of a node's arguments that is a dynamic axis of a graph input (``input``'s ``axis``)."""

    input: str
    axis: int
    traced: int


@dataclass(frozen=True)
class Derived:
    """An int of a node's arguments that changes with the dynamic axes in a way not traced to one."""

    traced: int


def is_symbolic(item: Any) -> bool:
    return isinstance(item, (Dim, Derived))


def static(item: Any, what: str) -> Any:
    """``item`` (an int or a tuple of them) with no dynamic part, or a clear error about ``what``."""
    flat = item if isinstance(item, (tuple, list)) else (item,)
    if any(is_symbolic(x) for x in flat):
        raise UnsupportedOperatorError(f"{what} depends on a dynamic axis; export with that axis static")
    return item


class Builder:
    """Collects ONNX nodes and initializers; maps the trace's values to ONNX names."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict[int, str] = {}
        self.sources: dict[str, tuple] = {}  # ONNX name -> (layout, NCHW name, ...): see _ops._convolution
        self._count = 0

    # ------------------------------------------------------------ names and nodes

    def name(self, value: Value) -> str:
        try:
            return self.names[id(value)]
        except KeyError:
            raise UnsupportedOperatorError(
                f"value %{value.name} ({value.type_str()}) cannot be exported: the op that makes it has no ONNX form"
            ) from None

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def add(self, op_type: str, inputs: list, outputs: int = 1, **attributes: Any) -> Any:
        """Append a node; return its output name (or names, when ``outputs`` > 1)."""
        names = [self.fresh(op_type) for _ in range(outputs)]
        attributes = {k: v for k, v in attributes.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def const(self, array: Any, hint: str = "const") -> str:
        return self.initializer(array, self.fresh(hint))

    def initializer(self, array: Any, name: str) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, value: Any, dtype: np.dtype) -> str:
        return self.const(np.asarray(value, dtype=dtype), "scalar")

    def ints(self, items: Any) -> str:
        """A 1-D int64 tensor of ``items``; dynamic entries are read from the inputs' shapes, and
        one entry that changes with them in another way becomes -1 (for Reshape)."""
        items = list(items)
        derived = [i for i, x in enumerate(items) if isinstance(x, Derived)]
        if len(derived) > 1:
            raise UnsupportedOperatorError(
                f"a shape {[getattr(x, 'traced', x) for x in items]} has {len(derived)} sizes that "
                "depend on dynamic axes in ways the trace cannot tell; export with those axes static"
            )
        items = [-1 if isinstance(x, Derived) else x for x in items]
        if not any(isinstance(x, Dim) for x in items):
            return self.const(np.asarray(items, dtype=np.int64), "shape")
        parts = [
            self._dim(x) if isinstance(x, Dim) else self.const(np.asarray([x], dtype=np.int64)) for x in items
        ]
        return self.add("Concat", parts, axis=0)

    def _dim(self, dim: Dim) -> str:
        shape = self.add("Shape", [dim.input])
        return self.add("Gather", [shape, self.const(np.asarray([dim.axis], dtype=np.int64))], axis=0)

    def reduce(self, op_type: str, x: str, axes: Any, keepdims: bool) -> str:
        """A Reduce* node over ``axes`` (all when None), with axes where the opset wants them."""
        keep = int(bool(keepdims))
        if axes is None:
            return self.add(op_type, [x], keepdims=keep)
        axes = [int(a) for a in (axes if isinstance(axes, (tuple, list)) else (axes,))]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.add(op_type, [x, self.const(np.asarray(axes, dtype=np.int64), "axes")], keepdims=keep)
        return self.add(op_type, [x], axes=axes, keepdims=keep)

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.add("Unsqueeze", [x, self.const(np.asarray(axes, dtype=np.int64), "axes")])

    def squeeze(self, x: str, axes: list[int]) -> str:
        return self.add("Squeeze", [x, self.const(np.asarray(axes, dtype=np.int64), "axes")])

    # ------------------------------------------------------------ the finished graph

    def live_nodes(self, outputs: list[str]) -> list:
        """The nodes that the outputs need, in order (shortcuts leave some unused)."""
        needed, live = set(outputs), []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                live.append(node)
                needed.update(i for i in node.input if i)
        live.reverse()
        kept = {i.name for i in self.initializers if i.name in needed}
        self.initializers = [i for i in self.initializers if i.name in kept]
        return live
