"""``compile``: capture a whole training step once, then replay it without the eager bookkeeping.

The first call with given inputs runs the function eagerly and records it (``_capture``). Later
calls run the recorded program (``_program``): one generated Python function per capture, which
calls each op's ``forward`` with a plain context object instead of a graph node (the common
elementwise ops and ``Linear`` as their kernel, into buffers allocated once where the arrays are
small); the backward pass in the order the engine chose at capture, calling each op's
``backward`` with arrays where the op takes them, and accumulating into ``.grad`` as
``AccumulateGrad`` does; opaque calls (``optimizer.step()``) by calling them. The kernels and their
order are the eager ones, so results are equal bit for bit; values are let go after their last
use and saved tensors after their backward, so memory is held no longer than in eager mode.
"""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.jit._capture import Backward, BackwardPlan, StepRecorder, Unsupported, capturing
from dltool.engine.jit._graph import Graph
from dltool.engine.jit._program import Program
from dltool.engine.nn.modules.module import Module
from dltool.engine.tensor import Tensor

cache_size_limit = 8  # captures kept per compiled function before it falls back to eager

# ================================================================ guards and the cache


def _flatten(item: Any, tensors: list) -> Any:
    """The structure of the arguments with tensors taken out into ``tensors`` (a hashable key)."""
    if isinstance(item, Tensor):
        tensors.append(item)
        return Tensor
    if isinstance(item, (tuple, list)):
        return (type(item), tuple(_flatten(x, tensors) for x in item))
    if isinstance(item, dict):
        return (dict, tuple((k, _flatten(v, tensors)) for k, v in item.items()))
    try:
        hash(item)
    except TypeError:
        return (type(item), id(item))
    return item


def _tensor_guard(tensor: Tensor) -> tuple:
    return tensor._data.shape, tensor._data.dtype, str(tensor.device), tensor.requires_grad


def _state(modules: list[Module], graph: Graph) -> tuple:
    """What a capture depends on besides its inputs: modes, hooks, parameter objects, requires_grad."""
    modes = tuple(
        (m.training, len(m._forward_pre_hooks), len(m._forward_hooks), tuple(map(id, m._parameters.values())))
        for m in modules
    )
    return modes, tuple(_tensor_guard(c.tensor) for c in graph.captured)


class _Capture:
    """One captured program and the state it was captured in."""

    def __init__(self, recorder: StepRecorder, result: Any) -> None:
        self.program = Program(recorder.graph, recorder.arrays(), recorder.escaping(result))
        self.modules = recorder.modules
        self.state = _state(self.modules, recorder.graph)

    def valid(self) -> bool:
        return _state(self.modules, self.program.graph) == self.state


class CompiledFunction:
    """A compiled function: calls replay its captured program while the guards hold.

    Attributes:
        graph: the IR of the latest capture (print it to read it).
        captures: how many times the function was captured.
    """

    def __init__(self, fn: Callable, fullgraph: bool) -> None:
        self._fn, self._fullgraph = fn, fullgraph
        self._cache: OrderedDict[tuple, _Capture] = OrderedDict()
        self._eager_reason: str | None = None
        self.captures = 0
        self.graph: Graph | None = None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._eager_reason is not None:
            return self._fn(*args, **kwargs)
        tensors: list[Tensor] = []
        spec = _flatten((args, kwargs), tensors)
        key = (spec, tuple(_tensor_guard(t) for t in tensors), _grad_state.enabled)
        entry = self._cache.get(key)
        if entry is not None and entry.valid():
            self._cache.move_to_end(key)
            return entry.program(tensors)
        return self._capture(key, tensors, args, kwargs)

    def _capture(self, key: tuple, tensors: list[Tensor], args: tuple, kwargs: dict) -> Any:
        if self.captures >= cache_size_limit:
            self._fall_back(
                f"it was captured {self.captures} times (cache_size_limit); the guards keep failing"
            )
            return self._fn(*args, **kwargs)
        recorder = StepRecorder()
        with capturing(recorder):
            for i, tensor in enumerate(tensors):
                recorder.add_input(tensor, f"input{i}")
            result = self._fn(*args, **kwargs)
            try:
                recorder.graph.outputs = recorder.output(result)
            except RuntimeError:
                recorder.refuse(
                    f"it returns a {type(result).__name__} holding other than tensors and numbers"
                )
        recorder.check_captured()
        if recorder.unsupported is None and _builds_graph(result) and not _has_backward(recorder.graph):
            recorder.refuse("it returns tensors that require grad, to be backpropagated outside it")
        self.captures += 1
        if recorder.unsupported is not None:
            self._fall_back(recorder.unsupported)
            return result
        self._cache[key] = _Capture(recorder, result)
        self.graph = recorder.graph
        while len(self._cache) > cache_size_limit:
            self._cache.popitem(last=False)
        return result

    def _fall_back(self, reason: str) -> None:
        message = f"compile: {getattr(self._fn, '__name__', 'the function')} runs eagerly: {reason}"
        if self._fullgraph:
            raise Unsupported(message)
        warnings.warn(message, stacklevel=4)
        self._eager_reason = reason


def _builds_graph(item: Any) -> bool:
    if isinstance(item, Tensor):
        return item.grad_fn is not None
    if isinstance(item, dict):
        return any(_builds_graph(x) for x in item.values())
    if isinstance(item, (tuple, list)):
        return any(_builds_graph(x) for x in item)
    return False


def _has_backward(graph: Graph) -> bool:
    return any(node.op is Backward for node in graph.nodes)


class OptimizedModule(Module):
    """A compiled module: it shares the original's parameters, buffers and submodules, and its
    calls go through a ``CompiledFunction`` of the original's ``__call__``."""

    def __init__(self, module: Module, fullgraph: bool) -> None:
        super().__init__()
        for store in ("_parameters", "_buffers", "_non_persistent_buffers_set", "_modules"):
            object.__setattr__(self, store, getattr(module, store))
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "training", module.training)
        object.__setattr__(self, "_compiled", CompiledFunction(lambda *a, **k: module(*a, **k), fullgraph))

    def train(self, mode: bool = True) -> OptimizedModule:
        self._orig_mod.train(mode)
        object.__setattr__(self, "training", mode)
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._compiled(*args, **kwargs)


def compile(
    model: Callable | Module | None = None,
    *,
    fullgraph: bool = False,
    dynamic: bool | None = None,
    backend: str | Callable = "inductor",
    mode: str | None = None,
    options: dict | None = None,
    disable: bool = False,
) -> Any:
    """Capture ``model`` (a function or a module) on its first call and replay it afterwards.

    A training step (forward, loss, ``backward``, gradient clipping, ``optimizer.step()``,
    ``zero_grad``) is captured whole; the replay runs the same kernels in the same order as eager
    mode, so results are equal bit for bit. See docs/compile.md for the guards and what is refused.

    Args:
        model: the function or module; None gives a decorator.
        fullgraph: raise ``Unsupported`` instead of falling back to eager mode with a warning.
        dynamic, backend, mode, options: accepted for PyTorch compatibility; there is one backend
            (replay), and a new input shape is captured anew (up to ``cache_size_limit``).
        disable: return ``model`` unchanged.

    Returns:
        An ``OptimizedModule`` for a module, else a ``CompiledFunction``.

    Example:
        >>> import dltool.engine as torch
        >>> square = torch.compile(lambda x: x * x)
        >>> square(torch.tensor([3.0]))  # the first call runs eagerly and captures
        tensor([9.])
        >>> square(torch.tensor([4.0]))  # later ones replay
        tensor([16.])
    """
    if model is None:
        return functools.partial(compile, fullgraph=fullgraph, disable=disable)
    if disable:
        return model
    if isinstance(model, Module):
        return OptimizedModule(model, fullgraph)
    if not callable(model):
        raise RuntimeError(f"compile: model must be a callable or a Module, got {type(model).__name__}")
    return CompiledFunction(model, fullgraph)


__all__ = ["BackwardPlan", "CompiledFunction", "OptimizedModule", "Unsupported", "compile"]
