"""Matrix products: matmul (with broadcasting batch dims and 1-D operands), mm, bmm, dot, outer,
and the fused ``linear`` (``x @ weight.T + bias``) behind ``nn.Linear``."""

from __future__ import annotations

from dltool.engine.autograd.function import Function
from dltool.engine.ops._utils import as_gradients, backward_operands, unbroadcast
from dltool.engine.ops.elementwise import _pair
from dltool.engine.tensor import Tensor


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


def matmul(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """Matrix product with numpy's rules: batch dims broadcast, 1-D operands are vectors."""
    if input.ndim == 0 or other.ndim == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D")
    x, y = _pair(input, other, broadcast=False)
    inner_x = x.shape[-1]
    inner_y = y.shape[-2] if y.ndim > 1 else y.shape[0]
    if inner_x != inner_y:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({_describe(x)} and {_describe(y)})"
        )
    return Matmul.apply(x, y)


class Linear(Function):
    """``x @ weight.T + bias`` as one graph node, as PyTorch's addmm: one GEMM per gradient.

    Leading dims of ``x`` are folded into one matrix product.
    """

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
        if needs_x:
            x_grad = grad_output @ weight
        if needs_weight or needs_bias:
            grad_rows = grad_output if grad_output.ndim == 2 else grad_output.reshape(-1, weight.shape[0])
            if needs_weight:
                x_rows = x if x.ndim == 2 else x.reshape(-1, weight.shape[1])
                weight_grad = grad_rows.T @ x_rows
            if needs_bias:
                bias_grad = grad_rows.sum(0)
        return as_gradients(x_grad, weight_grad, bias_grad)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """``input @ weight.T + bias`` for ``input`` of shape ``(..., in_features)``."""
    if input.ndim == 0:
        raise RuntimeError("both arguments to linear need to be at least 1D")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {input.dtype} and {weight.dtype}")
    if input.shape[-1] != weight.shape[1]:
        rows = input.numel() // input.shape[-1] if input.shape[-1] else 0
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({rows}x{input.shape[-1]} and "
            f"{weight.shape[1]}x{weight.shape[0]})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise RuntimeError(f"bias of shape {tuple(bias.shape)} does not match {weight.shape[0]} output features")
    return Linear.apply(input, weight, bias)


def _describe(t: Tensor) -> str:
    return "x".join(str(n) for n in t.shape)


def mm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002
    """Product of two matrices (2-D only)."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"mm: expected 2D tensors, got {input.ndim}D and {mat2.ndim}D")
    return matmul(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002
    """Batched product of ``(b, n, m)`` and ``(b, m, p)`` tensors."""
    if input.ndim != 3 or mat2.ndim != 3:
        raise RuntimeError(f"bmm: expected 3D tensors, got {input.ndim}D and {mat2.ndim}D")
    if input.shape[0] != mat2.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ ({input.shape[0]} and {mat2.shape[0]})")
    return matmul(input, mat2)


def dot(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """Inner product of two 1-D tensors of the same length."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    return matmul(input, other)


def outer(input: Tensor, vec2: Tensor) -> Tensor:  # noqa: A002
    """``input[:, None] * vec2[None, :]`` for 1-D tensors."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError("outer: expected 1D tensors")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta: float = 1, alpha: float = 1) -> Tensor:  # noqa: A002
    return input * beta + mm(mat1, mat2) * alpha
