"""Graph nodes and ``Function``: the unit every differentiable op is written as.

A ``Function`` subclass has ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``. Calling
``apply`` runs forward without recording and, when an input requires grad, makes ``ctx`` the graph
node (``grad_fn``) of the outputs. Backward formulas use the engine's own ops, so the gradients are
themselves differentiable under ``create_graph=True``.
"""

from __future__ import annotations

import functools
import itertools
import sys
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.grad_mode import state as _grad_state

# The Tensor class, bound by dltool.engine.tensor once it exists (that module imports this one).
_Tensor: Any = None

# Set by dltool.engine.jit while a trace records (None otherwise): it runs each op and notes it.
_trace_hook: Any = None

_FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


# Numbers the nodes in the order they are made.
_sequence = itertools.count()

# What ``Node._saved`` holds once backward has run without retain_graph (the node cannot run again).
_RELEASED = ("released",)


class RemovableHandle:
    """Returned by every ``register_*hook``; ``remove()`` takes the hook away again."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Node:
    """A node of the backward graph; the ``ctx`` that forward and backward share.

    Ops put what backward needs into ``save_for_backward`` (checked against in-place changes) or,
    for shapes and axes, into plain attributes.
    """

    __slots__ = ("_fn", "next_functions", "_saved", "_output_meta", "_sequence_nr", "__dict__", "__weakref__")

    # Rarely set, so they live on the class until a node sets its own (keeps node creation cheap).
    _non_differentiable: tuple = ()
    _tensor_prehooks: dict | None = None
    _retains: dict | None = None
    _prehooks: list | None = None
    _hooks: list | None = None
    materialize_grads = True

    def __init__(self, fn: type, next_functions: tuple = ()) -> None:
        self._fn = fn
        self.next_functions = next_functions
        self._saved: tuple | None = None  # or _RELEASED once backward has run
        self._output_meta: tuple = ()
        self._sequence_nr = next(_sequence)  # later than the nodes of its inputs: see engine._in_order

    @property
    def needs_input_grad(self) -> tuple:
        """For each input of forward, whether it wants a gradient (derived from the graph's edges,
        so that recording an op builds one tuple fewer)."""
        return tuple([edge is not _NO_EDGE for edge in self.next_functions])

    # ---- what forward calls

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep tensors for backward; changing one in place before backward is an error."""
        self._saved = tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        """Outputs that never get a gradient (indices, masks)."""
        self._non_differentiable = tensors

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to ``save_for_backward``, checked for in-place changes."""
        if self._saved is _RELEASED:
            raise RuntimeError(_FREED_MESSAGE)
        if not self._saved:
            return ()
        unpacked = []
        for entry in self._saved:
            if entry is None:
                unpacked.append(None)
                continue
            tensor, version, output_nr = entry
            if output_nr is not None:  # an output saved without a reference cycle
                array, counter = tensor
                tensor = _Tensor._make(array, self, output_nr, counter)
            if tensor._version_counter[0] != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{tensor.dtype} {list(tensor.shape)}], which is saved by "
                    f"{self.name()}, is at version {tensor._version_counter[0]}; expected version "
                    f"{version} instead."
                )
            unpacked.append(tensor)
        return tuple(unpacked)

    # ---- introspection and hooks

    def name(self) -> str:
        fn = self._fn
        internal = fn.__module__.startswith("dltool.engine.ops")
        return f"{getattr(fn, 'node_name', fn.__name__)}Backward{'0' if internal else ''}"

    def register_hook(self, fn: Callable) -> RemovableHandle:
        """``fn(grad_inputs, grad_outputs)`` runs after this node; it may return new grad_inputs."""
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return RemovableHandle(self._hooks, fn)

    def register_prehook(self, fn: Callable) -> RemovableHandle:
        """``fn(grad_outputs)`` runs before this node; it may return new grad_outputs."""
        if self._prehooks is None:
            self._prehooks = []
        self._prehooks.append(fn)
        return RemovableHandle(self._prehooks, fn)

    def _add_tensor_prehook(self, output_nr: int, fn: Callable) -> RemovableHandle:
        if self._tensor_prehooks is None:
            self._tensor_prehooks = {}
        hooks = self._tensor_prehooks.setdefault(output_nr, [])
        hooks.append(fn)
        return RemovableHandle(hooks, fn)

    def _retain_grad(self, output_nr: int, tensor: Any) -> None:
        if self._retains is None:
            self._retains = {}
        self._retains[output_nr] = weakref.ref(tensor)

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"

    # ---- what the engine calls

    def _apply_tensor_hooks(self, grads: list) -> None:
        if self._tensor_prehooks:
            for nr, hooks in self._tensor_prehooks.items():
                for hook in list(hooks):
                    if grads[nr] is not None:
                        result = hook(grads[nr])
                        if result is not None:
                            grads[nr] = result
        if self._retains:
            for nr, ref in self._retains.items():
                tensor = ref()
                if tensor is not None and grads[nr] is not None:
                    grad = grads[nr] if _grad_state.enabled else grads[nr].detach()
                    tensor.grad = grad if tensor.grad is None else tensor.grad + grad

    def _run(self, grads: list, retain_graph: bool) -> tuple:
        """Compute the gradients of this node's inputs from those of its outputs."""
        if self._saved is _RELEASED:
            raise RuntimeError(_FREED_MESSAGE)
        if self._prehooks:
            for hook in self._prehooks:
                result = hook(tuple(grads))
                if result is not None:
                    grads = list(result)
        if len(grads) > 1 and self.materialize_grads:
            grads = [
                g if g is not None else _Tensor._zeros_like_meta(meta)
                for g, meta in zip(grads, self._output_meta, strict=True)
            ]
        grad_inputs = self._fn.backward(self, *grads)
        if not isinstance(grad_inputs, tuple):
            grad_inputs = (grad_inputs,)
        n_inputs = len(self.next_functions)
        if len(grad_inputs) < n_inputs:
            raise RuntimeError(
                f"function {self.name()} returned an incorrect number of gradients "
                f"(expected {n_inputs}, got {len(grad_inputs)})"
            )
        if self._hooks:
            make, tensor_type = _Tensor._make, _Tensor
            grad_inputs = tuple(
                g if g is None or isinstance(g, tensor_type) else make(g) for g in grad_inputs
            )
            for hook in self._hooks:
                result = hook(grad_inputs, tuple(grads))
                if result is not None:
                    grad_inputs = tuple(result)
        if not retain_graph:
            self._release()
        return grad_inputs

    def _release(self) -> None:
        """Drop what forward kept (saved tensors and the op's own attributes); hooks stay.

        NOTE: attributes go too (index arrays can be large), so a second run is refused even for
        nodes without saved tensors, where PyTorch would allow it.
        """
        state = self.__dict__
        kept = [k for k in state if not k.startswith("_") and k != "materialize_grads"] if state else ()
        if self._saved or kept:
            self._saved = _RELEASED
            for key in kept:
                del state[key]


class AccumulateGrad(Node):
    """The node that adds incoming gradients into a leaf tensor's ``.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable: Any) -> None:
        super().__init__(AccumulateGrad)
        self.variable = variable
        self._output_meta = (variable._meta(),)

    def name(self) -> str:
        return "AccumulateGrad"

    def _run(self, grads: list, retain_graph: bool) -> tuple:
        variable = self.variable
        grad = grads[0]
        if grad is None:
            return ()
        if variable._backward_hooks:
            for hook in list(variable._backward_hooks):
                result = hook(grad)
                if result is not None:
                    grad = result
        if grad._data.shape != variable._data.shape:
            raise RuntimeError(
                f"gradient of shape {tuple(grad.shape)} does not match the leaf's shape {variable.shape}"
            )
        if variable.grad is None:
            if _grad_state.enabled:
                variable.grad = grad
            else:
                # Adopt the gradient when nothing else can see it (PyTorch decides the same by use
                # counts); else own a copy: the array may be shared with other gradients or kept.
                grads[0] = None  # the buffer's reference: ``grad`` is now the engine's only one
                sole = grad._data.base is None and _reference_counts(grad) == _sole_counts()
                variable.grad = grad if sole else _Tensor._make(grad._data.copy())
        elif _grad_state.enabled:
            variable.grad = variable.grad + grad
        else:
            variable.grad._data += grad._data
        if variable._post_accumulate_grad_hooks:
            for hook in list(variable._post_accumulate_grad_hooks):
                hook(variable)
        return ()


def _reference_counts(tensor: Any) -> tuple[int, int]:
    """How many references ``tensor`` and its array have, seen from a call by the holder."""
    return sys.getrefcount(tensor), sys.getrefcount(tensor._data)


@functools.cache
def _sole_counts() -> tuple[int, int] | None:
    """``_reference_counts`` of a tensor that one local variable of the caller alone holds and
    whose array nothing else holds, measured on this interpreter; None where counts cannot tell
    (no ``getrefcount``, or a free-threaded build, whose counts are deferred)."""
    if not hasattr(sys, "getrefcount") or not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None
    probe = _Tensor._make(np.empty(0))
    return _reference_counts(probe)


class Function:
    """Base class of differentiable operations, with PyTorch's custom-Function API.

    Example:
        >>> class Square(Function):
        ...     @staticmethod
        ...     def forward(ctx, x):
        ...         ctx.save_for_backward(x)
        ...         return x * x
        ...     @staticmethod
        ...     def backward(ctx, grad_output):
        ...         (x,) = ctx.saved_tensors
        ...         return 2 * x * grad_output
    """

    @staticmethod
    def forward(ctx: Node, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function must implement forward(ctx, *args)")

    @staticmethod
    def backward(ctx: Node, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a Function must implement backward(ctx, *grad_outputs)")

    # A view op's outputs share memory and the version counter with its first input, and remember
    # how they were made, so that in-place changes through a view or its base reach the other's
    # history (see ``Tensor._inplace``). A view op implements ``put_back``.
    _is_view = False

    # True for an op whose ``backward`` also runs on arrays: in a plain backward (no graph of the
    # gradients wanted) the engine then hands it arrays and takes arrays back, making no Tensors
    # between such ops. Under ``create_graph`` it gets Tensors as always.
    array_gradients = False

    @staticmethod
    def put_back(base: Any, value: Any, *args: Any) -> Any:
        """For a view op: ``base`` with ``value`` written where the view ``op(base, *args)`` lies."""
        raise NotImplementedError("only view ops can put a view's new value back into their base")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        if _trace_hook is not None:
            return _trace_hook(cls, args, kwargs)
        tensor_type, state = _Tensor, _grad_state
        previous = state.enabled
        ctx = _recording_node(cls, args, tensor_type) if previous else None
        state.enabled = False
        try:
            result = cls.forward(_Scratch() if ctx is None else ctx, *args, **kwargs)
        finally:
            state.enabled = previous
        make = tensor_type._make
        counter = args[0]._version_counter if cls._is_view else None
        if type(result) is not tuple:  # the common case, kept free of loops
            array = result._data if isinstance(result, tensor_type) else result
            out = make(array, None if ctx is None else _output_node(ctx, result, array), 0, counter)
            if counter is not None:
                _mark_views((out,), cls, args)
            if ctx is not None and ctx._saved:
                ctx._saved = tuple(_pack(t, (result,), (out,)) for t in ctx._saved)
            return out
        wrapped = tuple(make(r._data if isinstance(r, tensor_type) else r, None, 0, counter) for r in result)
        if counter is not None:
            _mark_views(wrapped, cls, args)
        if ctx is not None:
            _link_outputs(ctx, result, wrapped)
        return wrapped


def _mark_views(views: tuple, op: type, args: tuple) -> None:
    """Remember how each view was made, so in-place changes reach between it and its root."""
    base = args[0]
    root = base if base._view is None else base._view[0]
    record = (root, root.grad_fn, base, op, args[1:])
    for view in views:
        view._view = record


class _Scratch:
    """The ``ctx`` of a call that records nothing: saves are dropped at once."""

    needs_input_grad: tuple = ()

    def save_for_backward(self, *tensors: Any) -> None:
        pass

    def mark_non_differentiable(self, *tensors: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass


_NO_EDGE = (None, 0)


def _recording_node(fn: type, args: tuple, tensor_type: type) -> Node | None:
    """The graph node of a call with an input that requires grad, linked to the inputs' nodes;
    None when no input requires grad."""
    edges = None
    for i, arg in enumerate(args):
        if not isinstance(arg, tensor_type):
            continue
        if arg._view is None:  # the common case, without a call: a plain tensor's place in the graph
            if not arg._requires_grad:
                continue
            node = arg.grad_fn
            edge = (arg._grad_node() if node is None else node, arg._output_nr)
        elif arg.requires_grad:  # a view first catches up with in-place changes made through its root
            edge = (arg._grad_node(), arg._output_nr)
        else:
            continue
        if edges is None:
            edges = [_NO_EDGE] * len(args)
        edges[i] = edge
    return None if edges is None else Node(fn, tuple(edges))


def _link_outputs(ctx: Node, outputs: tuple, wrapped: tuple) -> None:
    """Make ``ctx`` the grad_fn of the float outputs and pack what forward saved."""
    non_diff = ctx._non_differentiable
    for nr, out in enumerate(wrapped):
        if out._data.dtype.kind != "f" or (non_diff and any(outputs[nr] is t for t in non_diff)):
            continue
        out._requires_grad = True
        out.grad_fn = ctx
        out._output_nr = nr
    ctx._output_meta = (wrapped[0]._meta(),) if len(wrapped) == 1 else tuple(out._meta() for out in wrapped)
    if ctx._saved:
        ctx._saved = tuple(_pack(t, outputs, wrapped) for t in ctx._saved)


def _output_node(ctx: Node, result: Any, array: Any) -> Node | None:
    """Record the meta of an op's one output in ``ctx``; ``ctx`` when the output is differentiable
    (a float array not marked non-differentiable), else None. ``_link_outputs`` for most ops,
    without its loops."""
    ctx._output_meta = _shared_meta(array)
    non_diff = ctx._non_differentiable
    if array.dtype.kind != "f" or (non_diff and any(result is t for t in non_diff)):
        return None
    return ctx


# ``_output_meta`` of one-output nodes by (array type, shape, dtype), shared between nodes: every
# tuple a node keeps is an object for the cyclic garbage collector to track, one collection per 700
_SHARED_METAS: dict = {}
_SHARED_METAS_MAX = 4096  # distinct shapes seen before the table starts again


def _shared_meta(array: Any) -> tuple:
    """``((shape, dtype, array module),)`` of ``array``, the same tuple for every array alike."""
    key = (type(array), array.shape, array.dtype)
    meta = _SHARED_METAS.get(key)
    if meta is None:
        if len(_SHARED_METAS) >= _SHARED_METAS_MAX:
            _SHARED_METAS.clear()
        meta = _SHARED_METAS[key] = ((array.shape, array.dtype, backend.array_module(array)),)
    return meta


def _pack(tensor: Any, outputs: tuple, wrapped: tuple) -> tuple | None:
    if tensor is None:
        return None
    for nr, raw in enumerate(outputs):
        if tensor is raw:
            out = wrapped[nr]
            return (out._data, out._version_counter), out._version_counter[0], nr
    return tensor, tensor._version_counter[0], None


class once_differentiable:
    """Decorator for a backward that is not itself differentiable; kept for PyTorch compatibility."""

    def __new__(cls, fn: Callable) -> Callable:  # type: ignore[misc]
        return fn
