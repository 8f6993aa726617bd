"""The backward engine: walks the graph iteratively in topological order (by sequence number).

No recursion anywhere, so graphs of any depth work; each node's saved buffers are freed as soon as
it has run, unless ``retain_graph`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from heapq import heappop, heappush
from typing import Any

from dltool.engine import _threads
from dltool.engine.autograd import function as _function
from dltool.engine.autograd.function import AccumulateGrad, Node
from dltool.engine.autograd.grad_mode import state as _grad_state


def _as_tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,)


def _root_grads(outputs: tuple, grad_outputs: tuple) -> list:
    from dltool.engine.tensor import Tensor

    if grad_outputs and len(grad_outputs) != len(outputs):
        raise RuntimeError(
            f"grad_tensors/grad_outputs has {len(grad_outputs)} items but outputs has {len(outputs)}"
        )
    roots = []
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"outputs must be tensors, got {type(out).__name__} at index {i}")
        if not out.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        grad = grad_outputs[i] if grad_outputs else None
        if grad is None:
            if out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            grad = Tensor._make(out._xp().ones(out.shape, dtype=out.dtype))
        elif not isinstance(grad, Tensor):
            grad = Tensor._make(out._xp().asarray(grad, dtype=out.dtype))
        if tuple(grad.shape) != out.shape:
            raise RuntimeError(
                f"Mismatch in shape: grad_output[{i}] has a shape of {tuple(grad.shape)} and "
                f"output[{i}] has a shape of {out.shape}."
            )
        roots.append((out._grad_node(), out._output_nr, grad))
    return roots


def _in_order(roots: list) -> Iterator[Node]:
    """The nodes reachable from the roots, each after every node that feeds it a gradient.

    A node is made after the nodes of its inputs, so decreasing sequence numbers are such an order
    (PyTorch's engine runs nodes by sequence number as well); a heap of the nodes met so far gives
    it without first walking the graph to count dependencies.
    """
    pending: list = []
    seen: set = set()
    for node, _, _ in roots:
        if node not in seen:
            seen.add(node)
            heappush(pending, (-node._sequence_nr, node))
    while pending:
        node = heappop(pending)[1]
        while node is not None:
            yield node
            node = _next_in_chain(node, pending, seen)


def _next_in_chain(node: Node, pending: list, seen: set) -> Node | None:
    """Add the unseen children of ``node`` to ``pending``; but when the heap is empty and there is
    one such child, return it instead, the next node in any case (the common chain of ops goes
    through no heap)."""
    first = None
    for child, _ in node.next_functions:
        if child is not None and child not in seen:
            seen.add(child)
            if first is None and not pending:
                first = child
                continue
            heappush(pending, (-child._sequence_nr, child))
    if first is not None and pending:  # more than one child: the heap orders them all
        heappush(pending, (-first._sequence_nr, first))
        return None
    return first


def _needed_nodes(roots: list, targets: set) -> set:
    """The nodes from which a gradient can still reach one of the targets."""
    order = list(_in_order(roots))
    needed: set = set()
    for node in reversed(order):
        if node in targets or any(child in needed for child, _ in node.next_functions):
            needed.add(node)
    return needed


def _execute(
    roots: list,
    retain_graph: bool,
    create_graph: bool,
    capture: dict | None = None,
) -> None:
    """Propagate root gradients through the graph.

    With ``capture`` (a dict keyed by ``(node, output_nr)``) the gradients arriving there are stored
    in it instead of being accumulated into leaves, as ``autograd.grad`` needs. In a plain
    ``backward`` (no graph of the gradients wanted) the gradients travel between nodes as arrays:
    a node whose Function has ``array_gradients`` gets and gives arrays, the others get Tensors
    made for them.
    """
    needed = _needed_nodes(roots, {node for node, _ in capture}) if capture is not None else None
    as_arrays = not create_graph and capture is None
    buffers: dict[Node, list] = {}
    for node, nr, grad in roots:
        _accumulate(buffers, node, nr, grad._data if as_arrays else grad)
    previous, _grad_state.enabled = _grad_state.enabled, create_graph
    try:
        for node in _in_order(roots):
            grads = buffers.pop(node, None)
            if grads is None or (needed is not None and node not in needed):
                continue
            if type(node) is AccumulateGrad:
                if as_arrays:
                    _as_tensors(grads)
                if capture is None:
                    node._run(grads, retain_graph)
                else:
                    _capture(capture, node, grads)
                continue
            hooked = node._tensor_prehooks or node._retains
            if not as_arrays:
                pass
            elif node._fn.array_gradients and not (hooked or node._prehooks or node._hooks):
                if len(grads) > 1 and node.materialize_grads:
                    _zero_fill(grads, node)
            else:
                _as_tensors(grads)
            if hooked:
                node._apply_tensor_hooks(grads)
            if capture is not None:
                _capture(capture, node, grads)
            _pass_on(buffers, node, node._run(grads, retain_graph), as_arrays)
    finally:
        _grad_state.enabled = previous


def _capture(capture: dict, node: Node, grads: list) -> None:
    """Add the gradients arriving at ``node`` to those ``autograd.grad`` asked for."""
    for nr, grad in enumerate(grads):
        if (node, nr) in capture:
            capture[(node, nr)] = _sum(capture[(node, nr)], grad)


def _as_tensors(grads: list) -> None:
    """Wrap the arrays in place, so that the list holds the only reference to each Tensor (see
    ``AccumulateGrad``)."""
    make = _function._Tensor._make
    grads[:] = [None if g is None else make(g) for g in grads]


def _zero_fill(grads: list, node: Node) -> None:
    """Zero arrays for the outputs of ``node`` that got no gradient."""
    for nr, grad in enumerate(grads):
        if grad is None:
            shape, dtype, xp = node._output_meta[nr]
            grads[nr] = xp.zeros(shape, dtype=dtype)


def _pass_on(buffers: dict, node: Node, grad_inputs: tuple, as_arrays: bool) -> None:
    """Add ``node``'s input gradients to the buffers of the nodes that feed it.

    NOTE: a function of its own, so that no local variable of the walk keeps a gradient alive:
    AccumulateGrad adopts a gradient only when the engine's buffer holds the sole reference.
    """
    tensor_type = _function._Tensor
    for i, (child, nr) in enumerate(node.next_functions):
        grad = grad_inputs[i]
        if child is None or grad is None:
            continue
        if isinstance(grad, tensor_type) == as_arrays:  # a backward may return either
            grad = grad._data if as_arrays else tensor_type._make(grad)
        if (grad if as_arrays else grad._data).shape != child._output_meta[nr][0]:
            _invalid_gradient(node, i, grad, child._output_meta[nr][0])
        _accumulate(buffers, child, nr, grad)


def _invalid_gradient(node: Node, index: int, grad: Any, expected: tuple) -> None:
    raise RuntimeError(
        f"Function {node.name()} returned an invalid gradient at index {index} - got "
        f"{list(grad.shape)} but expected shape compatible with {list(expected)}"
    )


def _sum(total: Any, grad: Any) -> Any:
    if grad is None:
        return total
    return grad if total is None else total + grad


def _accumulate(buffers: dict, node: Node, nr: int, grad: Any) -> None:
    grads = buffers.get(node)
    if grads is None:
        grads = buffers[node] = [None] * len(node._output_meta)
    grads[nr] = grad if grads[nr] is None else grads[nr] + grad


def backward(
    tensors: Any,
    grad_tensors: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate into the leaves' ``.grad`` the gradients of ``tensors`` (see ``Tensor.backward``)."""
    outputs = _as_tuple(tensors)
    roots = _root_grads(outputs, _as_tuple(grad_tensors))
    if retain_graph is None:
        retain_graph = create_graph
    _threads.adapt()  # once a training step: fit the BLAS threads to the cores free now
    _execute(roots, retain_graph, create_graph)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple:
    """Return the gradients of ``outputs`` with respect to ``inputs`` without touching ``.grad``.

    Example:
        >>> x = tensor([3.0], requires_grad=True)
        >>> (g,) = grad(x * x, x, grad_outputs=ones(1))
        >>> g
        tensor([6.])
    """
    from dltool.engine.tensor import Tensor

    outputs_t = _as_tuple(outputs)
    inputs_t: Sequence = _as_tuple(inputs)
    for i, tensor in enumerate(inputs_t):
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (index {i}) does not require grad")
    roots = _root_grads(outputs_t, _as_tuple(grad_outputs))
    if retain_graph is None:
        retain_graph = create_graph
    keys = [(tensor._grad_node(), tensor._output_nr) for tensor in inputs_t]
    capture: dict = dict.fromkeys(keys)
    _execute(roots, retain_graph, create_graph, capture)
    results = []
    for i, key in enumerate(keys):
        value = capture[key]
        if value is None:
            if materialize_grads:
                value = Tensor._make(inputs_t[i]._xp().zeros_like(inputs_t[i]._data))
            elif not allow_unused:
                raise RuntimeError(
                    "One of the differentiated Tensors appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior."
                )
        elif not create_graph:
            value = value.detach()
        results.append(value)
    return tuple(results)
