"""``compile``: capture a whole training step once, then replay it without the eager bookkeeping.

The first call with given inputs runs the function eagerly and records it (``_capture``). Later
calls run the recorded program: each op's ``forward`` with a plain context object instead of a
graph node; the backward pass in the order the engine chose at capture, calling each op's
``backward`` with arrays where the op takes them, and accumulating into ``.grad`` as
``AccumulateGrad`` does; opaque calls (``optimizer.step()``) by calling them. The kernels and their
order are the eager ones, so results are equal bit for bit; values are let go after their last
use and saved tensors after their backward, so memory is held no longer than in eager mode.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dltool.engine import _threads
from dltool.engine.autograd import function as _function
from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.jit._capture import (
    Backward,
    BackwardPlan,
    Call,
    GradOf,
    StepRecorder,
    Unsupported,
    capturing,
)
from dltool.engine.jit._graph import Graph, Value
from dltool.engine.nn.modules.module import Module
from dltool.engine.tensor import Tensor

cache_size_limit = 8  # captures kept per compiled function before it falls back to eager

_FORWARD, _TENSOR, _CALL, _BACKWARD = range(4)
_SCRATCH = _function._Scratch()  # an op that builds no graph node saves nothing: one will do


class _Ctx:
    """The context a replayed op's forward and backward share: what a graph node holds, no more."""

    materialize_grads = True
    needs_input_grad: tuple = ()
    _saved: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        self._saved = tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value

    @property
    def saved_tensors(self) -> tuple:
        return self._saved


_new_ctx = object.__new__
_make = Tensor._make


class _Program:
    """A captured step laid out for replay: every value and constant argument in a numbered slot,
    each node an instruction tuple."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._slot: dict[int, int] = {}
        self._template: list[Any] = []
        for value in graph.inputs:
            self._add(value, None)
        for captured in graph.captured:
            self._add(captured.value, captured.tensor)
        self._reads: list[list[int]] = []
        self._code = [self._instruction(node) for node in graph.nodes]
        self._drops = self._last_uses()

    def _add(self, value: Value | None, item: Any) -> int:
        slot = len(self._template)
        if value is not None:
            self._slot[id(value)] = slot
        self._template.append(item)
        return slot

    def _last_uses(self) -> list[tuple[int, ...]]:
        """For each instruction, the slots of the values made by ops that no later one reads:
        replay lets go of them there, so arrays live no longer than in eager mode."""
        kept = {self._slot[id(v)] for v in _values(self.graph.outputs)}
        last: dict[int, int] = {}
        for index, instruction in enumerate(self._code):
            for slot in instruction[4] if instruction[0] == _FORWARD else ():
                last[slot] = index
        made = set(last)
        for index, reads in enumerate(self._reads):
            last.update((slot, index) for slot in reads if slot in made)
        drops: list[list[int]] = [[] for _ in self._code]
        for slot, index in last.items():
            if slot not in kept:
                drops[index].append(slot)
        return [tuple(d) for d in drops]

    def _getter(self, args: tuple) -> Callable[[list], tuple]:
        """A function of the slots that gives ``args``, constants included."""
        slots = [self._slot[id(a)] if isinstance(a, Value) else self._add(None, a) for a in args]
        if not slots:
            return lambda env: ()
        if len(slots) == 1:
            return lambda env, slot=slots[0]: (env[slot],)
        return operator.itemgetter(*slots)

    def _instruction(self, node: Any) -> tuple:
        if node.op is Backward:
            root, gradient, plan = node.args
            grad_slot = None if gradient is None else self._slot[id(gradient)]
            self._reads.append([self._slot[id(root)]] + ([] if grad_slot is None else [grad_slot]))
            return (_BACKWARD, self._backward_steps(plan), self._slot[id(root)], grad_slot, plan)
        given = (*node.args, *node.kwargs.values())
        self._reads.append([self._slot[id(a)] for a in given if isinstance(a, Value)])
        getter = self._getter(node.args)
        keywords = self._keywords(node.kwargs)
        if isinstance(node.op, Call):
            return (_CALL, node.op.forward, getter, keywords)
        kind = _TENSOR if node.op is GradOf else _FORWARD
        outputs = tuple(self._add(v, None) for v in node.outputs)
        needs, remap = getattr(node, "needs", None), getattr(node, "saved_outputs", ())
        return (kind, node.op.forward, getter, keywords, outputs, needs, remap)

    def _keywords(self, kwargs: dict) -> Callable[[list], dict] | None:
        """A function of the slots that gives the keyword arguments; None when there are none."""
        if not kwargs:
            return None
        names, getter = tuple(kwargs), self._getter(tuple(kwargs.values()))
        return lambda env: dict(zip(names, getter(env), strict=True))

    def _backward_steps(self, plan: BackwardPlan) -> list[tuple]:
        """``(True, leaf slot)`` or ``(False, backward, node index, edges, width, simple, step)``."""
        steps = []
        for step in plan.steps:
            if step[1] is None:
                steps.append((True, self._slot[id(step[0])]))
                continue
            _, index, edges, arrays, materialize, meta, _ = step
            simple = arrays and (len(meta) == 1 or not materialize)
            backward = self.graph.nodes[index].op.backward
            steps.append((False, backward, index, edges, len(meta), simple, step))
        return steps

    def __call__(self, inputs: list[Tensor]) -> Any:
        env = list(self._template)
        env[: len(inputs)] = inputs
        ctxs: list[Any] = [None] * len(self._code)
        previous, _grad_state.enabled = _grad_state.enabled, False
        try:
            for index, instruction in enumerate(self._code):
                kind = instruction[0]
                if kind == _FORWARD:  # inline: this is the loop a replay spends its time in
                    _, forward, getter, kwargs, outputs, needs, remap = instruction
                    if needs is None:
                        ctx: Any = _SCRATCH
                    else:
                        ctxs[index] = ctx = _new_ctx(_Ctx)
                        ctx.needs_input_grad = needs
                    result = (
                        forward(ctx, *getter(env), **kwargs(env)) if kwargs else forward(ctx, *getter(env))
                    )
                    if type(result) is tuple:
                        for slot, item in zip(outputs, result, strict=False):
                            env[slot] = _make(item._data if isinstance(item, Tensor) else item)
                    elif outputs:
                        env[outputs[0]] = _make(result._data if isinstance(result, Tensor) else result)
                    if remap:
                        _saved_outputs(ctx, env, outputs, remap)
                elif kind == _TENSOR:
                    env[instruction[4][0]] = instruction[1](None, *instruction[2](env))
                elif kind == _CALL:
                    _, call, getter, kwargs = instruction
                    _grad_state.enabled = previous
                    call(None, *getter(env), **(kwargs(env) if kwargs else {}))
                    _grad_state.enabled = False
                else:
                    _backward(env, ctxs, instruction)
                for slot in self._drops[index]:
                    env[slot] = None
        finally:
            _grad_state.enabled = previous
        return self._structure(self.graph.outputs, env)

    def _structure(self, item: Any, env: list) -> Any:
        if isinstance(item, Value):
            return Tensor._make(env[self._slot[id(item)]]._data)
        if isinstance(item, dict):
            return {key: self._structure(x, env) for key, x in item.items()}
        if isinstance(item, (tuple, list)):
            return type(item)(self._structure(x, env) for x in item)
        return item


def _saved_outputs(ctx: _Ctx, env: list, outputs: tuple, remap: tuple) -> None:
    """Put the output tensors where forward saved its raw outputs, as eager mode does."""
    saved = list(ctx._saved)
    for position, nr in remap:
        saved[position] = env[outputs[nr]]
    ctx._saved = tuple(saved)


def _backward(env: list, ctxs: list, instruction: tuple) -> None:
    """The backward pass in the recorded order, gradients as arrays between nodes (a plain backward)."""
    _, steps, root_slot, grad_slot, plan = instruction
    _threads.adapt()
    root = env[root_slot]._data
    buffers: list = [None] * len(steps)
    buffers[plan.root] = _empty(steps[plan.root])
    buffers[plan.root][plan.root_nr] = env[grad_slot]._data if grad_slot is not None else _ones_like(root)
    for i, step in enumerate(steps):
        grads = buffers[i]
        if grads is None:
            continue
        buffers[i] = None
        if step[0]:
            _accumulate_leaf(env[step[1]], grads)
            continue
        _, backward, index, edges, _, simple, recorded = step
        if not simple:
            grads = _prepared(grads, *recorded[3:])
        grad_inputs = backward(ctxs[index], *grads)
        ctxs[index] = None  # what forward saved goes as soon as it is used, as in eager mode
        if type(grad_inputs) is not tuple:
            grad_inputs = (grad_inputs,)
        for edge, g in zip(edges, grad_inputs, strict=False):
            if edge is None or g is None:
                continue
            child, nr = edge
            if isinstance(g, Tensor):
                g = g._data
            held = buffers[child]
            if held is None:
                held = buffers[child] = _empty(steps[child])
            held[nr] = g if held[nr] is None else held[nr] + g


def _values(item: Any) -> list[Value]:
    if isinstance(item, Value):
        return [item]
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (tuple, list)):
        return [v for x in item for v in _values(x)]
    return []


def _ones_like(array: Any) -> Any:
    from dltool.engine import backend

    return backend.array_module(array).ones(array.shape, dtype=array.dtype)


def _empty(step: tuple) -> list:
    return [None] if step[0] else [None] * step[4]


def _prepared(grads: list, arrays: bool, materialize: bool, meta: tuple, prehooks: dict | None) -> list:
    """The gradients as the engine hands them to this node: arrays or tensors, gaps zero-filled."""
    if arrays:
        if len(grads) > 1 and materialize:
            grads = [
                g if g is not None else m[2].zeros(m[0], dtype=m[1]) for g, m in zip(grads, meta, strict=True)
            ]
        return grads
    make = Tensor._make
    grads = [None if g is None else make(g) for g in grads]
    for nr, hooks in (prehooks or {}).items():
        for hook in list(hooks):
            if grads[nr] is not None:
                result = hook(grads[nr])
                if result is not None:
                    grads[nr] = result
    if len(grads) > 1 and materialize:
        grads = [g if g is not None else Tensor._zeros_like_meta(m) for g, m in zip(grads, meta, strict=True)]
    return grads


def _accumulate_leaf(tensor: Tensor, grads: list) -> None:
    """``AccumulateGrad``: hooks, then adopt the gradient (or a copy where it is shared) or add it."""
    grad = Tensor._make(grads.pop())
    if tensor._backward_hooks:
        for hook in list(tensor._backward_hooks):
            result = hook(grad)
            if result is not None:
                grad = result
    if tensor.grad is not None:
        tensor.grad._data += grad._data
    elif grad._data.base is None and _function._reference_counts(grad) == _function._sole_counts():
        tensor.grad = grad
    else:
        tensor.grad = Tensor._make(grad._data.copy())


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

    def __init__(self, recorder: StepRecorder) -> None:
        self.program = _Program(recorder.graph)
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
        self._cache[key] = _Capture(recorder)
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
