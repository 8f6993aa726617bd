"""``jit.script``: record on each call's path, with the values read into Python as guards.

A scripted function is recorded as ``jit.trace`` records, on its first call with a signature
(the tensors' shapes, dtypes and devices, the modules' train/eval modes, the other arguments'
values). Each read of a tensor's value into Python while recording (``bool(t)``, ``t.item()``,
``int(t)``, ``float(t)``, ``t.tolist()``, ``t.numpy()``, ``numpy.asarray(t)``) becomes a
``Guard`` node of the graph. A replay reads the value again where the guard stands and, if it
differs, stops: the call goes to the recording that took that path, or records a new one. So
Python control flow on tensor values (``if loss > 0:``, a loop of ``int(n)`` steps) is followed,
not frozen as in a trace.

What a graph cannot replay makes the function run eagerly from then on, with one warning naming
the reason, rather than give a wrong answer: a tensor computed outside the engine's recorded ops
(by ``nonzero``, ``argmax``, ``any``, ``unique``, sort's indices, ``.data``, ``detach``, a random
factory), indexing with a boolean mask (``x[x > 0]``: the result has a shape that depends on
values) or writing at a tensor index (``x[index] = v``; reading ``x[index]`` is recorded with
the index as a value, see ``_tracer.IndexBy``), an in-place change of a
recorded tensor, state changed in place (BatchNorm's running statistics in training mode), and
more than 8 recordings.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd import function as _function
from dltool.engine.jit import (
    _KEPT_GRAPHS,
    TracedFunction,
    TracedModule,
    _input_names,
    _Recordings,
    _tracer,
)
from dltool.engine.jit._graph import Graph, Guard, GuardFailure, Node, Value
from dltool.engine.jit._replay import plan, run
from dltool.engine.nn.modules.module import Module
from dltool.engine.ops import index as _index
from dltool.engine.tensor import Tensor

# the engine's functions whose tensors have a shape that depends on the input's values
_DATA_DEPENDENT_SHAPES = frozenset(
    [
        "dltool.engine.ops.index.nonzero",
        "dltool.engine.ops.select._unique",
        "dltool.engine.ops.select.bincount",
    ]
)


class _ScriptRecorder(_tracer._Recorder):
    """The tracer's recorder, turning value reads into guards and noting what it cannot replay."""

    def __init__(self, names: dict[int, str]) -> None:
        super().__init__(names)
        self.unsupported: str | None = None
        self.draws = False  # whether an op drew random numbers (dropout's mask)
        self._guards = 0

    def refuse(self, reason: str) -> None:
        if self.unsupported is None:
            self.unsupported = reason

    def is_traced(self, tensor: Tensor) -> bool:
        return _function._trace_hook is not None  # a read by the function, not inside an op

    def read(self, tensor: Tensor, name: str) -> None:
        value = self.value_of(tensor)
        self.graph.nodes.append(Node(Guard, (value, name, Guard.read(tensor, name), self._guards), {}, ()))
        self._guards += 1

    def outcomes(self) -> tuple:
        """The guards' recorded outcomes, in order: the path this recording took."""
        return tuple(Guard.token(n.args[2]) for n in self.graph.nodes if n.op is Guard)

    def value_of(self, tensor: Tensor) -> Value:
        try:
            return super().value_of(tensor)
        except RuntimeError as error:  # an in-place change of a recorded tensor
            self.refuse(str(error).removeprefix("jit.trace ").split(";")[0])
            return Value("unrecorded", tuple(tensor.shape), tensor._data.dtype)

    def record(self, op: type, args: tuple, kwargs: dict, result: Any) -> None:
        try:
            super().record(op, args, kwargs, result)
        except RuntimeError as error:  # a tensor inside a list argument
            self.refuse(str(error).removeprefix("jit.trace "))

    def output(self, item: Any) -> Any:
        try:
            return super().output(item)
        except RuntimeError as error:
            self.refuse(str(error).removeprefix("jit.trace: "))
            return None

    def changed_captures(self) -> list[str]:
        """Names of captured tensors and of inputs that changed in place while recording."""
        inputs = {id(value) for value in self.graph.inputs}
        return super().changed_captures() + [
            value.name
            for tensor, value, version, _ in self._seen.values()
            if id(value) in inputs and tensor._version_counter[0] != version
        ]

    def _capture(self, tensor: Tensor) -> Value:
        made = self._made.get(id(tensor))
        if made is not None and made[1] is not None:
            self.refuse(f"{made[1]} computes a tensor from tensor values outside the recorded ops")
        return super()._capture(tensor)

    def made(self, tensor: Tensor, frame: Any, source: Any = None) -> str:
        name = super().made(tensor, frame, source)
        if name in _DATA_DEPENDENT_SHAPES:  # refused at once: reading only its shape is enough to bake it in
            self.refuse(f"{name} makes a tensor whose shape depends on values")
        return name


def _refusing_tensor_keys(recorder: _ScriptRecorder, original: Any) -> Any:
    def normalize_key(key: Any, xp: Any) -> Any:
        if _function._trace_hook is not None and _tracer._holds_tensor(key):
            recorder.refuse("indexing with a tensor (x[mask], x[index]) reads the index outside the graph")
        return original(key, xp)

    return normalize_key


def _noting_draws(recorder: _ScriptRecorder, original: Any) -> Any:
    def rng(generator: Any) -> Any:
        recorder.draws = True
        return original(generator)

    return rng


@contextlib.contextmanager
def _script_recording(recorder: _ScriptRecorder) -> Iterator[None]:
    """``_tracer.recording`` with ``numpy.asarray``, tensor indexing and draws watched."""
    patches = [
        (Tensor, "__array__", lambda _, original: _tracer.conversion("__array__", original)),
        (_index, "_normalize_key", _refusing_tensor_keys),
        (backend, "rng", _noting_draws),
    ]
    originals = [(owner, name, vars(owner)[name]) for owner, name, _ in patches]
    try:
        for owner, name, wrap in patches:
            setattr(owner, name, wrap(recorder, getattr(owner, name)))
        with _tracer.recording({}, recorder):
            yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


class _Scripted(_Recordings):
    """The recordings of a scripted function, one per signature and path of guard outcomes,
    kept in the order of their last use (the most recent is tried first)."""

    def __init__(self, fn: Callable, module: Module | None) -> None:
        super().__init__(fn, module)
        self.recorded = 0
        self.eager: str | None = None  # why the function runs eagerly, once it does
        self._positional: dict[int, list[str]] = {}  # the names of n positional arguments

    def __call__(self, inputs: tuple, kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self.eager is not None or _tracer._recorder is not None:  # inside a recording: inlined
            return self._fn(*inputs, **kwargs)
        positional = self._positional.get(len(inputs))
        if positional is None:
            positional = self._positional[len(inputs)] = _input_names(self._forward, len(inputs))
        tensors, names, structure = _flatten(inputs, kwargs, positional)
        if not self._owners_unchanged():
            self._graphs.clear()
        signature = (self._key(tensors), structure)
        known: tuple = ()  # the outcomes of the guards seen so far
        tried: set[tuple] = set()
        while (key := self._find(signature, known, tried)) is not None:
            tried.add(key)
            graph, steps, draws = self._graphs[key]
            state = backend.default_generator.numpy.bit_generator.state if draws else None
            try:
                outputs = run(graph, steps, tensors)
            except GuardFailure as miss:
                if state is not None:  # the recording that follows draws the same numbers again
                    backend.default_generator.numpy.bit_generator.state = state
                known = key[1][: miss.index] + (miss.outcome,)
                continue
            self._graphs.move_to_end(key)
            return outputs
        return self._record_path(signature, tensors, names, inputs, kwargs)

    def _find(self, signature: tuple, known: tuple, tried: set) -> tuple | None:
        for key in reversed(self._graphs):
            if key[0] == signature and key[1][: len(known)] == known and key not in tried:
                return key
        return None

    def _record_path(self, signature: tuple, tensors: tuple, names: list, inputs: tuple, kwargs: dict) -> Any:
        if self.recorded >= _KEPT_GRAPHS:
            self._fall_back(
                f"it needed more than {_KEPT_GRAPHS} recordings (argument values or the values it "
                "reads into Python keep changing)"
            )
            return self._fn(*inputs, **kwargs)
        recorder = _ScriptRecorder(self._named_tensors())
        with _script_recording(recorder):
            for x, name in zip(tensors, names, strict=True):
                recorder.add_input(x, name)
            outputs = self._fn(*inputs, **kwargs)
            recorder.graph.outputs = recorder.output(outputs)
        changed = recorder.changed_captures()
        if changed:
            recorder.refuse(
                f"it changes {', '.join(changed)} in place (such as BatchNorm's running statistics "
                "in training mode), which a replay would not repeat"
            )
        if recorder.unsupported is not None:
            self._fall_back(recorder.unsupported)
            return outputs
        graph = recorder.graph
        self.recorded += 1
        self._graphs[(signature, recorder.outcomes())] = (graph, plan(graph), recorder.draws)
        self.first = self.first or graph
        return outputs

    def _fall_back(self, reason: str) -> None:
        self.eager = reason
        self._graphs.clear()
        name = getattr(self._fn, "__name__", type(self._fn).__name__)
        warnings.warn(f"jit.script: {name} runs eagerly from now on: {reason}", UserWarning, stacklevel=5)


def _flatten(args: tuple, kwargs: dict, positional: list[str]) -> tuple[tuple, list[str], tuple]:
    """The tensors among the arguments, their names, and the arguments with each tensor as a
    placeholder and each other value as itself (a float by its bits), for the cache key."""
    tensors: list[Tensor] = []
    names: list[str] = []

    def walk(item: Any, name: str) -> Any:
        if isinstance(item, Tensor):
            tensors.append(item)
            names.append(name)
            return Tensor
        if isinstance(item, (tuple, list)):
            return type(item), tuple(walk(x, f"{name}_{i}") for i, x in enumerate(item))
        if isinstance(item, float):
            return float, item.hex()
        if item is None or isinstance(item, (bool, int, str, np.dtype)):
            return type(item), item
        raise TypeError(
            f"jit.script: argument '{name}' is a {type(item).__name__}; a scripted function takes "
            "tensors, numbers, strings, dtypes, None, and tuples or lists of them"
        )

    structure = tuple(walk(a, n) for a, n in zip(args, positional, strict=True))
    structure += tuple((k, walk(kwargs[k], k)) for k in sorted(kwargs))
    return tuple(tensors), names, structure


class _Recorded:
    """The graphs of a scripted function or module."""

    _recordings: _Recordings

    @property
    def graph(self) -> Graph:
        """The first graph recorded (with its ``Guard`` nodes)."""
        if self._recordings.first is None:
            raise RuntimeError(
                "jit.script records on the first call: call the scripted function (or pass "
                "example_inputs to jit.script) before reading its graph"
            )
        return self._recordings.first

    @property
    def graphs(self) -> list[Graph]:
        """The graphs kept now, one per signature and path, the most recently used last."""
        return [entry[0] for entry in self._recordings._graphs.values()]


class ScriptFunction(_Recorded, TracedFunction):
    """A scripted function: calls replay the recording of their path, or record it.

    Attributes:
        graph: the first graph recorded (with its ``Guard`` nodes).
        code: that graph as Python-like text.
        graphs: the graphs kept now, the most recently used last.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._recordings(args, kwargs)


class ScriptModule(_Recorded, TracedModule):
    """A scripted module: it shares the original's parameters, buffers and submodules, and its
    ``forward`` replays (or records) the recording of the call's path (see ``ScriptFunction``)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        object.__setattr__(self._original, "training", self.training)
        return self._recordings(args, kwargs)


def script(obj: Callable | Module, optimize: Any = None, example_inputs: list | None = None) -> Any:
    """Script a function or a module: record each call's path once and replay it, following
    Python control flow on tensor values through guards.

    Unlike ``jit.trace``, a value read into Python (``if x.sum() > 0:``, ``int(n)``) is checked
    on every replay: where it differs, the call records (once) and caches the path it takes.

    Args:
        obj: a function of tensors and Python values, or a ``Module`` (its ``forward`` is scripted).
            Also a decorator: ``@jit.script``.
        optimize: ignored (deprecated in PyTorch too).
        example_inputs: tuples of arguments to record with now, so that ``graph`` is ready.

    Returns:
        A ``ScriptModule`` for a module, else a ``ScriptFunction``, with ``graph`` and ``code``.

    Raises:
        TypeError: ``obj`` is a class or not callable, or (on a call) an argument is neither a
            tensor nor a plain Python value.

    Deliberate differences from PyTorch: nothing is compiled from source (no TorchScript: no
    ``save``, no type annotations needed), each recording is specific to its input shapes, and a
    function the graph cannot replay runs eagerly after one warning, where TorchScript refuses
    to compile it. See ``docs/compile.md``, "jit.script: guards".

    Example:
        >>> import dltool.engine as torch
        >>> @torch.jit.script
        ... def f(x):
        ...     return x * 2 if x.sum() > 0 else -x
        >>> f(torch.tensor([1.0, 2.0])), f(torch.tensor([-1.0, -2.0]))
        (tensor([2., 4.]), tensor([1., 2.]))
    """
    if isinstance(obj, (ScriptFunction, ScriptModule)):
        return obj
    if isinstance(obj, type) or not callable(obj):
        raise TypeError(f"jit.script: expected a function or a Module, got {_describe(obj)}")
    module = obj if isinstance(obj, Module) else None
    recordings = _Scripted(obj, module)
    scripted: Any = (
        ScriptModule(module, recordings) if module is not None else ScriptFunction(obj, recordings)
    )
    for sample in example_inputs or []:
        scripted(*(sample if isinstance(sample, tuple) else (sample,)))
    return scripted


def _describe(obj: Any) -> str:
    return f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
