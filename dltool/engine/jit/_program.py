"""A captured step as one generated Python function: a straight line of kernel calls on buffers.

``Program`` turns a step's ``Graph`` into Python source, one or a few lines per node, and
compiles it with ``exec``: values are local variables, the ops' ``forward``/``backward`` functions,
their attributes and the captured tensors are the function's globals, bound once. So a replay
pays no dispatch loop, no argument lookup and no tuple packing per op.

Ops of ``KERNELS`` (the elementwise arithmetic, ``tanh``, ``relu``, a 2-D ``Linear``) are written
as their kernel call, those of ``BACKWARD_KERNELS`` with their backward too. A small result
(``BUFFER_LIMIT``) goes with ``out=`` into a buffer allocated once, at capture, with the layout of
the array the eager run made (``empty_like``), so numpy picks the same loop and the bits equal the
allocating call's. Which values get a buffer, and which buffers are shared, follows from
liveness (see ``_Buffers``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dltool.engine import _threads, backend
from dltool.engine.autograd import function as _function
from dltool.engine.autograd.grad_mode import state as _grad_state
from dltool.engine.jit._capture import Backward, BackwardPlan, Call, GradOf
from dltool.engine.jit._graph import Graph, Value
from dltool.engine.ops import elementwise as _ew
from dltool.engine.ops import linalg as _linalg
from dltool.engine.tensor import Tensor
from dltool.engine.utils._structure import leaves

_SCRATCH = _function._Scratch()  # an op that builds no graph node saves nothing: one will do


class Ctx:
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


# ---------------------------------------------------------------- kernels with out=

# op -> (kernel call, what ctx gets, which operands ctx keeps). The kernel is the op's forward
# (same function, same operands, same order); ``{0}``, ``{1}`` are the operands' arrays, ``{t0}``,
# ``{t1}`` their tensors, ``{tout}`` the output's, ``{c}`` the op's number. Kept: "in" (the
# inputs), "out" (the output), "" (nothing).
KERNELS: dict[type, tuple[str, str, str]] = {
    _ew.AddScalar: ("add({0}, {c})", "", ""),
    _ew.SubScalar: ("add({0}, {c})", "", ""),
    _ew.MulScalar: ("multiply({0}, {c})", "{ctx}.scalar = {c}", ""),
    _ew.DivScalar: ("true_divide({0}, {c})", "{ctx}.scalar = {c}", ""),
    _ew.Add: ("add({0}, {1})", "{ctx}.shapes = {shapes}", ""),
    _ew.Sub: ("subtract({0}, {1})", "{ctx}.shapes = {shapes}", ""),
    _ew.Mul: ("multiply({0}, {1})", "{ctx}._saved = ({t0}, {t1})", "in"),
    _ew.Div: ("true_divide({0}, {1})", "{ctx}._saved = ({t0}, {t1})", "in"),
    _ew.Tanh: ("tanh({0})", "{ctx}._saved = ({tout},)", "out"),
    _ew.Relu: ("maximum({0}, 0)", "{ctx}._saved = ({tout},)", "out"),
    _linalg.Linear: ("matmul({0}, {1}.T)", "{ctx}._saved = ({t0}, {t1})", "in"),
}
_SCALAR_OPS = (_ew.AddScalar, _ew.SubScalar, _ew.MulScalar, _ew.DivScalar)

# op -> its backward on arrays, written inline for a ``KERNELS`` op: ``{g}`` is the gradient of
# the output, ``{y}`` the saved output's array, ``{c}`` the op's number; the input's gradient ends
# in ``x``. The same ufuncs on the same operands in the same order as the op's ``backward``, its
# temporaries reused in place (``out=``) where that makes the same bits.
BACKWARD_KERNELS: dict[type, tuple[str, ...]] = {
    _ew.AddScalar: ("x = {g}",),
    _ew.SubScalar: ("x = {g}",),
    _ew.MulScalar: ("x = multiply({g}, {c})",),
    _ew.Tanh: ("x = multiply({y}, {y})", "subtract(1, x, out=x)", "multiply({g}, x, out=x)"),
    _ew.Relu: ("x = greater({y}, 0).astype({g}.dtype)", "multiply({g}, x, out=x)"),
}

# The largest buffer kept from step to step. A kept buffer holds its bytes through the whole step,
# also after its value's last use, where eager mode would have freed them for the backward pass's
# temporaries; for small arrays that is negligible. Larger ones are allocated by the kernel call
# as in eager mode (numpy's allocator reuses freed blocks; an ``out=`` buffer measured no faster
# on the MLP and CNN steps), so a replayed step peaks no higher than an eager one.
BUFFER_LIMIT = 16 * 1024


def _inline(node: Any, array: Any) -> bool:
    """Whether ``node`` can run as its ``KERNELS`` call: tensor operands where the call expects
    them, a plain number for the scalar ops, a 2-D ``Linear``; ``array``, the capture's output,
    known."""
    op = node.op
    if op not in KERNELS or node.kwargs or len(node.outputs) != 1 or array is None:
        return False
    args = node.args
    if op is _linalg.Linear:
        return len(args) == 3 and all(isinstance(a, Value) for a in args[:2]) and len(args[0].shape) == 2
    scalar = op in _SCALAR_OPS
    count = 1 if scalar or op in (_ew.Tanh, _ew.Relu) else 2
    if len(args) != count + scalar or not all(isinstance(a, Value) for a in args[:count]):
        return False
    return not scalar or type(args[1]) in (int, float)


def _bufferable(array: Any) -> bool:
    """A small array of its own, laid out contiguously (``empty_like`` copies its layout)."""
    flags = getattr(array, "flags", None)
    return (
        getattr(array, "ndim", 0) > 0
        and array.base is None
        and array.nbytes <= BUFFER_LIMIT
        and (flags.c_contiguous or flags.f_contiguous)
    )


# ---------------------------------------------------------------- buffers and liveness


def _root(array: Any) -> int:
    """The id of the array that owns ``array``'s memory (views chain to it through ``base``)."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return id(array)


class _Buffers:
    """Which kernel outputs get a buffer, and which share one.

    A value gets a buffer when nothing that outlives the step can refer to its memory: it is no
    output of the step, and no output, no leaf's ``.grad`` (``escaping``) is a view of it, as the
    capture's arrays show. A buffer is reused by a later value of the same layout once its value
    is dead: read by no later node, kept by no context for backward (a ``KERNELS`` op says what
    it keeps; any other op that reads it with a context may keep it), and no view of it alive.
    Values kept for backward hold their own buffer. Every buffer is allocated once and reused by
    every replay, so a compiled function must not run inside itself or in two threads at once.
    """

    def __init__(self, graph: Graph, arrays: dict[int, Any], escaping: list[Any]) -> None:
        escaped = {_root(a) for a in escaping}
        self._root_of = {key: _root(a) for key, a in arrays.items()}
        first = [arrays.get(id(node.outputs[0])) if node.outputs else None for node in graph.nodes]
        self._kernel = [_inline(node, array) for node, array in zip(graph.nodes, first, strict=True)]
        self.modules = {  # id of an inline kernel's value -> the array module it runs on
            id(node.outputs[0]): backend.array_module(array)
            for node, array, inline in zip(graph.nodes, first, self._kernel, strict=True)
            if inline
        }
        candidates = {
            id(node.outputs[0])
            for node, array, inline in zip(graph.nodes, first, self._kernel, strict=True)
            if inline and _bufferable(array) and self._root_of.get(id(node.outputs[0])) not in escaped
        }
        ends = self._last_uses(graph, candidates)
        self.of: dict[int, int] = {}  # id of a value -> its buffer's number
        self.arrays: list[Any] = []  # buffer number -> the buffer
        keys: list[tuple] = []  # buffer number -> its layout
        free: dict[tuple, list[int]] = {}
        dying: list[list[int]] = [[] for _ in graph.nodes]
        for index, node in enumerate(graph.nodes):
            value = node.outputs[0] if self._kernel[index] else None
            if value is not None and id(value) in candidates:
                array = arrays[id(value)]
                key = (array.shape, array.dtype, array.strides, type(array))
                pool = free.get(key)
                number = pool.pop() if pool else self._new(array, key, keys)
                self.of[id(value)] = number
                end = ends[id(value)]
                if end is not None:
                    dying[end].append(number)
                    free.setdefault(key, [])
            for number in dying[index]:
                free[keys[number]].append(number)

    def _new(self, array: Any, key: tuple, keys: list[tuple]) -> int:
        """A new buffer laid out as ``array`` (``empty_like`` keeps a contiguous array's order)."""
        self.arrays.append(backend.array_module(array).empty_like(array))
        keys.append(key)
        return len(self.arrays) - 1

    def inline(self, index: int) -> bool:
        return self._kernel[index]

    def _last_uses(self, graph: Graph, candidates: set[int]) -> dict[int, int | None]:
        """For each candidate, the index of the last node that needs its memory; None: kept to
        the end of the step (for backward, or by a view that is)."""
        end: dict[int, int | None] = {
            key: index
            for index, node in enumerate(graph.nodes)
            for key in (id(v) for v in node.outputs)
            if key in candidates
        }
        by_root: dict[int, list[int]] = {}
        for key in candidates:
            by_root.setdefault(self._root_of[key], []).append(key)
        for index, node in enumerate(graph.nodes):
            keeps = self._keeps(node, index)
            for arg in (*node.args, *node.kwargs.values()):
                if not isinstance(arg, Value):
                    continue
                for key in by_root.get(self._root_of.get(id(arg)), ()):  # arg is it or a view of it
                    if end.get(key, -1) is not None:
                        end[key] = None if keeps else max(end[key], index)
            if self._kernel[index] and KERNELS[node.op][2] == "out":
                end[id(node.outputs[0])] = None
            for value in node.outputs:  # a view made by an op other than a kernel lives on
                for key in by_root.get(self._root_of.get(id(value)), ()) if not self._kernel[index] else ():
                    if key != id(value) and end.get(key, -1) is not None:
                        end[key] = None
        return end

    def _keeps(self, node: Any, index: int) -> bool:
        """Whether ``node`` may keep its tensor arguments beyond its own call."""
        if node.op is Backward:
            return True
        if self._kernel[index]:
            return KERNELS[node.op][2] == "in" and getattr(node, "needs", None) is not None
        return getattr(node, "needs", None) is not None


# ---------------------------------------------------------------- the generated function


class Program:
    """A captured step as a generated function of its inputs (see the module's docstring).

    Args:
        graph: the step's graph.
        arrays: the eager run's array of each value (by ``id`` of the value), for the buffers'
            layouts and the aliasing between values; empty: no buffers.
        escaping: arrays that outlive the step (its outputs, the leaves' gradients).
    """

    def __init__(self, graph: Graph, arrays: dict[int, Any], escaping: list[Any]) -> None:
        self.graph = graph
        self.buffers = _Buffers(graph, arrays, escaping)
        self._globals: dict[str, Any] = {
            "make": Tensor._make,
            "Tensor": Tensor,
            "new": object.__new__,
            "Ctx": Ctx,
            "SCRATCH": _SCRATCH,
            "grad_state": _grad_state,
            "adapt": _threads.adapt,
            "save_outputs": _saved_outputs,
            "prepared": _prepared,
            "accumulate": _accumulate_leaf,
            "ones_like": _ones_like,
        }
        self._names: dict[int, str] = {}
        self._bound: dict[int, str] = {}  # id of a global's object -> its name
        for number, array in enumerate(self.buffers.arrays):
            self._globals[f"B{number}"], self._globals[f"T{number}"] = array, Tensor._make(array)
        self._inline_backward = self._backward_kernels()
        inputs = [self._local(v) for v in graph.inputs]
        for captured in graph.captured:
            self._names[id(captured.value)] = self._constant(captured.tensor)
        lines = ["def replay(inputs, previous):"]
        if inputs:
            lines.append(f"    {', '.join(inputs)}{',' if len(inputs) == 1 else ''} = inputs")
        drops = self._last_uses()
        for index, node in enumerate(graph.nodes):
            lines += ["    " + line for line in self._node_lines(index, node)]
            locals_ = [self._names[key] for key in drops[index] if self._names[key][0] == "v"]
            if locals_:
                lines.append(f"    {' = '.join(locals_)} = None")
        outputs = [self._names[id(v)] for v in leaves(graph.outputs, Value)]
        lines.append(f"    return ({''.join(name + ', ' for name in outputs)})")
        self.source = "\n".join(lines)
        namespace = dict(self._globals)
        exec(compile(self.source, f"<compiled step {id(self):x}>", "exec"), namespace)
        self._replay: Callable = namespace["replay"]

    # ---- names

    def _local(self, value: Value) -> str:
        name = f"v{len(self._names)}"
        self._names[id(value)] = name
        return name

    def _constant(self, item: Any) -> str:
        """A literal for a plain number or string, else a global bound to ``item`` (one per object)."""
        if item is None or type(item) in (bool, int, str) or type(item) is float and math.isfinite(item):
            return repr(item)
        if type(item) is tuple and all(type(x) in (bool, int) or x is None for x in item):
            return repr(item)
        name = self._bound.get(id(item))
        if name is None:
            name = self._bound[id(item)] = f"k{len(self._globals)}"
            self._globals[name] = item  # which keeps ``item``, so its id stays its own
        return name

    def _arg(self, item: Any) -> str:
        return self._names[id(item)] if isinstance(item, Value) else self._constant(item)

    def _array(self, value: Value) -> str:
        number = self.buffers.of.get(id(value))
        return f"B{number}" if number is not None else f"{self._names[id(value)]}._data"

    def _last_uses(self) -> list[list[int]]:
        """For each node, the values (ids) that no later node reads: replay lets go of their
        locals there, so arrays live no longer than in eager mode."""
        kept = {id(v) for v in leaves(self.graph.outputs, Value)}
        last: dict[int, int] = {}
        for index, node in enumerate(self.graph.nodes):
            last.update((id(arg), index) for arg in _node_values(node) if id(arg) in last)
            last.update((id(value), index) for value in node.outputs)
        drops: list[list[int]] = [[] for _ in self.graph.nodes]
        for key, index in last.items():
            if key not in kept:
                drops[index].append(key)
        return drops

    # ---- one node

    def _node_lines(self, index: int, node: Any) -> list[str]:
        if node.op is Backward:
            return self._backward(node)
        if isinstance(node.op, Call):
            call = self._constant(node.op.forward)
            args = "".join(f", {self._arg(a)}" for a in node.args)
            kwargs = "".join(f", {k}={self._arg(a)}" for k, a in node.kwargs.items())
            return [
                "grad_state.enabled = previous",
                f"{call}(None{args}{kwargs})",
                "grad_state.enabled = False",
            ]
        needs = getattr(node, "needs", None)
        if index in self._inline_backward and node.op in _SCALAR_OPS:
            needs = None  # its backward, written inline, needs no context
        ctx = "SCRATCH" if needs is None else f"c{index}"
        lines = [] if needs is None else [f"{ctx} = new(Ctx)", f"{ctx}.needs_input_grad = {needs!r}"]
        if self.buffers.inline(index):
            return lines + self._kernel(node, ctx)
        outputs = [self._local(v) for v in node.outputs]
        call = f"{self._constant(node.op.forward)}({ctx}{''.join(', ' + self._arg(a) for a in node.args)}"
        call += "".join(f", {k}={self._arg(a)}" for k, a in node.kwargs.items()) + ")"
        if node.op is GradOf:
            return [f"{outputs[0]} = {call}"]
        if not outputs:
            return [*lines, call]
        lines.append(f"r = {call}")
        if getattr(node, "returns_tuple", False):
            for nr, name in enumerate(outputs):
                lines.append(f"{name} = make(r[{nr}]._data if isinstance(r[{nr}], Tensor) else r[{nr}])")
        else:
            lines.append(f"{outputs[0]} = make(r._data if isinstance(r, Tensor) else r)")
        remap = getattr(node, "saved_outputs", ())
        if remap and needs is not None:
            lines.append(f"save_outputs({ctx}, ({''.join(o + ', ' for o in outputs)}), {remap!r})")
        return lines + ["r = None"]

    def _kernel(self, node: Any, ctx: str) -> list[str]:
        """The op as its ``KERNELS`` call: into its buffer (``out=``), or allocating as eager mode."""
        kernel, keeps, _ = KERNELS[node.op]
        value = node.outputs[0]
        number = self.buffers.of.get(id(value))
        xp = self.buffers.modules[id(value)]
        args = node.args
        operands = [a for a in args if isinstance(a, Value)][:2]
        if number is None:
            out, tensor = "r", self._local(value)
        else:
            out, tensor = f"B{number}", f"T{number}"
            self._names[id(value)] = tensor
        fields: dict[str, str] = {"ctx": ctx, "tout": tensor}
        for i, operand in enumerate(operands):
            fields[str(i)], fields[f"t{i}"] = self._array(operand), self._names[id(operand)]
        if node.op in _SCALAR_OPS:
            fields["c"] = self._constant(args[1])
        fields["shapes"] = self._constant(tuple(tuple(a.shape) for a in operands))
        function = kernel.split("(", 1)[0]
        self._globals.setdefault(function, getattr(xp, function))
        call = kernel.format(*(fields[str(i)] for i in range(len(operands))), **fields)
        lines = [f"{call[:-1]}, out={out})" if number is not None else f"r = {call}"]
        if node.op is _linalg.Linear and args[2] is not None:
            self._globals.setdefault("add", xp.add)  # ``out += bias`` as a call: B<n> stays a global
            lines.append(f"add({out}, {self._array(args[2])}, out={out})")
        if number is None:
            lines += [f"{tensor} = make(r)", "r = None"]
        if keeps and ctx != "SCRATCH":
            lines.append(keeps.format(**fields))
        return lines

    # ---- the backward pass

    def _backward(self, node: Any) -> list[str]:
        """The backward walk unrolled: each node's gradients in locals ``g<step>_<output>``,
        added in the engine's order, a node run when any arrived, leaves accumulated as
        ``AccumulateGrad`` does."""
        root, gradient, plan = node.args
        steps = plan.steps
        names = [f"g{i}_{nr}" for i, step in enumerate(steps) for nr in range(_width(step))]
        lines = ["adapt()"]
        for start in range(0, len(names), 200):
            lines.append(" = ".join(names[start : start + 200]) + " = None")
        seed = (
            f"{self._arg(gradient)}._data" if gradient is not None else f"ones_like({self._arg(root)}._data)"
        )
        lines.append(f"g{plan.root}_{plan.root_nr} = {seed}")
        for i, step in enumerate(steps):
            if step[1] is None:
                leaf = self._arg(step[0])
                lines += [
                    f"if g{i}_0 is not None:",
                    f"    held = [g{i}_0]",
                    f"    g{i}_0 = None",
                    f"    accumulate({leaf}, held)",
                ]
                continue
            lines += self._backward_step(i, step, plan)
        return lines

    def _backward_kernels(self) -> set[int]:
        """The forward nodes whose backward is written inline (``BACKWARD_KERNELS``): kernels that
        take and give arrays (no tensor hook on their output)."""
        found = set()
        for node in self.graph.nodes:
            if node.op is not Backward:
                continue
            for step in node.args[2].steps:
                index, arrays = step[1], step[1] is not None and step[3]
                if arrays and self.buffers.inline(index) and self.graph.nodes[index].op in BACKWARD_KERNELS:
                    found.add(index)
        return found

    def _backward_kernel(self, i: int, index: int, edges: tuple) -> list[str]:
        node = self.graph.nodes[index]
        xp = self.buffers.modules[id(node.outputs[0])]
        for function in ("multiply", "subtract", "greater"):
            self._globals.setdefault(function, getattr(xp, function))
        grad = f"g{i}_0"
        scalar = self._constant(node.args[1]) if node.op in _SCALAR_OPS else ""
        body = [
            line.format(g=grad, y=f"c{index}._saved[0]._data", c=scalar) for line in BACKWARD_KERNELS[node.op]
        ]
        body.append(f"{grad} = None" if node.op in _SCALAR_OPS else f"{grad} = c{index} = None")
        if edges and edges[0] is not None:
            target = f"g{edges[0][0]}_{edges[0][1]}"
            body.append(f"{target} = x if {target} is None else {target} + x")
        body.append("x = None")
        return [f"if {grad} is not None:"] + ["    " + line for line in body]

    def _backward_step(self, i: int, step: tuple, plan: BackwardPlan) -> list[str]:
        _, index, edges, arrays, materialize, meta, prehooks = step
        if index in self._inline_backward:
            return self._backward_kernel(i, index, edges)
        grads = [f"g{i}_{nr}" for nr in range(len(meta))]
        backward = self._constant(self.graph.nodes[index].op.backward)
        if arrays and (len(meta) == 1 or not materialize):
            call = f"{backward}(c{index}, {', '.join(grads)})"
        else:
            prepared = self._constant((arrays, materialize, meta, prehooks))
            call = f"{backward}(c{index}, *prepared([{', '.join(grads)}], *{prepared}))"
        body = [f"r = {call}", f"{' = '.join(grads)} = c{index} = None"]
        single = all(edge is None for edge in edges[1:])  # most ops: one input takes a gradient
        if not single:
            body.append("if type(r) is not tuple: r = (r,)")
        for k, edge in enumerate(edges):
            if edge is None:
                continue
            target = f"g{edge[0]}_{edge[1]}"
            pick = "r[0] if type(r) is tuple else r" if single else f"r[{k}] if len(r) > {k} else None"
            body += [
                f"x = {pick}",
                "if x is not None:",
                "    if isinstance(x, Tensor): x = x._data",
                f"    {target} = x if {target} is None else {target} + x",
            ]
        body.append("r = x = None")
        return [f"if {' or '.join(g + ' is not None' for g in grads)}:"] + ["    " + line for line in body]

    # ---- running it

    def __call__(self, inputs: list[Tensor]) -> Any:
        previous, _grad_state.enabled = _grad_state.enabled, False
        try:
            results = self._replay(inputs, previous)
        finally:
            _grad_state.enabled = previous
        slots = {id(v): t for v, t in zip(leaves(self.graph.outputs, Value), results, strict=True)}
        return _structure(self.graph.outputs, slots)


def _width(step: tuple) -> int:
    return 1 if step[1] is None else len(step[5])


def _node_values(node: Any) -> list[Value]:
    if node.op is Backward:
        return [v for v in node.args[:2] if isinstance(v, Value)]
    return [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, Value)]


def _structure(item: Any, tensors: dict[int, Tensor]) -> Any:
    if isinstance(item, Value):
        return Tensor._make(tensors[id(item)]._data)
    if isinstance(item, dict):
        return {key: _structure(x, tensors) for key, x in item.items()}
    if isinstance(item, (tuple, list)):
        return type(item)(_structure(x, tensors) for x in item)
    return item


def _saved_outputs(ctx: Ctx, outputs: tuple, remap: tuple) -> None:
    """Put the output tensors where forward saved its raw outputs, as eager mode does."""
    saved = list(ctx._saved)
    for position, nr in remap:
        saved[position] = outputs[nr]
    ctx._saved = tuple(saved)


def _ones_like(array: Any) -> Any:
    return backend.array_module(array).ones(array.shape, dtype=array.dtype)


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
    if tensor._post_accumulate_grad_hooks:
        for hook in list(tensor._post_accumulate_grad_hooks):
            hook(tensor)
