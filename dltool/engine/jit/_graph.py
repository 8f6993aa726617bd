"""The captured-graph IR: values, nodes that apply an op's forward to them, and their printouts.

A graph is a flat list of nodes in the order the ops ran. Each node names the op (a ``Function``
subclass, or ``Full`` for a tensor filled with one value), its arguments (``Value``s for tensors,
plain Python values for attributes) and the values it makes. Values that no node makes are the
graph's inputs or its captured tensors (parameters, buffers, constants), which replay reads live.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.tensor import Tensor


@dataclass(eq=False)
class Value:
    """One array of the graph: its shape, dtype and printed name."""

    name: str
    shape: tuple
    dtype: np.dtype

    def type_str(self) -> str:
        return f"{self.dtype}[{', '.join(map(str, self.shape))}]"


@dataclass(eq=False)
class Captured:
    """A tensor the graph reads but did not make: a parameter, a buffer or a constant."""

    value: Value
    tensor: Tensor


class Full:
    """The op of a tensor that is one value everywhere (such as a zero initial state).

    A tensor made outside the engine's ops while tracing is a constant of the graph; when all its
    elements are equal, it is recorded as this op, whose shape can follow the inputs' shapes.
    """

    @staticmethod
    def forward(ctx: Any, shape: tuple, fill: Any, dtype: np.dtype, device: Any) -> Any:
        return backend.module_for(device).full(shape, fill, dtype=dtype)


class GuardFailure(Exception):
    """A replayed value read differs from the recorded one: the function took another path."""

    def __init__(self, index: int, outcome: Any) -> None:
        super().__init__(f"guard {index} saw another value")
        self.index, self.outcome = index, outcome


class Guard:
    """The op of a tensor's value read into Python (``bool(t)``, ``t.item()``), as ``jit.script``
    records it: the replay reads the value again and stops with ``GuardFailure`` where it differs.

    ``expected`` is the boolean for ``__bool__``, else the value's array on the host; the
    comparison is of the bits (so -0.0 differs from 0.0 and a NaN equals itself).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, read: str, expected: Any, index: int) -> tuple:
        seen = Guard.outcome(x, read)
        if seen != Guard.token(expected):
            raise GuardFailure(index, seen)
        return ()

    @staticmethod
    def apply(x: Tensor, read: str, expected: Any, index: int) -> tuple:
        return Guard.forward(None, x, read, expected, index)

    @staticmethod
    def read(x: Tensor, read: str) -> Any:
        """What the guard compares: a boolean, or a host copy of the array."""
        if read == "__bool__":
            return bool(x._data)
        return np.array(backend.move(x._data, backend.CPU), copy=True)

    @staticmethod
    def outcome(x: Tensor, read: str) -> Any:
        return Guard.token(Guard.read(x, read))

    @staticmethod
    def token(value: Any) -> Any:
        """A hashable stand-in for a read value, equal exactly when the bits are."""
        if isinstance(value, bool):
            return value
        return (value.dtype.str, value.shape, value.tobytes())


@dataclass(eq=False)
class Node:
    """One op applied to values and attributes; ``args`` hold ``Value``s where tensors were."""

    op: Any
    args: tuple
    kwargs: dict
    outputs: tuple

    @property
    def kind(self) -> str:
        return getattr(self.op, "__name__", str(self.op))

    def attributes(self) -> list[tuple[str | None, Any]]:
        """The arguments as ``(parameter name or None, value)``, named after ``op.forward``."""
        names = _parameter_names(self.op)
        named = [(names[i] if i < len(names) else None, arg) for i, arg in enumerate(self.args)]
        return named + list(self.kwargs.items())


def _parameter_names(op: Any) -> list[str]:
    try:
        parameters = list(inspect.signature(op.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


@dataclass(eq=False)
class Graph:
    """A recorded forward pass: inputs, captured tensors, nodes in order, and the output structure."""

    inputs: list[Value] = field(default_factory=list)
    captured: list[Captured] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: Any = None

    def __str__(self) -> str:
        params = [f"%{v.name} : {v.type_str()}" for v in self.inputs]
        params += [f"%{c.value.name} : {c.value.type_str()}" for c in self.captured]
        lines = ["graph(" + ",\n      ".join(params) + "):"]
        for node in self.nodes:
            outs = ", ".join(f"%{v.name} : {v.type_str()}" for v in node.outputs)
            call = f"{node.kind}({_format_args(node, '%')})"
            lines.append(f"  {outs} = {call}" if outs else f"  {call}")  # a guard makes no value
        lines.append(f"  return {_format_structure(self.outputs, '%')}")
        return "\n".join(lines)

    def code(self) -> str:
        """The graph as Python-like text: one assignment per node."""
        names = [_identifier(v.name) for v in self.inputs]
        lines = [f"def forward({', '.join(names)}):"]
        for node in self.nodes:
            outs = ", ".join(_identifier(v.name) for v in node.outputs)
            module = getattr(node.op, "__module__", "").removeprefix("dltool.engine.")
            op = f"{module}.{node.kind}" if module.startswith("ops.") else node.kind
            call = f"{op}({_format_args(node, '', _identifier)})"
            lines.append(f"    {outs} = {call}" if outs else f"    {call}")
        lines.append(f"    return {_format_structure(self.outputs, '', _identifier)}")
        return "\n".join(lines)


def _identifier(name: str) -> str:
    return name.replace(".", "_") if not name[0].isdigit() else f"v{name}"


def _format_value(item: Any, sigil: str, rename: Any) -> str:
    if isinstance(item, Value):
        return sigil + rename(item.name)
    if isinstance(item, (tuple, list)):
        inner = ", ".join(_format_value(x, sigil, rename) for x in item)
        return (
            f"({inner},)"
            if isinstance(item, tuple) and len(item) == 1
            else (f"({inner})" if isinstance(item, tuple) else f"[{inner}]")
        )
    if isinstance(item, np.dtype):
        return str(item)
    return repr(item)


def _format_args(node: Node, sigil: str, rename: Any = str) -> str:
    parts = []
    for name, arg in node.attributes():
        text = _format_value(arg, sigil, rename)
        parts.append(text if name is None or isinstance(arg, Value) else f"{name}={text}")
    return ", ".join(parts)


def _format_structure(outputs: Any, sigil: str, rename: Any = str) -> str:
    return _format_value(outputs, sigil, rename)
