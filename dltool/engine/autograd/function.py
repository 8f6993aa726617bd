"""Graph nodes and ``Function``: the unit every differentiable op is written as.

A ``Function`` subclass has ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``. Calling
``apply`` runs forward without recording and, when an input requires grad, makes ``ctx`` the graph
node (``grad_fn``) of the outputs. Backward formulas use the engine's own ops, so the gradients are
themselves differentiable under ``create_graph=True``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from dltool.engine.autograd.grad_mode import state as _grad_state

_FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward."
)


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

    __slots__ = (
        "_fn",
        "next_functions",
        "needs_input_grad",
        "_saved",
        "_freed",
        "_non_differentiable",
        "_output_meta",
        "_tensor_prehooks",
        "_retains",
        "_prehooks",
        "_hooks",
        "materialize_grads",
        "__dict__",
        "__weakref__",
    )

    def __init__(self, fn: type) -> None:
        self._fn = fn
        self.next_functions: tuple = ()
        self.needs_input_grad: tuple = ()
        self._saved: tuple | None = None
        self._freed = False
        self._non_differentiable: tuple = ()
        self._output_meta: tuple = ()
        self._tensor_prehooks: dict | None = None
        self._retains: dict | None = None
        self._prehooks: list | None = None
        self._hooks: list | None = None
        self.materialize_grads = True

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
        if self._freed:
            raise RuntimeError(_FREED_MESSAGE)
        if not self._saved:
            return ()
        from dltool.engine.tensor import Tensor

        unpacked = []
        for entry in self._saved:
            if entry is None:
                unpacked.append(None)
                continue
            tensor, version, output_nr = entry
            if output_nr is not None:  # an output saved without a reference cycle
                array, counter = tensor
                tensor = Tensor._make(array, self, output_nr, counter)
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
        return f"{fn.__name__}Backward{'0' if internal else ''}"

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
        if self._freed:
            raise RuntimeError(_FREED_MESSAGE)
        if self._prehooks:
            for hook in self._prehooks:
                result = hook(tuple(grads))
                if result is not None:
                    grads = list(result)
        if self.materialize_grads and any(g is None for g in grads):
            from dltool.engine.tensor import Tensor

            grads = [
                g if g is not None else Tensor._zeros_like_meta(meta)
                for g, meta in zip(grads, self._output_meta)
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
            for hook in self._hooks:
                result = hook(grad_inputs, tuple(grads))
                if result is not None:
                    grad_inputs = tuple(result)
        if not retain_graph:
            self._release()
        return grad_inputs

    def _release(self) -> None:
        # NOTE: attributes go too (index arrays can be large), so a second run must be refused even
        # for nodes without saved tensors, where PyTorch would allow it
        if self._saved or self.__dict__:
            self._saved = None
            self.__dict__.clear()
            self._freed = True


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
        for hook in list(variable._backward_hooks or ()):
            result = hook(grad)
            if result is not None:
                grad = result
        if tuple(grad.shape) != variable.shape:
            raise RuntimeError(
                f"gradient of shape {tuple(grad.shape)} does not match the leaf's shape {variable.shape}"
            )
        if variable.grad is None:
            # NOTE: own the storage; the incoming array may be shared with other gradients
            variable.grad = grad.detach().clone() if not _grad_state.enabled else grad
        elif _grad_state.enabled:
            variable.grad = variable.grad + grad
        else:
            variable.grad._data += grad._data
        return ()


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

    @staticmethod
    def put_back(base: Any, value: Any, *args: Any) -> Any:
        """For a view op: ``base`` with ``value`` written where the view ``op(base, *args)`` lies."""
        raise NotImplementedError("only view ops can put a view's new value back into their base")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        from dltool.engine.tensor import Tensor

        ctx = Node(cls)
        record = False
        if _grad_state.enabled:
            for arg in args:
                if type(arg) is Tensor and arg.requires_grad:
                    record = True
                    break
        _grad_state.enabled, previous = False, _grad_state.enabled
        try:
            result = cls.forward(ctx, *args, **kwargs)
        finally:
            _grad_state.enabled = previous
        single = not isinstance(result, tuple)
        outputs = (result,) if single else result
        view_counter = args[0]._version_counter if cls._is_view else None
        wrapped = tuple(
            Tensor._make(out._data if type(out) is Tensor else out, None, 0, view_counter)
            for out in outputs
        )
        if view_counter is not None:
            base = args[0]
            root = base if base._view is None else base._view[0]
            view = (root, root.grad_fn, base, cls, args[1:])
            for out in wrapped:
                out._view = view
        if record:
            _connect(ctx, args, outputs, wrapped)
        else:
            ctx._saved = None
        return wrapped[0] if single else wrapped


def _connect(ctx: Node, args: tuple, outputs: tuple, wrapped: tuple) -> None:
    """Make ``ctx`` the grad_fn of ``wrapped`` and link it to the inputs' nodes."""
    from dltool.engine.tensor import Tensor

    ctx.next_functions = tuple(
        (arg._grad_node(), arg._output_nr) if type(arg) is Tensor and arg.requires_grad else (None, 0)
        for arg in args
    )
    ctx.needs_input_grad = tuple(type(arg) is Tensor and arg.requires_grad for arg in args)
    non_diff = ctx._non_differentiable
    for nr, (raw, out) in enumerate(zip(outputs, wrapped)):
        if out._data.dtype.kind != "f" or any(raw is t for t in non_diff):
            continue
        out.requires_grad = True
        out.grad_fn = ctx
        out._output_nr = nr
    ctx._output_meta = tuple(out._meta() for out in wrapped)
    if ctx._saved:
        ctx._saved = tuple(_pack(t, outputs, wrapped) for t in ctx._saved)


def _pack(tensor: Any, outputs: tuple, wrapped: tuple) -> tuple | None:
    if tensor is None:
        return None
    for nr, raw in enumerate(outputs):
        if tensor is raw:
            out = wrapped[nr]
            return (out._data, out._version_counter), out._version_counter[0], nr
    return tensor, tensor._version_counter[0], None


class once_differentiable:  # noqa: N801 - PyTorch's name
    """Decorator for a backward that is not itself differentiable; kept for PyTorch compatibility."""

    def __new__(cls, fn: Callable) -> Callable:  # type: ignore[misc]
        return fn
