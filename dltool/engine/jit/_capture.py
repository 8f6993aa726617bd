"""Capturing a whole training step: forward ops, in-place writes, the backward pass and opaque calls.

One eager run of the step records, into the same ``Graph`` IR that ``jit.trace`` builds:

- every ``Function`` call (through the tracer's hook), with what its graph node needs for backward
  (``needs_input_grad``);
- in-place writes (``Tensor._write``): into a parameter, buffer, input or gradient as a ``Write``
  node; into an intermediate as a rebinding of that tensor to the op's result;
- dropout's keep mask and cross-entropy's class coefficients, intercepted by the names of the
  ops' helpers that make them (``_keep_mask``, ``_class_coefficients``), as ``Helper`` nodes:
  replay calls them again (the mask draws from the default generator, as eager mode does; recorded
  as ordinary ops, the mask's draw would trip the check that refuses other random draws);
- ``backward`` as one ``Backward`` node holding the engine's node order, edges and leaves;
- ``Optimizer.step``/``zero_grad``, ``Module.zero_grad`` and ``LRScheduler.step`` as ``Call``
  nodes, replayed by calling them (they read their hyperparameters, such as ``lr``, each time).

What cannot be replayed (a tensor read into Python, a random draw other than dropout's,
``autograd.grad``, ``create_graph``/``retain_graph``) marks the capture unsupported; the eager run
still completes, so nothing is done twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dltool.engine import backend
from dltool.engine.autograd import engine as _engine
from dltool.engine.autograd.function import AccumulateGrad
from dltool.engine.jit import _tracer
from dltool.engine.jit._graph import Node, Value
from dltool.engine.nn.modules.module import Module
from dltool.engine.ops import activation as _activation
from dltool.engine.ops import loss as _loss
from dltool.engine.optim.lr_scheduler.core import LRScheduler
from dltool.engine.optim.optimizer import Optimizer
from dltool.engine.tensor import Tensor
from dltool.engine.utils._structure import leaves


class Unsupported(RuntimeError):
    """The step does something that a replay could not repeat."""


@dataclass(eq=False)
class StepNode(Node):
    """A node of a captured step.

    ``needs`` is ``needs_input_grad`` when the op built a graph node (else None),
    ``saved_outputs`` the ``(position, output_nr)`` of outputs among what it saved for backward,
    and ``returns_tuple`` whether its forward returned a tuple.
    """

    needs: tuple | None = None
    saved_outputs: tuple = ()
    returns_tuple: bool = False


class Helper:
    """The op of an ops helper intercepted by name (``HELPERS``): replay calls it again."""

    def __init__(self, module: Any, name: str) -> None:
        self.function = getattr(module, name)
        self.__name__ = name

    def forward(self, ctx: Any, *args: Any) -> Any:
        return self.function(*args)


HELPERS = (Helper(_activation, "_keep_mask"), Helper(_loss, "_class_coefficients"))
_HELPER_MODULES = {"_keep_mask": _activation, "_class_coefficients": _loss}


class Write:
    """The op that writes a value into a tensor the step does not own (a buffer, a gradient)."""

    @staticmethod
    def forward(ctx: Any, target: Tensor, source: Tensor) -> None:
        target._data[...] = source._data
        target._version_counter[0] += 1


class GradOf:
    """The op that reads a leaf's ``.grad`` as it is at that point of the step."""

    @staticmethod
    def forward(ctx: Any, leaf: Tensor) -> Tensor:
        if leaf.grad is None:
            raise RuntimeError("compile: a replayed step reads a .grad that is None (the capture had one)")
        return leaf.grad


class Call:
    """The op of an opaque call (``optimizer.step()``), replayed by calling it."""

    def __init__(self, function: Any, owner: Any) -> None:
        self.function, self.owner = function, owner
        self.__name__ = f"{type(owner).__name__}.{function.__name__}"

    def forward(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self.function(self.owner, *args, **kwargs)


@dataclass(eq=False)
class BackwardPlan:
    """The backward pass as the engine ran it: nodes in order, each with its edges.

    ``steps[i]`` is ``(leaf Value, None, ...)`` for a leaf's accumulator, else ``(None, forward
    node index, edges, arrays, materialize, output meta, tensor prehooks)``.
    """

    steps: list = field(default_factory=list)
    root: int = 0
    root_nr: int = 0

    def __repr__(self) -> str:
        return f"<{len(self.steps)} nodes>"


class Backward:
    """The op of ``loss.backward()``; the compiled program runs its plan itself."""

    @staticmethod
    def forward(ctx: Any, loss: Tensor, gradient: Tensor | None, plan: BackwardPlan) -> None:
        raise RuntimeError("a Backward node is run by the compiled program, not called")


class StepRecorder(_tracer._Recorder):
    """The tracer's recorder, extended to what a training step does besides forward ops."""

    def __init__(self) -> None:
        super().__init__({})
        self.unsupported: str | None = None
        self.paused = 0
        self.external: set[int] = set()  # ids of values that are tensors the step does not own
        self.modules: list[Module] = []
        self._nodes_of: dict[int, int] = {}  # id of an eager graph node -> index of its StepNode
        self._by_node: dict[tuple, Value] = {}  # (id of grad_fn, output_nr) -> value
        self._arrays: dict[int, tuple] = {}  # id of a traced array -> (array, value)
        self._grads: dict[int, tuple] = {}  # id of a leaf's .grad tensor -> (tensor, leaf value)
        self._pending_leaves: list[Value] = []  # the leaves of the backward that runs now

    def refuse(self, reason: str) -> None:
        if self.unsupported is None:
            self.unsupported = reason
        self.paused += 1  # record nothing more: the graph is dropped

    # ---- values

    def add_input(self, tensor: Tensor, name: str) -> None:
        super().add_input(tensor, name)
        value = self.graph.inputs[-1]
        self.external.add(id(value))
        self._arrays[id(tensor._data)] = (tensor._data, value)

    def _capture(self, tensor: Tensor) -> Value:
        grad = self._grads.get(id(tensor))
        if grad is not None:
            return self._node(GradOf, (grad[1],), tensor, external=True)
        if tensor.grad_fn is not None:
            value = self._by_node.get((id(tensor.grad_fn), tensor._output_nr))
            if value is not None:  # the snapshot an in-place op takes of an intermediate
                return value
        alias = self._arrays.get(id(tensor._data))
        if alias is not None:  # .data or .detach() of a value
            return alias[1]
        base = tensor._data.base
        if base is not None and id(base) in self._arrays:
            self.refuse("a tensor that shares memory with an intermediate outside the engine's ops")
        if tensor.requires_grad and id(tensor) not in self._names:  # a parameter held outside modules
            self._names[id(tensor)] = f"leaf{sum(n.startswith('leaf') for n in self._names.values())}"
        value = super()._capture(tensor)
        if self.graph.captured and self.graph.captured[-1].value is value:
            self.external.add(id(value))
        return value

    def value_of(self, tensor: Tensor) -> Value:
        try:
            return super().value_of(tensor)
        except RuntimeError as error:  # an in-place change the recording did not see
            self.refuse(str(error).removeprefix("jit.trace ").split(";")[0])
            return Value("unrecorded", tuple(tensor.shape), tensor._data.dtype)

    def _node(self, op: Any, args: tuple, result: Tensor, external: bool = False) -> Value:
        value = self._new_value(result._data)
        self.graph.nodes.append(StepNode(op, args, {}, (value,)))
        self._remember(result, value, traced=not external)
        if external:
            self.external.add(id(value))
        return value

    def is_traced(self, tensor: Tensor) -> bool:
        if not self.paused and id(tensor) in self._seen:
            self.refuse("a tensor's value read into Python (.item(), float(), bool(), .tolist(), .numpy())")
        return False

    # ---- ops

    def record(self, op: type, args: tuple, kwargs: dict, result: Any) -> None:
        if self.paused:
            return
        super().record(op, args, kwargs, result)
        node = self.graph.nodes[-1]
        results = result if isinstance(result, tuple) else (result,)
        grad_fn = next((t.grad_fn for t in results if t.grad_fn is not None), None)
        saved = tuple(
            (i, e[2])
            for i, e in enumerate(grad_fn._saved or () if grad_fn is not None else ())
            if e is not None and e[2] is not None
        )
        needs = None if grad_fn is None else grad_fn.needs_input_grad
        self.graph.nodes[-1] = StepNode(
            node.op, node.args, node.kwargs, node.outputs, needs, saved, isinstance(result, tuple)
        )
        for tensor, value in zip(results, node.outputs, strict=True):
            self._arrays[id(tensor._data)] = (tensor._data, value)
            if tensor.grad_fn is not None:
                self._by_node[(id(tensor.grad_fn), tensor._output_nr)] = value
        if grad_fn is not None:
            self._nodes_of[id(grad_fn)] = len(self.graph.nodes) - 1

    def helper(self, op: Helper, args: tuple) -> Any:
        """Run an array helper and note it as a node (its random draws are its own)."""
        with _paused(self):
            result = op.function(*args)
        self.record(op, args, {}, result)
        return result

    def write(self, target: Tensor, result: Tensor) -> None:
        """Note ``target._write(result)``, which has just happened."""
        if self.paused:
            return
        source = self._seen.get(id(result))
        if source is None:
            self.refuse("an in-place write of a value computed outside the engine's ops")
            return
        value = self._seen.get(id(target))
        if value is None and id(target) not in self._names and id(target) not in self._grads:
            self.refuse(
                "an in-place write into a tensor that is no parameter or buffer of the modules it calls"
            )
            return
        if value is None or id(value[1]) in self.external:
            self.graph.nodes.append(StepNode(Write, (self.value_of(target), source[1]), {}, ()))
            self._remember(target, self._seen[id(target)][1], traced=False)
            return
        if target._view is not None or any(
            a is not target._data and a.base is target._data for a, _ in self._arrays.values()
        ):
            self.refuse("an in-place change of an intermediate that is a view or has views")
            return
        self._remember(target, source[1], traced=True)  # the tensor now holds the op's result
        self._arrays[id(target._data)] = (target._data, source[1])

    def call(self, function: Any, owner: Any, args: tuple, kwargs: dict) -> None:
        if not self.paused:
            if any(_tracer._holds_tensor(a) for a in (*args, *kwargs.values())):
                self.refuse(f"{type(owner).__name__}.{function.__name__} called with tensor arguments")
            else:
                self.graph.nodes.append(StepNode(Call(function, owner), args, dict(kwargs), ()))

    def backward(self, tensors: Any, grad_tensors: Any, retain_graph: Any, create_graph: bool) -> None:
        """Note a ``backward`` about to run: the engine's order of nodes, mapped to the step's."""
        if self.paused:
            return
        outputs, grads = _engine._as_tuple(tensors), _engine._as_tuple(grad_tensors)
        if create_graph or retain_graph or len(outputs) != 1:
            self.refuse("backward with create_graph, retain_graph or several tensors")
            return
        roots = _engine._root_grads(outputs, grads)
        order = list(_engine._in_order(roots))
        position = {id(node): i for i, node in enumerate(order)}
        plan = BackwardPlan(root=position[id(roots[0][0])], root_nr=roots[0][1])
        for node in order:
            step = self._backward_step(node, position)
            if step is None:
                return
            plan.steps.append(step)
        root_value = self.value_of(outputs[0])
        gradient = self.value_of(grads[0]) if grads and isinstance(grads[0], Tensor) else None
        self.graph.nodes.append(StepNode(Backward, (root_value, gradient, plan), {}, ()))
        self._pending_leaves = [step[0] for step in plan.steps if step[1] is None]

    def _backward_step(self, node: Any, position: dict) -> tuple | None:
        if type(node) is AccumulateGrad:
            return (self.value_of(node.variable), None)
        index = self._nodes_of.get(id(node))
        if index is None:
            self.refuse("backward through a graph built outside the compiled function")
            return None
        if node._prehooks or node._hooks or node._retains:
            self.refuse("retain_grad() or a hook on a grad_fn inside the compiled function")
            return None
        edges = tuple(
            None if child is None else (position[id(child)], nr) for child, nr in node.next_functions
        )
        arrays = node._fn.array_gradients and not node._tensor_prehooks
        meta = node._output_meta
        return (None, index, edges, arrays, node.materialize_grads, meta, node._tensor_prehooks)

    def after_backward(self) -> None:
        """Make the leaves' new ``.grad`` tensors known, so that reading them is a ``GradOf``."""
        if self.paused:
            return
        for leaf_value in self._pending_leaves:
            tensor = self._tensor_of(leaf_value)
            if tensor is not None and tensor.grad is not None:
                self._grads[id(tensor.grad)] = (tensor.grad, leaf_value)
                self._seen.pop(id(tensor.grad), None)

    def arrays(self) -> dict[int, Any]:
        """The capture's array of each value made by an op (by ``id`` of the value)."""
        found: dict[int, Any] = {}
        for array, value in self._arrays.values():
            found.setdefault(id(value), array)
        return found

    def escaping(self, result: Any) -> list[Any]:
        """The arrays that outlive the step: its result's, and the gradients of its leaves."""
        arrays = [t._data for t in leaves(result, Tensor)]
        for tensor, _, _, _ in self._seen.values():
            if tensor.grad is not None:
                arrays.append(tensor.grad._data)
        return arrays + [grad._data for grad, _ in self._grads.values()]

    def _tensor_of(self, value: Value) -> Tensor | None:
        return next((t for t, v, _, _ in self._seen.values() if v is value), None)

    def check_captured(self) -> None:
        """Name the captured tensors after the modules' parameters and buffers; refuse any other
        that does not require grad (a value computed outside the engine's ops would be replayed
        stale)."""
        for captured in self.graph.captured:
            name = self._names.get(id(captured.tensor))
            if name is None:
                self.refuse(
                    f"it reads a tensor ({captured.value.type_str()}) that is no parameter or buffer of "
                    "the modules it calls: made outside the engine's ops, or held from outside (pass "
                    "it as an argument)"
                )
                return
            captured.value.name = name

    def note_module(self, module: Module) -> None:
        """Remember a module called by the step, and the names of its tensors (a parameter or
        buffer is captured as itself even while all its elements are equal)."""
        if any(m is module for m in self.modules):
            return
        self.modules.append(module)
        for name, tensor in (*module.named_parameters(), *module.named_buffers()):
            self._names.setdefault(id(tensor), name)

    def output(self, item: Any) -> Any:
        if isinstance(item, dict):
            return {key: self.output(x) for key, x in item.items()}
        return super().output(item)


_OPAQUE = ((Optimizer, "zero_grad"), (Module, "zero_grad"))


def _subclasses(cls: type) -> Iterator[type]:
    stack = [cls]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.__subclasses__())


def _opaque_methods() -> list[tuple[type, str]]:
    """Every class's own ``step`` of the optimizers and schedulers, plus the zero_grads."""
    classes = [*_subclasses(Optimizer), *_subclasses(LRScheduler)]
    found = [(cls, "step") for cls in classes if "step" in vars(cls)]
    return found + [(cls, name) for cls, name in _OPAQUE if name in vars(cls)]


@contextlib.contextmanager
def capturing(recorder: StepRecorder) -> Iterator[StepRecorder]:
    """Record a step into ``recorder`` while the block runs (patching the points it records at)."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, make: Any) -> None:
        original = getattr(owner, name) if not isinstance(owner, type) else vars(owner)[name]
        patches.append((owner, name, original))
        setattr(owner, name, make(original))

    for cls, name in _opaque_methods():
        patch(cls, name, lambda original: _opaque(recorder, original))
    patch(Module, "__call__", lambda original: _noting_module(recorder, original))
    patch(Tensor, "_write", lambda original: _noting_write(recorder, original))
    patch(_engine, "backward", lambda original: _noting_backward(recorder, original))
    patch(_engine, "_execute", lambda original: _refusing_grad(recorder, original))
    for op in HELPERS:
        patch(_HELPER_MODULES[op.__name__], op.__name__, lambda original, op=op: _helper(recorder, op))
    patch(backend, "rng", lambda original: _refusing_draw(recorder, original))
    try:
        with _tracer.recording({}, recorder):
            yield recorder
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


@contextlib.contextmanager
def _paused(recorder: StepRecorder) -> Iterator[None]:
    recorder.paused += 1
    try:
        yield
    finally:
        recorder.paused -= 1


def _opaque(recorder: StepRecorder, original: Any) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if args and callable(args[0]) or kwargs.get("closure") is not None:
            recorder.refuse(f"{type(self).__name__}.step with a closure")
        recorder.call(original, self, args, kwargs)
        with _paused(recorder):
            return original(self, *args, **kwargs)

    return method


def _helper(recorder: StepRecorder, op: Helper) -> Any:
    def helper(*args: Any) -> Any:
        return recorder.helper(op, args)

    return helper


def _noting_module(recorder: StepRecorder, original: Any) -> Any:
    def call(self: Module, *args: Any, **kwargs: Any) -> Any:
        recorder.note_module(self)
        return original(self, *args, **kwargs)

    return call


def _noting_write(recorder: StepRecorder, original: Any) -> Any:
    def write(self: Tensor, result: Tensor) -> None:
        original(self, result)
        recorder.write(self, result)

    return write


def _noting_backward(recorder: StepRecorder, original: Any) -> Any:
    def backward(
        tensors: Any, grad_tensors: Any = None, retain_graph: Any = None, create_graph: bool = False
    ) -> None:
        recorder.backward(tensors, grad_tensors, retain_graph, create_graph)
        with _paused(recorder):
            original(tensors, grad_tensors, retain_graph, create_graph)
        recorder.after_backward()

    return backward


def _refusing_grad(recorder: StepRecorder, original: Any) -> Any:
    def execute(*args: Any, **kwargs: Any) -> None:
        if not recorder.paused:
            recorder.refuse("autograd.grad")
        original(*args, **kwargs)

    return execute


def _refusing_draw(recorder: StepRecorder, original: Any) -> Any:
    def rng(generator: Any) -> Any:
        if not recorder.paused:
            recorder.refuse("a random draw other than dropout's mask")
        return original(generator)

    return rng
