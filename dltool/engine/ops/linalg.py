"""Products: matmul (with broadcasting batch dims and 1-D operands), mm, bmm, dot, outer, the
fused ``linear`` behind ``nn.Linear``, the ``add*`` family, einsum, tensordot, kron, trace, cross.

Only ``matmul``, ``linear`` and ``einsum`` have their own ``Function``; the rest are compositions.
"""

from __future__ import annotations

import math
import string
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import with_out, write_out
from dltool.engine.ops._utils import backward_operands, sum_rows, unbroadcast
from dltool.engine.ops.elementwise import _pair, cast, where
from dltool.engine.ops.index import index_select
from dltool.engine.tensor import Tensor, _wrap_dim


class Matmul(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x._xp().matmul(x._data, y._data)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        # 1-D operands act as a row (x) or a column (y) vector; undo that at the end
        x2 = x.unsqueeze(0) if x.ndim == 1 else x
        y2 = y.unsqueeze(-1) if y.ndim == 1 else y
        grad = grad_output
        if y.ndim == 1:
            grad = grad.unsqueeze(-1)
        if x.ndim == 1:
            grad = grad.unsqueeze(-2)
        x_grad = y_grad = None
        if ctx.needs_input_grad[0]:
            x_grad = unbroadcast(grad.matmul(y2.transpose(-1, -2)), x2.shape).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            y_grad = unbroadcast(x2.transpose(-1, -2).matmul(grad), y2.shape).reshape(y.shape)
        return x_grad, y_grad


def matmul(input: Tensor, other: Tensor, *, out: Tensor | None = None) -> Tensor:
    """Matrix product with numpy's rules: batch dims broadcast, 1-D operands are vectors.

    ``out`` is taken here rather than through ``with_out``: ``@`` runs this function, and a
    wrapper would cost every product a call.
    """
    if input.ndim == 0 or other.ndim == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D")
    x, y = _pair(input, other, broadcast=False)
    inner_x = x.shape[-1]
    inner_y = y.shape[-2] if y.ndim > 1 else y.shape[0]
    if inner_x != inner_y:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({_describe(x)} and {_describe(y)})")
    return Matmul.apply(x, y) if out is None else write_out(out, Matmul.apply(x, y), "matmul")


class Linear(Function):
    """``x @ weight.T + bias`` as one graph node, as PyTorch's addmm: one GEMM per gradient.

    Leading dims of ``x`` are folded into one matrix product.
    """

    array_gradients = True

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        data = x._data
        rows = data.reshape(-1, data.shape[-1]) if data.ndim > 2 else data
        out = x._xp().matmul(rows, weight._data.T)
        if bias is not None:
            out += bias._data
        return out.reshape(data.shape[:-1] + out.shape[-1:]) if data.ndim > 2 else out

    @staticmethod
    def backward(ctx, grad_output):
        grad_output, x, weight = backward_operands(grad_output, *ctx.saved_tensors)
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad
        x_grad = weight_grad = bias_grad = None
        # leading dims folded into rows: one GEMM per gradient (a stacked matmul would run one per slice)
        grad_rows = grad_output if grad_output.ndim == 2 else grad_output.reshape(-1, weight.shape[0])
        if needs_x:
            x_grad = (grad_rows @ weight).reshape(x.shape)
        if needs_weight:
            x_rows = x if x.ndim == 2 else x.reshape(-1, weight.shape[1])
            weight_grad = grad_rows.T @ x_rows
        if needs_bias:
            bias_grad = sum_rows(grad_rows)
        return x_grad, weight_grad, bias_grad


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` for ``input`` of shape ``(..., in_features)``."""
    if input.ndim == 0:
        raise RuntimeError("both arguments to linear need to be at least 1D")
    if input.dtype != weight.dtype:
        raise RuntimeError(
            f"mat1 and mat2 must have the same dtype, but got {input.dtype} and {weight.dtype}"
        )
    if input.shape[-1] != weight.shape[1]:
        rows = input.numel() // input.shape[-1] if input.shape[-1] else 0
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{input.shape[-1]} and "
            f"{weight.shape[1]}x{weight.shape[0]})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise RuntimeError(
            f"bias of shape {tuple(bias.shape)} does not match {weight.shape[0]} output features"
        )
    return Linear.apply(input, weight, bias)


def _describe(t: Tensor) -> str:
    return "x".join(str(n) for n in t.shape)


@with_out
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """Product of two matrices (2-D only)."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2D tensors, got {input.ndim}D and {mat2.ndim}D")
    return matmul(input, mat2)


@with_out
def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched product of ``(b, n, m)`` and ``(b, m, p)`` tensors."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm: expected 3D tensors, got {input.ndim}D and {mat2.ndim}D")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ ({input.shape[0]} and {mat2.shape[0]})")
    return matmul(input, mat2)


def dot(input: Tensor, other: Tensor) -> Tensor:
    """Inner product of two 1-D tensors of the same length."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    return matmul(input, other)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """``input[:, None] * vec2[None, :]`` for 1-D tensors."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError("outer: expected 1D tensors")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


# =============================================================== beta * input + alpha * product


def _add_scaled(input: Tensor, product: Tensor, beta: Any, alpha: Any) -> Tensor:
    """``beta * input + alpha * product``, ``input`` broadcast to the product's shape.

    With ``beta == 0`` the input is ignored, nan and inf included, as in PyTorch (its gradient is 0).
    """
    input = input.expand(product.shape)
    if alpha != 1:
        product = product * alpha
    if beta == 0:
        return where(False, input, product)
    return product + (input if beta == 1 else input * beta)


def _check_batches(batch1: Tensor, batch2: Tensor) -> None:
    if batch1.ndim != 3 or batch2.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor, got {batch1.ndim}D and {batch2.ndim}D")
    expected = [batch1.shape[0], batch1.shape[2]]
    if list(batch2.shape[:2]) != expected:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: {expected} but got: "
            f"{list(batch2.shape[:2])}."
        )


@with_out
def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * (mat1 @ mat2)``."""
    return _add_scaled(input, mm(mat1, mat2), beta, alpha)


@with_out
def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * bmm(batch1, batch2)``, ``input`` broadcast to ``(b, n, p)``."""
    _check_batches(batch1, batch2)
    return _add_scaled(input, matmul(batch1, batch2), beta, alpha)


@with_out
def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * sum_i(batch1[i] @ batch2[i])``, as one matrix product."""
    if batch1.ndim == 3 and batch2.ndim == 3 and batch1.shape[0] != batch2.shape[0]:
        raise RuntimeError(
            f"batch1 and batch2 must have same number of batches, got {batch1.shape[0]} and {batch2.shape[0]}"
        )
    _check_batches(batch1, batch2)
    b, n, m = batch1.shape
    # the batch folds into the inner dimension: (n, b*m) @ (b*m, p)
    rows = batch1.transpose(0, 1).reshape(n, b * m)
    return _add_scaled(input, matmul(rows, batch2.reshape(b * m, batch2.shape[2])), beta, alpha)


@with_out
def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * (mat @ vec)``."""
    if mat.ndim != 2 or vec.ndim != 1 or input.ndim > 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, {mat.ndim}, {vec.ndim}")
    if mat.shape[1] != vec.shape[0] or input.shape not in ((mat.shape[0],), (1,), ()):
        raise RuntimeError(
            f"size mismatch, got input ({', '.join(map(str, input.shape))}), mat ({_describe(mat)}), "
            f"vec ({vec.shape[0]})"
        )
    return _add_scaled(input, matmul(mat, vec), beta, alpha)


@with_out
def addr(input: Tensor, vec1: Tensor, vec2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``beta * input + alpha * outer(vec1, vec2)``."""
    for name, vec in (("vec1", vec1), ("vec2", vec2)):
        if vec.ndim != 1:
            raise RuntimeError(f"addr: Expected 1-D argument {name}, but got {vec.ndim}-D")
    return _add_scaled(input, outer(vec1, vec2), beta, alpha)


# =============================================================== einsum, tensordot, kron, trace


_LABELS = string.ascii_letters


class Einsum(Function):
    """``numpy.einsum`` on an explicit equation (every label spelled out, the output given)."""

    @staticmethod
    def forward(ctx, terms, sizes, *operands):
        ctx.save_for_backward(*operands)
        ctx.terms, ctx.sizes = terms, sizes
        inputs, output = terms
        xp = operands[0]._xp()
        return xp.einsum(
            f"{','.join(inputs)}->{output}", *(x._data for x in operands), optimize=len(operands) > 1
        )

    @staticmethod
    def backward(ctx, grad_output):
        operands = ctx.saved_tensors
        grads = [
            _einsum_operand_grad(i, grad_output, operands, ctx.terms, ctx.sizes) if needed else None
            for i, needed in enumerate(ctx.needs_input_grad[2:])
        ]
        return (None, None, *grads)


def _einsum_operand_grad(i: int, grad_output: Tensor, operands: tuple, terms: tuple, sizes: dict) -> Tensor:
    """The gradient of operand ``i``: the einsum of the output's gradient with the other operands.

    A label repeated in the operand (a diagonal) gets a fresh label per repeat, tied to the first by
    an identity matrix; a label summed in this operand alone comes from a vector of ones. Labels
    broadcast from size 1 are summed back.
    """
    inputs, output = terms
    xp = operands[0]._xp()
    fresh = iter(label for label in _LABELS if label not in sizes)
    target, extra_terms, extras = "", [], []
    for label in inputs[i]:
        if label in target:
            spare = next(fresh)
            extra_terms.append(label + spare)
            extras.append(Tensor._make(xp.eye(sizes[label], dtype=grad_output.dtype)))
            label = spare
        target += label
    others = [k for k in range(len(operands)) if k != i]
    seen = set(output + "".join(inputs[k] for k in others) + "".join(extra_terms))
    for label in dict.fromkeys(target):
        if label not in seen:
            extra_terms.append(label)
            extras.append(Tensor._make(xp.ones(sizes[label], dtype=grad_output.dtype)))
    equation = ",".join([output, *(inputs[k] for k in others), *extra_terms]) + "->" + target
    grad = einsum(equation, grad_output, *(operands[k] for k in others), *extras)
    shape = operands[i].shape
    squeezed = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    if squeezed:
        grad = grad.sum(dim=squeezed, keepdim=True)
    return grad if grad.shape == shape else grad.expand(shape)


def _sublist_equation(arguments: tuple) -> tuple[str, list]:
    """``einsum(op1, [0, 1], op2, [1, 2], [0, 2])``'s equation, as a string, and its operands."""
    output = arguments[-1] if len(arguments) % 2 else None
    pairs = arguments[:-1] if len(arguments) % 2 else arguments
    operands, sublists = list(pairs[0::2]), list(pairs[1::2])

    def spell(sublist: Sequence) -> str:
        return "".join("..." if label is Ellipsis else _LABELS[label] for label in sublist)

    equation = ",".join(spell(s) for s in sublists)
    return (equation if output is None else f"{equation}->{spell(output)}"), operands


def _einsum_terms(equation: str, operands: Sequence[Tensor]) -> tuple[tuple, dict]:
    """The equation with ellipses spelled out and the output made explicit, and each label's size.

    Raises:
        RuntimeError: PyTorch's errors for operand counts, subscript counts and sizes.
    """
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    written = lhs.split(",")
    if len(written) != len(operands):
        fewer = len(operands) < len(written)
        raise RuntimeError(
            f"einsum(): {'fewer' if fewer else 'more'} operands were provided than specified in the equation"
        )
    spare = [label for label in _LABELS if label not in equation]
    broadcast = max(
        (x.ndim - len(t) + 3 for t, x in zip(written, operands, strict=True) if "..." in t), default=0
    )
    fill = "".join(spare[:broadcast])
    inputs, sizes = [], {}
    for k, (term, x) in enumerate(zip(written, operands, strict=True)):
        term = _spelled(term, x.ndim, k, fill)
        _einsum_sizes(term, x.shape, k, sizes)
        inputs.append(term)
    if arrow:
        output = rhs.replace("...", fill)
    else:
        counts = Counter("".join(written).replace(".", ""))
        output = fill + "".join(sorted(label for label, n in counts.items() if n == 1))
    return (tuple(inputs), output), sizes


def _spelled(term: str, ndim: int, k: int, fill: str) -> str:
    """``term`` with its ellipsis spelled as the last labels of ``fill``, one per dim it covers.

    Raises:
        RuntimeError: the subscripts do not fit operand ``k``'s ``ndim`` dims.
    """
    if "..." not in term:
        if len(term) != ndim:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({len(term)}) does not match the "
                f"number of dimensions ({ndim}) for operand {k} and no ellipsis was given"
            )
        return term
    covered = ndim - (len(term) - 3)
    if covered < 0:
        raise RuntimeError(
            f"einsum(): the number of subscripts in the equation ({len(term) - 3}) is more than the "
            f"number of dimensions ({ndim}) for operand {k}"
        )
    return term.replace("...", fill[len(fill) - covered :])


def _einsum_sizes(term: str, shape: tuple, k: int, sizes: dict) -> None:
    """Record each label's size in ``sizes``, broadcasting size 1 against others as PyTorch does."""
    own: dict = {}
    for label, n in zip(term, shape, strict=True):
        if label in own and own[label] != n:
            raise RuntimeError(
                f"einsum(): subscript {label} is repeated for operand {k} but the sizes don't match, "
                f"{own[label]} != {n}"
            )
        own[label] = n
        seen = sizes.get(label, 1)
        if n != 1 and seen not in (1, n):
            raise RuntimeError(
                f"einsum(): subscript {label} has size {n} for operand {k} which does not broadcast "
                f"with previously seen size {seen}"
            )
        sizes[label] = max(seen, n)


def einsum(*args: Any) -> Tensor:
    """Einstein summation: ``einsum("ij,jk->ik", a, b)`` is ``a @ b``.

    Takes any equation numpy's einsum takes (ellipses, implicit output, repeated labels), the
    operands as arguments or as one list, or PyTorch's sublist form ``einsum(a, [0, 1], b, [1, 2])``.

    Example:
        >>> einsum("ii", eye(3)).item()
        3.0
    """
    if not args:
        raise TypeError("einsum(): must specify the equation string and at least one operand")
    if isinstance(args[0], str):
        equation, operands = args[0], list(args[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
    else:
        equation, operands = _sublist_equation(args)
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    target = operands[0].dtype
    for x in operands[1:]:
        target = dtypes.result_type(target, x.dtype, False, False)
    operands = [cast(x, target) for x in operands]
    terms, sizes = _einsum_terms(equation, operands)
    return Einsum.apply(terms, sizes, *operands)


def _tensordot_dims(a: Tensor, b: Tensor, dims: Any) -> tuple[list[int], list[int]]:
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > min(a.ndim, b.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        return list(range(a.ndim - dims, a.ndim)), list(range(dims))
    dims_a, dims_b = dims
    dims_a = [dims_a] if isinstance(dims_a, int) else list(dims_a)
    dims_b = [dims_b] if isinstance(dims_b, int) else list(dims_b)
    if len(dims_a) != len(dims_b):
        raise RuntimeError("both dimension lists should have same length")
    return [_wrap_dim(d, a.ndim) for d in dims_a], [_wrap_dim(d, b.ndim) for d in dims_b]


@with_out
def tensordot(a: Tensor, b: Tensor, dims: Any = 2) -> Tensor:
    """Sum of products over ``dims``: the last ``dims`` of ``a`` with the first of ``b`` for an int,
    else the pair of dim lists ``(dims_a, dims_b)``; computed as one matrix product.

    Raises:
        RuntimeError: contracted dimensions differ in size.
    """
    dims_a, dims_b = _tensordot_dims(a, b, dims)
    for da, db in zip(dims_a, dims_b, strict=True):
        if a.shape[da] != b.shape[db]:
            raise RuntimeError(
                f"contracted dimensions need to match, but first has size {a.shape[da]} in dim {da} "
                f"and second has size {b.shape[db]} in dim {db}"
            )
    free_a = [d for d in range(a.ndim) if d not in dims_a]
    free_b = [d for d in range(b.ndim) if d not in dims_b]
    shape_a, shape_b = [a.shape[d] for d in free_a], [b.shape[d] for d in free_b]
    inner = math.prod(a.shape[d] for d in dims_a)
    rows = a.permute(*free_a, *dims_a).reshape(math.prod(shape_a), inner)
    columns = b.permute(*dims_b, *free_b).reshape(inner, math.prod(shape_b))
    return matmul(rows, columns).reshape(tuple(shape_a + shape_b))


@with_out
def kron(input: Tensor, other: Tensor) -> Tensor:
    """The Kronecker product: every element of ``input`` times the whole of ``other``, tiled."""
    ndim = max(input.ndim, other.ndim)
    a_shape = (1,) * (ndim - input.ndim) + tuple(input.shape)
    b_shape = (1,) * (ndim - other.ndim) + tuple(other.shape)
    # interleave the dims, (a0, 1, a1, 1, ...) * (1, b0, 1, b1, ...), then merge each pair
    a = input.reshape(tuple(n for m in a_shape for n in (m, 1)))
    b = other.reshape(tuple(n for m in b_shape for n in (1, m)))
    return (a * b).reshape(tuple(m * n for m, n in zip(a_shape, b_shape, strict=True)))


def trace(input: Tensor) -> Tensor:
    """The sum of a matrix's main diagonal (integers sum as int64)."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    n = min(input.shape)
    return einsum("ii->i", input[:n, :n]).sum()


# =============================================================== cross product


def _cross(input: Tensor, other: Tensor, dim: int) -> Tensor:
    if input.ndim != other.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    x, y = _pair(input, other)
    axis = _wrap_dim(dim, x.ndim)
    if x.shape[axis] != 3 or y.shape[axis] != 3:
        raise RuntimeError(
            f"linalg.cross: inputs dimension {dim} must have length 3. Got {x.shape[axis]} and {y.shape[axis]}"
        )
    xp = x._xp()
    # rotations of the components: c = x[(1, 2, 0)] * y[(2, 0, 1)] - x[(2, 0, 1)] * y[(1, 2, 0)]
    ahead, behind = (Tensor._make(xp.asarray(order)) for order in ((1, 2, 0), (2, 0, 1)))
    return index_select(x, axis, ahead) * index_select(y, axis, behind) - index_select(
        x, axis, behind
    ) * index_select(y, axis, ahead)


@with_out
def cross(input: Tensor, other: Tensor, dim: int | None = None) -> Tensor:
    """The cross product of 3-vectors along ``dim`` (by default, deprecated, the first dim of size 3)."""
    if dim is None:
        warnings.warn(
            "Using torch.cross without specifying the dim arg is deprecated.\nPlease either pass the dim "
            "explicitly or simply use torch.linalg.cross.\nThe default value of dim will change to "
            "agree with that of linalg.cross in a future release.",
            UserWarning,
            stacklevel=3,
        )
        dim = next((d for d, n in enumerate(input.shape) if n == 3), None)
        if dim is None:
            raise RuntimeError("no dimension of size 3 in input")
    return _cross(input, other, dim)


@with_out
def linalg_cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:
    """``torch.linalg.cross``: the cross product of 3-vectors along ``dim``, broadcasting the rest."""
    return _cross(input, other, dim)
