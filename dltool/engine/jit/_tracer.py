"""Recording: while a trace runs, every ``Function.apply`` becomes a node of a ``Graph``.

``autograd.function`` calls ``_trace_hook`` at the top of ``Function.apply`` when it is set (it
is None outside a trace, so the eager path pays one global lookup). The hook runs the op as
usual, unhooked, so the ops a ``forward`` may call inside are part of its node, and notes the
call. Comparison operators, which the engine computes without a ``Function``, are recorded too
(as ``Compare``), and reading a traced tensor into Python is reported to the recorder (a trace
warns, ``jit.script`` records a guard); both by wrapping ``Tensor``'s methods for the duration
of the trace, so eager ``item()`` and ``bool()`` pay nothing. The tensor factories are wrapped
too, to note the tensors the call makes outside ops (only those may become ``Full`` nodes: a
tensor held from before the call is read as it is at each replay), and so is indexing with
tensors, which the engine turns into fixed arrays (recorded as ``IndexBy``, with the key's
tensors as values).

NOTE: the hook is process-global, as the engine's grad mode is (a plain global is cheaper to test
than a ``ContextVar``): ops that other threads run during a trace are recorded too.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dltool.engine.autograd import function as _function
from dltool.engine.autograd.function import Function
from dltool.engine.jit._graph import Captured, Full, Graph, Node, Value
from dltool.engine.ops import index as _index
from dltool.engine.tensor import Tensor


class TracerWarning(Warning):
    """A trace may not generalize: Python took a tensor's value, or state changed in place."""


_CONVERSIONS = {
    "__bool__": "a Python boolean",
    "item": "a Python number",
    "tolist": "a Python list",
    "numpy": "a NumPy array",
}

# what a read gives Python, by the name a recorder is told: the methods above, and a mask index
_READS = {**_CONVERSIONS, "nonzero": "the indices of its True elements (indexing with a boolean mask)"}

_COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__")

_CREATION = "dltool.engine.creation"

# the engine's functions that make tensors from Python values only, outside ops
_FROM_PYTHON_VALUES = frozenset(
    [
        f"{_CREATION}.{name}"
        for name in (
            "zeros", "ones", "empty", "empty_strided", "full", "eye", "arange", "linspace", "logspace",
            "like", "full_like", "zeros_like", "ones_like", "new_zeros", "new_ones", "new_empty",
            "new_full", "tensor", "as_tensor", "new_tensor", "from_numpy",
        )
    ]
    + ["dltool.engine.ops.elementwise._scalar"]
)  # fmt: skip

_recorder: _Recorder | None = None


class Compare:
    """The op of a comparison operator (``x > 0``): the engine computes it outside ``Function``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, other: Any, operator: str) -> Any:
        return getattr(Tensor, operator)(x, other)

    @staticmethod
    def apply(x: Tensor, other: Any, operator: str) -> Any:
        """What a replay with autograd calls: the comparison has no gradient to record."""
        return Compare.forward(None, x, other, operator)


@dataclass(frozen=True)
class Slot:
    """Where the key of an ``IndexBy`` node holds its ``n``-th tensor argument."""

    n: int

    def __repr__(self) -> str:
        return f"Slot({self.n})"


class IndexBy(Function):
    """``x[key]`` with integer tensors in the key, as a recording runs it: the key's tensors are
    arguments (``Slot``s mark their places), so a replay indexes with their values then, where
    ``ops.index.getitem`` would fix them into the node as arrays."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, key: Any, *tensors: Tensor) -> Any:
        ctx.count = len(tensors)
        steps, advanced = _index._normalize_key(_filled(key, tensors), x._xp())
        return _index.Getitem.forward(ctx, x, steps, advanced)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple:
        return (_index.Getitem.backward(ctx, grad_output)[0], None, *(None,) * ctx.count)


class ViewBy(IndexBy):
    """``IndexBy`` for a key whose tensors are 0-dim integers (``x[i]``): a view of ``x``, as
    ``x[int(i)]`` is."""

    _is_view = True

    @staticmethod
    def put_back(base: Tensor, value: Tensor, key: Any, *tensors: Tensor) -> Tensor:
        steps, advanced = _index._normalize_key(_filled(key, tensors), base._xp())
        return _index.IndexPut.apply(base, steps, advanced, value)


def _filled(key: Any, tensors: tuple) -> Any:
    if isinstance(key, Slot):
        return tensors[key.n]
    return tuple(tensors[p.n] if isinstance(p, Slot) else p for p in key) if isinstance(key, tuple) else key


class _Recorder:
    """Builds one graph from the ops that run, mapping each tensor seen to its ``Value``."""

    def __init__(self, names: dict[int, str]) -> None:
        self.graph = Graph()
        self._names = names  # id of a parameter or buffer -> its dotted name
        self._seen: dict[int, tuple[Tensor, Value, int, bool]] = {}  # id -> tensor, value, version, traced
        self._made: dict[int, tuple[Tensor, str | None]] = {}  # id -> tensor, why it is not replayable
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

    def read(self, tensor: Tensor, name: str) -> None:
        """Note that the method ``name`` read a traced tensor's value into Python."""
        warnings.warn(
            f"Converting a tensor to {_READS[name]} might cause the trace to be incorrect. We "
            "can't record the data flow of Python values, so this value will be treated as a constant "
            "in the future. This means that the trace might not generalize to other inputs!",
            TracerWarning,
            stacklevel=3,
        )

    def _capture(self, tensor: Tensor) -> Value:
        data = tensor._data
        name = self._names.get(id(tensor))
        made = self._made.get(id(tensor))
        if name is None and made is not None and made[1] is None and _uniform(data):
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

    def made(self, tensor: Tensor, frame: Any, source: Any = None) -> str:
        """Note a tensor made outside an op by the code of ``frame`` (from ``source``); return
        the name of the function that made it."""
        module = frame.f_globals.get("__name__", "")
        if module == _CREATION:
            while frame.f_back is not None and frame.f_back.f_globals.get("__name__") == module:
                frame = frame.f_back  # the factory that the caller called
        name = f"{module}.{frame.f_code.co_name}"
        reason = None
        if not module.startswith("dltool.engine."):  # the function's own code: Tensor(...)
            reason = "Tensor(tensor)" if _holds_tensor(source) else None
        elif name not in _FROM_PYTHON_VALUES or _holds_tensor(frame.f_locals.get("data")):
            reason = name
        self._made[id(tensor)] = (tensor, reason)
        return name

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

    def changed_inputs(self) -> list[str]:
        """Names of the inputs, and of the captured tensors held from outside (no parameter or
        buffer), that changed in place while tracing."""
        inputs = {id(value) for value in self.graph.inputs}
        return [
            value.name
            for tensor, value, version, traced in self._seen.values()
            if (id(value) in inputs or not traced and id(tensor) not in self._names)
            and tensor._version_counter[0] != version
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


def conversion(name: str, original: Any) -> Any:
    """``Tensor``'s method ``name`` (``original``), reporting reads of a traced tensor's value to
    the recorder (one report for ``bool(t)``, which reads through ``item``)."""

    def conversion(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        recorder = _recorder
        if recorder is None or recorder.converting or not recorder.is_traced(self):
            return original(self, *args, **kwargs)
        recorder.converting = True
        try:
            result = original(self, *args, **kwargs)
        finally:
            recorder.converting = False
        recorder.read(self, name)
        return result

    return conversion


def _recorded_comparison(operator: str, original: Any) -> Any:
    def comparison(self: Tensor, other: Any) -> Any:
        result = original(self, other)
        recorder = _recorder
        if recorder is not None and isinstance(result, Tensor):
            recorder.record(Compare, (self, other, operator), {}, result)
        return result

    return comparison


def _noting_make(original: Any) -> Any:
    def make(array: Any, grad_fn: Any = None, output_nr: int = 0, version_counter: Any = None) -> Tensor:
        tensor = original(array, grad_fn, output_nr, version_counter)
        if _function._trace_hook is not None and _recorder is not None:  # NOTE: inside an op the hook is off
            _recorder.made(tensor, sys._getframe(1))
        return tensor

    return staticmethod(make)


def _noting_init(original: Any) -> Any:
    def __init__(self: Tensor, data: Any, requires_grad: bool = False) -> None:
        original(self, data, requires_grad)
        if _function._trace_hook is not None and _recorder is not None:
            _recorder.made(self, sys._getframe(1), data)

    return __init__


def _recorded_getitem(original: Any) -> Any:
    def getitem(input: Tensor, key: Any) -> Tensor:
        recorder = _recorder
        if recorder is None or _function._trace_hook is None or not _holds_tensor(key):
            return original(input, key)
        parts = key if isinstance(key, tuple) else (key,)
        tensors = tuple(p for p in parts if isinstance(p, Tensor))
        nested = [t for p in parts if not isinstance(p, Tensor) for t in _tensors_in(p)]
        if nested or any(t._data.dtype.kind not in "iu" for t in tensors):
            _report_host_reads(recorder, [t for t in tensors if t._data.dtype.kind == "b"], nested)
            return original(input, key)
        slots = {id(t): Slot(n) for n, t in enumerate(tensors)}
        template = tuple(slots.get(id(p), p) for p in parts) if isinstance(key, tuple) else slots[id(key)]
        xp = input._xp()
        advanced = any(hasattr(_index._index_part(p, xp), "dtype") for p in parts)
        return (IndexBy if advanced else ViewBy).apply(input, template, *tensors)

    return getitem


def _tensors_in(item: Any) -> list[Tensor]:
    if isinstance(item, (tuple, list)):
        return [t for x in item for t in _tensors_in(x)]
    return [item] if isinstance(item, Tensor) else []


def _report_host_reads(recorder: _Recorder, masks: list[Tensor], nested: list[Tensor]) -> None:
    """Report the index tensors that ``getitem`` reads on the host: boolean masks (for the
    positions they select) and tensors inside lists (through ``numpy.asarray``)."""
    for tensor, read in [*((m, "nonzero") for m in masks), *((t, "numpy") for t in nested)]:
        if recorder.is_traced(tensor):
            recorder.read(tensor, read)


@contextlib.contextmanager
def recording(names: dict[int, str], recorder: _Recorder | None = None) -> Iterator[_Recorder]:
    """Record the engine's ops into a new graph (into ``recorder``, when given) while the block runs."""
    global _recorder
    if _recorder is not None:
        raise RuntimeError("jit.trace cannot run inside another trace")
    originals = {name: getattr(Tensor, name) for name in (*_CONVERSIONS, *_COMPARISONS)}
    patches = [
        (Tensor, "_make", _noting_make),
        (Tensor, "__init__", _noting_init),
        (_index, "getitem", _recorded_getitem),
    ]
    replaced = [(owner, name, vars(owner)[name]) for owner, name, _ in patches]
    _recorder = _Recorder(names) if recorder is None else recorder
    try:
        for name, original in originals.items():
            wrap = conversion if name in _CONVERSIONS else _recorded_comparison
            setattr(Tensor, name, wrap(name, original))
        for owner, name, wrap in patches:
            setattr(owner, name, wrap(getattr(owner, name)))
        _function._trace_hook = _hook
        yield _recorder
    finally:
        _function._trace_hook = None
        for name, original in originals.items():
            setattr(Tensor, name, original)
        for owner, name, original in replaced:
            setattr(owner, name, original)
        _recorder = None
