"""Replay: run a recorded graph's nodes again on new inputs, with the captured tensors as they are now."""

from __future__ import annotations

import contextlib
from typing import Any

from dltool.engine.autograd.function import _Scratch
from dltool.engine.autograd.grad_mode import no_grad
from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.jit._graph import Full, Graph, Guard, Node, Value
from dltool.engine.tensor import Tensor
from dltool.engine.utils._structure import leaves


def plan(graph: Graph) -> list[tuple[Node, list[Value]]]:
    """The nodes the outputs and the guards need, in order, each with the values no later node
    reads (replay drops them there, so intermediates live no longer than in eager mode)."""
    needed = {id(v) for v in leaves(graph.outputs, Value)}
    steps: list[tuple[Node, list[Value]]] = []
    for node in reversed(graph.nodes):
        if node.op is not Guard and not any(id(v) in needed for v in node.outputs):
            continue  # nothing reads it (an unused output, a running-statistics update)
        drops = [v for v in node.outputs if id(v) not in needed]
        for arg in (*node.args, *node.kwargs.values()):
            if isinstance(arg, Value) and id(arg) not in needed:
                needed.add(id(arg))
                drops.append(arg)
        steps.append((node, drops))
    steps.reverse()
    return steps


def run(graph: Graph, steps: list[tuple[Node, list[Value]]], inputs: tuple) -> Any:
    """The graph's outputs for ``inputs``, computed by its ops' kernels in the recorded order.

    With autograd on and a tensor that requires grad, each node runs through ``apply`` so the
    outputs have a backward graph; otherwise each runs its ``forward`` on the arrays alone.
    """
    env: dict[int, Tensor] = {id(v): t for v, t in zip(graph.inputs, inputs, strict=True)}
    env.update((id(c.value), c.tensor) for c in graph.captured)
    differentiable = _grad_state.enabled and any(t.requires_grad for t in env.values())
    step = _apply if differentiable else _forward
    with no_grad() if not differentiable else contextlib.nullcontext():
        for node, drop in steps:
            args = tuple(env[id(a)] if isinstance(a, Value) else a for a in node.args)
            kwargs = {k: env[id(a)] if isinstance(a, Value) else a for k, a in node.kwargs.items()}
            results = step(node.op, args, kwargs)
            for value, tensor in zip(node.outputs, results, strict=True):
                env[id(value)] = tensor
            for value in drop:
                env.pop(id(value), None)
    return _structure(graph.outputs, env)


def _apply(op: Any, args: tuple, kwargs: dict) -> tuple:
    if op is Full:
        return (Tensor._make(Full.forward(None, *args)),)
    result = op.apply(*args, **kwargs)
    return result if isinstance(result, tuple) else (result,)


def _forward(op: Any, args: tuple, kwargs: dict) -> tuple:
    result = op.forward(_Scratch(), *args, **kwargs)
    if type(result) is not tuple:
        result = (result,)
    return tuple(Tensor._make(r._data if isinstance(r, Tensor) else r) for r in result)


def _structure(item: Any, env: dict[int, Tensor]) -> Any:
    if isinstance(item, Value):
        return env[id(item)]
    if isinstance(item, (tuple, list)):
        return type(item)(_structure(x, env) for x in item)
    return item
