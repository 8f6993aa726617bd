"""Graph capture: ``jit.trace`` records a forward pass once and replays it.

``trace(fn_or_module, example_inputs)`` runs the function once, records every engine op into a
``Graph`` (print ``traced.graph``, or ``traced.code`` for Python-like text) and returns a callable
(a ``TracedModule`` for a module) that replays the recorded ops' kernels in the recorded order, so
results equal eager ones bit for bit. The IR is also what ``dltool.engine.onnx.export`` writes.

Guards, as TinyJit keys its captures: a graph is replayed only for inputs of the shapes, dtypes and
devices it was recorded with, and for a module only in the train/eval modes and with the
parameter objects of its recording. Other inputs record a new graph (one eager run; up to 8 are
kept). Python control flow is fixed at recording; reading a traced tensor's value into Python
(``bool``, ``item``, ``tolist``, ``numpy``) gives a ``TracerWarning``, as in PyTorch.

``script(fn_or_module)`` (also ``@jit.script``) records on the first call instead, and turns
each such read into a ``Guard`` node: a replay that reads another value records and caches the
path the function takes then (see ``_script``).

Deliberate differences from PyTorch: the result is not TorchScript (``jit.script`` records
calls rather than compiling source; no ``save`` or ``load``), and a new input shape records again
rather than replaying a shape-generic graph.
"""

from __future__ import annotations

import inspect
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine.autograd.grad_mode import no_grad
from dltool.engine.jit._compile import CompiledFunction, OptimizedModule, Unsupported
from dltool.engine.jit._graph import Captured, Full, Graph, Node, Value
from dltool.engine.jit._replay import plan, run
from dltool.engine.jit._tracer import TracerWarning, recording
from dltool.engine.nn.modules.module import Module
from dltool.engine.tensor import Tensor
from dltool.engine.utils._structure import leaves

__all__ = [
    "Captured",
    "CompiledFunction",
    "Full",
    "Graph",
    "Node",
    "OptimizedModule",
    "ScriptFunction",
    "ScriptModule",
    "TracedModule",
    "TracerWarning",
    "TracingCheckError",
    "Unsupported",
    "Value",
    "script",
    "trace",
]

_KEPT_GRAPHS = 8


class TracingCheckError(Exception):
    """A traced graph did not reproduce the function on other inputs of the same shapes."""


def _as_inputs(example_inputs: Any) -> tuple:
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"jit.trace: example_inputs[{i}] must be a Tensor, got {type(x).__name__}")
    return inputs


def _input_names(fn: Callable, count: int) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else f"input{i}" for i in range(count)]


class _Recordings:
    """The graphs of one function, one per input signature (shapes, dtypes, devices, modes)."""

    def __init__(self, fn: Callable, module: Module | None) -> None:
        self._fn, self._module = fn, module
        self._graphs: OrderedDict[tuple, tuple[Graph, list]] = OrderedDict()
        self._owners: list[tuple[dict, str, Any]] = []
        self._tree = [] if module is None else list(module.modules())
        self.first: Graph | None = None

    def _key(self, inputs: tuple) -> tuple:
        shapes = tuple((x._data.shape, x._data.dtype, x.device) for x in inputs)
        modes = tuple(m.training for m in self._tree)
        return shapes, modes

    def _named_tensors(self) -> dict[int, str]:
        """Names of the module's parameters and buffers, noting where each (and each submodule)
        is held, so that replacing one is seen."""
        if self._module is None:
            return {}
        names, self._owners, self._tree = {}, [], list(self._module.modules())
        for prefix, module in self._module.named_modules(remove_duplicate=False):
            self._owners += [(module._modules, key, child) for key, child in module._modules.items()]
            for store in (module._parameters, module._buffers):
                for key, tensor in store.items():
                    if tensor is not None and id(tensor) not in names:
                        names[id(tensor)] = f"{prefix}.{key}" if prefix else key
                        self._owners.append((store, key, tensor))
        return names

    def _owners_unchanged(self) -> bool:
        return all(store.get(key) is held for store, key, held in self._owners)

    def record(self, inputs: tuple) -> tuple[Any, Graph]:
        """Run the function once, recording its ops; return its outputs and the graph."""
        with recording(self._named_tensors()) as recorder:
            for x, name in zip(inputs, _input_names(self._forward, len(inputs)), strict=True):
                recorder.add_input(x, name)
            outputs = self._fn(*inputs)
            recorder.graph.outputs = recorder.output(outputs)
        written = recorder.changed_inputs()
        if written:
            raise RuntimeError(
                f"jit.trace cannot record an in-place change of an input or of a tensor held from "
                f"outside the function ({', '.join(written)}): a replay would not repeat it; return "
                "the new value instead and write it after the call"
            )
        changed = recorder.changed_captures()
        if changed:
            warnings.warn(
                f"the traced function changed {', '.join(changed)} in place (such as BatchNorm's "
                "running statistics in training mode); replaying the trace does not repeat that",
                TracerWarning,
                stacklevel=4,
            )
        graph = recorder.graph
        _keep(self._graphs, self._key(inputs), (graph, plan(graph)))
        if self.first is None:
            self.first = graph
        return outputs, graph

    @property
    def _forward(self) -> Callable:
        return self._fn if self._module is None else self._module.forward

    def __call__(self, inputs: tuple) -> Any:
        if not self._owners_unchanged():
            self._graphs.clear()
        entry = self._graphs.get(self._key(inputs))
        if entry is None:
            return self.record(inputs)[0]
        return run(entry[0], entry[1], inputs)


def _keep(cache: OrderedDict, key: tuple, entry: Any) -> None:
    cache[key] = entry
    if len(cache) > _KEPT_GRAPHS:
        cache.popitem(last=False)


class TracedFunction:
    """A traced function: calling it replays its graph.

    Attributes:
        graph: the graph recorded from the example inputs.
        code: that graph as Python-like text.
    """

    def __init__(self, fn: Callable, recordings: _Recordings) -> None:
        self._fn, self._recordings = fn, recordings
        self.__name__ = getattr(fn, "__name__", "traced")

    @property
    def graph(self) -> Graph:
        return self._recordings.first  # type: ignore[return-value]

    @property
    def code(self) -> str:
        return self.graph.code()

    def __call__(self, *inputs: Any) -> Any:
        return self._recordings(_as_inputs(inputs))


class TracedModule(Module):
    """A traced module: it shares the original's parameters, buffers and submodules, and its
    ``forward`` replays the graph (parameters are read as they are at each call)."""

    def __init__(self, module: Module, recordings: _Recordings) -> None:
        super().__init__()
        for store in ("_parameters", "_buffers", "_non_persistent_buffers_set", "_modules"):
            object.__setattr__(self, store, getattr(module, store))
        object.__setattr__(self, "training", module.training)
        object.__setattr__(self, "_original", module)
        object.__setattr__(self, "_recordings", recordings)
        object.__setattr__(self, "original_name", type(module).__name__)

    @property
    def graph(self) -> Graph:
        return self._recordings.first

    @property
    def code(self) -> str:
        return self.graph.code()

    def forward(self, *inputs: Any) -> Any:
        object.__setattr__(self._original, "training", self.training)
        return self._recordings(_as_inputs(inputs))

    def extra_repr(self) -> str:
        return f"original_name={self.original_name}"


def trace(
    func: Callable | Module,
    example_inputs: Any,
    check_trace: bool = True,
    check_inputs: list | None = None,
    check_tolerance: float = 1e-5,
) -> Any:
    """Record ``func`` run on ``example_inputs`` and return a callable that replays it.

    Args:
        func: a function of tensors, or a ``Module`` (its ``forward`` is traced).
        example_inputs: a tensor, or a tuple of tensors: the positional arguments.
        check_trace: run the function and the replay on ``check_inputs`` and compare; a mismatch
            (an op the trace could not see, or control flow on tensor values) raises
            ``TracingCheckError``. Skipped for a module in training mode (dropout draws anew).
        check_inputs: inputs to check with; by default the example inputs with their values
            changed (floats moved, integers rolled along the last dimension), shapes kept.
        check_tolerance: the relative and absolute tolerance of that comparison.

    Returns:
        A ``TracedModule`` for a module, else a ``TracedFunction``, with ``graph`` and ``code``.

    Raises:
        TypeError: an example input is not a tensor.
        RuntimeError: the function changes in place an input, a tensor held from outside it (not
            a parameter or buffer), or a traced tensor that it reads afterwards: a replay would
            not repeat the change.
        TracingCheckError: the check failed.

    Example:
        >>> import dltool.engine as torch
        >>> traced = torch.jit.trace(lambda x: torch.relu(x) * 2, torch.ones(3))
        >>> traced(torch.tensor([-1.0, 2.0]))
        tensor([0., 4.])
    """
    module = func if isinstance(func, Module) else None
    inputs = _as_inputs(example_inputs)
    recordings = _Recordings(func, module)
    recordings.record(inputs)
    traced: Any = TracedModule(module, recordings) if module is not None else TracedFunction(func, recordings)
    if check_trace and not (module is not None and module.training):
        for sample in check_inputs or [_changed(inputs)]:
            _check(func, traced, _as_inputs(sample), check_tolerance)
    return traced


def _changed(inputs: tuple) -> tuple:
    """The inputs with other values and the same shapes, dtypes and devices."""
    rng = np.random.default_rng(0)
    out = []
    for x in inputs:
        data = x._data
        if data.dtype.kind == "f":
            noise = rng.standard_normal(data.shape).astype(data.dtype)
            changed = data + x._xp().asarray(noise)
        else:
            changed = x._xp().roll(data, 1, axis=-1) if data.ndim else data
        out.append(Tensor._make(changed))
    return tuple(out)


def _check(func: Callable, traced: Any, inputs: tuple, tolerance: float) -> None:
    with no_grad():
        expected = leaves(func(*inputs), Tensor)
        replayed = leaves(traced(*inputs), Tensor)
    for i, (want, got) in enumerate(zip(expected, replayed, strict=True)):
        if want.shape != got.shape or not np.allclose(
            _host(got), _host(want), rtol=tolerance, atol=tolerance, equal_nan=True
        ):
            raise TracingCheckError(
                f"output {i} of the traced graph differs from the Python function's on other inputs "
                "of the same shapes: the function reads tensor values into Python (control flow on "
                "them), or computes outside the engine's ops (such as through .data or numpy)"
            )


def _host(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


# NOTE: last, as ``_script`` builds on the classes above
from dltool.engine.jit._script import ScriptFunction, ScriptModule, script  # noqa: E402
