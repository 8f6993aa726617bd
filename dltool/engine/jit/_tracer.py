"""Recording: while a trace runs, every ``Function.apply`` becomes a node of a ``Graph``.

``autograd.function`` calls ``_trace_hook`` at the top of ``Function.apply`` when it is set (it
is None outside a trace, so the eager path pays one global lookup). The hook runs the op as
usual, unhooked, so the ops a ``forward`` may call inside are part of its node, and notes the
call. Comparison operators, which the engine computes without a ``Function``, are recorded too
(as ``Compare``), and reading a traced tensor into Python warns; both by wrapping ``Tensor``'s
methods for the duration of the trace.

NOTE: the hook is process-global, as the engine's grad mode is (a plain global is cheaper to test
than a ``ContextVar``): ops that other threads run during a trace are recorded too.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from dltool.engine.autograd import function as _function
from dltool.engine.jit._graph import Captured, Full, Graph, Node, Value
from dltool.engine.tensor import Tensor


class TracerWarning(Warning):
    """A trace may not generalize: Python took a tensor's value, or state changed in place."""


_CONVERSIONS = {
    "__bool__": "a Python boolean",
    "item": "a Python number",
    "tolist": "a Python list",
    "numpy": "a NumPy array",
}

_COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")

_recorder: _Recorder | None = None


class Compare:
    """The op of a comparison operator (``x > 0``): the engine computes it outside ``Function``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, other: Any, operator: str) -> Any:
        return getattr(Tensor, operator)(x, other)


class _Recorder:
    """Builds one graph from the ops that run, mapping each tensor seen to its ``Value``."""

    def __init__(self, names: dict[int, str]) -> None:
        self.graph = Graph()
        self._names = names  # id of a parameter or buffer -> its dotted name
        self._seen: dict[int, tuple[Tensor, Value, int, bool]] = {}  # id -> tensor, value, version, traced
        self._count = 0
        self.converting = False

    def add_input(self, tensor: Tensor, name: str) -> None:
        value = Value(name, tuple(tensor.shape), tensor._data.dtype)
        self.graph.inputs.append(value)
        self._remember(tensor, value, traced=True)

    def _remember(self, tensor: Tensor, value: Value, traced: bool) -> None:
        self._seen[id(tensor)] = (tensor, value, tensor._version_counter[0], traced)

    def _new_value(self, data: Any) -> Value:
        self._count += 1
        return Value(str(self._count - 1), tuple(data.shape), data.dtype)

    def value_of(self, tensor: Tensor) -> Value:
        """The value a tensor holds: its node's output, an input, or a newly captured tensor."""
        entry = self._seen.get(id(tensor))
        if entry is None:
            return self._capture(tensor)
        _, value, version, traced = entry
        if traced and tensor._version_counter[0] != version:
            raise RuntimeError(
                f"jit.trace cannot record an in-place change of a traced tensor (%{value.name}, "
                f"{value.type_str()}); write the function with the out-of-place op"
            )
        return value

    def is_traced(self, tensor: Tensor) -> bool:
        entry = self._seen.get(id(tensor))
        return entry is not None and entry[3]

    def _capture(self, tensor: Tensor) -> Value:
        data = tensor._data
        name = self._names.get(id(tensor))
        if name is None and _uniform(data):
            value = self._new_value(data)
            fill = data.reshape(-1)[0].item()
            self.graph.nodes.append(
                Node(Full, (tuple(data.shape), fill, data.dtype, tensor.device), {}, (value,))
            )
            self._remember(tensor, value, traced=True)
            return value
        if name is None:
            name = f"constant{sum(1 for c in self.graph.captured if c.value.name.startswith('constant'))}"
        value = Value(name, tuple(data.shape), data.dtype)
        self.graph.captured.append(Captured(value, tensor))
        self._remember(tensor, value, traced=False)
        return value

    def record(self, op: type, args: tuple, kwargs: dict, result: Any) -> None:
        node_args = tuple(self._argument(op, a) for a in args)
        node_kwargs = {k: self._argument(op, a) for k, a in kwargs.items()}
        results = result if isinstance(result, tuple) else (result,)
        outputs = []
        for tensor in results:
            value = self._new_value(tensor._data)
            self._remember(tensor, value, traced=True)
            outputs.append(value)
        self.graph.nodes.append(Node(op, node_args, node_kwargs, tuple(outputs)))

    def _argument(self, op: type, arg: Any) -> Any:
        if isinstance(arg, Tensor):
            return self.value_of(arg)
        if isinstance(arg, (tuple, list)) and any(_holds_tensor(a) for a in arg):
            raise RuntimeError(
                f"jit.trace cannot record {op.__name__}: a tensor inside a {type(arg).__name__} argument"
            )
        return arg

    def changed_captures(self) -> list[str]:
        """Names of captured tensors that changed in place while tracing."""
        return [
            value.name
            for tensor, value, version, traced in self._seen.values()
            if not traced and tensor._version_counter[0] != version
        ]

    def output(self, item: Any) -> Any:
        """The output structure with each tensor replaced by its value."""
        if isinstance(item, Tensor):
            return self.value_of(item)
        if isinstance(item, (tuple, list)):
            return type(item)(self.output(x) for x in item)
        if item is None or isinstance(item, (bool, int, float, str)):
            return item
        raise RuntimeError(
            f"jit.trace: the traced function returned a {type(item).__name__}; only tensors, tuples, lists, numbers and None are supported"
        )


def _holds_tensor(item: Any) -> bool:
    if isinstance(item, (tuple, list)):
        return any(_holds_tensor(x) for x in item)
    return isinstance(item, Tensor)


def _uniform(data: Any) -> bool:
    """All elements equal, bit for bit (so -0.0 and 0.0 differ)."""
    if data.size == 0:
        return False
    flat = data.reshape(-1)
    if data.dtype.kind == "f":
        flat = flat.view(np.dtype(f"u{data.dtype.itemsize}"))
    return bool((flat == flat[0]).all())


def _hook(op: type, args: tuple, kwargs: dict) -> Any:
    _function._trace_hook = None
    try:
        result = op.apply(*args, **kwargs)
    finally:
        _function._trace_hook = _hook
    if _recorder is not None:
        _recorder.record(op, args, kwargs, result)
    return result


def _warning_conversion(name: str, original: Any) -> Any:
    what = _CONVERSIONS[name]

    def conversion(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        recorder = _recorder
        if recorder is None or recorder.converting or not recorder.is_traced(self):
            return original(self, *args, **kwargs)
        warnings.warn(
            f"Converting a tensor to {what} might cause the trace to be incorrect. We can't record "
            "the data flow of Python values, so this value will be treated as a constant in the "
            "future. This means that the trace might not generalize to other inputs!",
            TracerWarning,
            stacklevel=2,
        )
        recorder.converting = True
        try:
            return original(self, *args, **kwargs)
        finally:
            recorder.converting = False

    return conversion


def _recorded_comparison(operator: str, original: Any) -> Any:
    def comparison(self: Tensor, other: Any) -> Any:
        result = original(self, other)
        recorder = _recorder
        if recorder is not None and isinstance(result, Tensor):
            recorder.record(Compare, (self, other, operator), {}, result)
        return result

    return comparison


@contextlib.contextmanager
def recording(names: dict[int, str], recorder: _Recorder | None = None) -> Iterator[_Recorder]:
    """Record the engine's ops into a new graph (into ``recorder``, when given) while the block runs."""
    global _recorder
    if _recorder is not None:
        raise RuntimeError("jit.trace cannot run inside another trace")
    originals = {name: getattr(Tensor, name) for name in (*_CONVERSIONS, *_COMPARISONS)}
    _recorder = _Recorder(names) if recorder is None else recorder
    try:
        for name, original in originals.items():
            wrap = _warning_conversion if name in _CONVERSIONS else _recorded_comparison
            setattr(Tensor, name, wrap(name, original))
        _function._trace_hook = _hook
        yield _recorder
    finally:
        _function._trace_hook = None
        for name, original in originals.items():
            setattr(Tensor, name, original)
        _recorder = None
