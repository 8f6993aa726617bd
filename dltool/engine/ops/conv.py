"""Convolutions as im2col plus one BLAS matmul: ``unfold``/``fold``, conv1d/2d, conv_transpose1d/2d.

``unfold`` copies every sliding window of the (padded) input out of a strided view into columns.
PyTorch's ``F.unfold`` layout is ``(N, C*kh*kw, L)``; convolutions use ``(C*kh*kw, L*N)`` instead
(the "gemm" layout), so that a convolution is one large matmul with the flattened weight (a batch
of N small ones runs far slower on two BLAS threads). Its batch axis is innermost: the image is
read as ``(C, H, W, N)``, so each window row is copied as runs of ``Wo*N`` contiguous values rather
than ``Wo``, and a convolution's output comes out in ``(O, H, W, N)`` memory order, which the
next convolution reads without a copy. ``fold`` is unfold's adjoint (overlapping windows add up),
so each is the other's backward and a convolution's gradients, of any order, come from these and a
matmul.

A convolution never makes its whole column matrix (9x its input for 3x3): its product, its weight
gradient and its input gradient (``FoldedProduct``) make the columns a band of output rows at a
time (``BAND_BYTES``), each multiplied or summed while still in cache, and backward reads the
padded input again instead of keeping the columns. For 64 images of 32x32, 32 -> 64 channels,
3x3, that took a forward and backward step from 52-57 to 46-49 ms on the 2-core machine.

A large convolution's bands (``_blas_pool.MIN_PIECES`` or more) run at once, each at one BLAS
thread: on a busy machine a band whose worker waits for a core holds up only itself, where a
two-thread product of every band waited for both cores, and such a convolution has the same bits
at any thread count. Beside two busy processes on two cores the step above took 1.9-2.0x its quiet
time instead of 3.4x (PyTorch's: 2.5-2.6x).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dltool.engine import _blas_pool, backend
from dltool.engine.autograd.function import Function
from dltool.engine.autograd.grad_mode import is_grad_enabled
from dltool.engine.tensor import Tensor

# bytes of gemm columns that a convolution makes at a time: a band that stays in cache
BAND_BYTES = 4 * 2**20

# =============================================================== window geometry


def pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair, as PyTorch's 2-D layers accept either."""
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return (value[0], value[0])
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a tuple of 2 ints, got {value}")
    return value  # type: ignore[return-value]


def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis, with PyTorch's rule for ``ceil_mode``."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    count = -(-span // stride) + 1
    # NOTE: the last window must start inside the input or the left padding (PyTorch's rule)
    if (count - 1) * stride >= size + padding:
        count -= 1
    return count


def offset_slices(kernel: tuple, dilation: tuple, stride: tuple, out: tuple, first_row: int = 0) -> Iterator[tuple]:
    """For each kernel offset ``(i, j)``: the slices of the padded input that offset reads for
    ``out[0]`` output rows from ``first_row`` on."""
    for i in range(kernel[0]):
        top = i * dilation[0] + first_row * stride[0]
        rows = slice(top, top + stride[0] * (out[0] - 1) + 1, stride[0])
        for j in range(kernel[1]):
            cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (out[1] - 1) + 1, stride[1])
            yield i, j, (Ellipsis, rows, cols)


def pad_array(x: Any, padding: tuple, extra: tuple = (0, 0), value: float = 0.0) -> Any:
    """``x`` with ``padding`` on both sides of its last two axes and ``extra`` more at the end,
    in ``x``'s memory order."""
    if not any(padding) and not any(extra):
        return x
    h, w = x.shape[-2:]
    shape = x.shape[:-2] + (h + 2 * padding[0] + extra[0], w + 2 * padding[1] + extra[1])
    padded = backend.array_module(x).full_like(x, value, shape=shape)
    padded[..., padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x
    return padded


def _gemm_windows(x: Any, kernel: tuple, dilation: tuple, padding: tuple, stride: tuple, out: tuple) -> Any:
    """Every window of an ``(N, C, H, W)`` image as a view ``(C, kh, kw, Ho, Wo, N)``, only ever read, of
    its padded ``(C, H, W, N)`` copy (a no-op view of a convolution's output, one pass for others)."""
    xp = backend.array_module(x)
    x = xp.ascontiguousarray(x.transpose(1, 2, 3, 0))
    if any(padding):
        x = xp.pad(x, ((0, 0), (padding[0], padding[0]), (padding[1], padding[1]), (0, 0)))
    sc, sh, sw, sn = x.strides
    shape = (x.shape[0],) + tuple(kernel) + tuple(out) + (x.shape[3],)
    strides = (sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1], sn)
    # NOTE: the view overlaps itself; it is only ever read, into fresh arrays
    return xp.lib.stride_tricks.as_strided(x, shape, strides)


def _im2col(x: Any, kernel: tuple, dilation: tuple, padding: tuple, stride: tuple, out: tuple, gemm: bool) -> Any:
    """Every window of the padded ``x`` copied out of a strided view.

    The columns are ``(N, C*kh*kw, Ho*Wo)`` (PyTorch's unfold), or with ``gemm``
    ``(C*kh*kw, Ho*Wo*N)``: the layout in which a convolution is one large matmul.
    """
    xp = backend.array_module(x)
    if gemm:
        windows = _gemm_windows(x, kernel, dilation, padding, stride, out)
        return xp.ascontiguousarray(windows).reshape(windows.shape[0] * kernel[0] * kernel[1], -1)
    x = pad_array(x, padding)
    sn, sc, sh, sw = x.strides
    shape = x.shape[:2] + tuple(kernel) + tuple(out)
    strides = (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1])
    windows = xp.lib.stride_tricks.as_strided(x, shape, strides)
    return xp.ascontiguousarray(windows).reshape(shape[0], -1, out[0] * out[1])


def _row_bands(out_rows: int, column_bytes: int, min_rows: int = 1) -> list[tuple[int, int]]:
    """``(first row, rows)`` of each band of output rows, when the gemm columns of one output row
    take ``column_bytes``: as many rows as fit in ``BAND_BYTES``, at least ``min_rows``."""
    band = max(1, min(out_rows, max(min_rows, BAND_BYTES // column_bytes)))
    return [(first, min(band, out_rows - first)) for first in range(0, out_rows, band)]


def _window_bands(windows: Any) -> tuple[int, list[tuple[int, int]]]:
    """The gemm columns per output row of ``windows`` and the bands of output rows to make them in."""
    channels, kh, kw, out_rows, out_cols, batch = windows.shape
    row = out_cols * batch
    return row, _row_bands(out_rows, windows.itemsize * channels * kh * kw * row)


def _band_columns(windows: Any, first: int, rows: int, groups_shape: tuple) -> Any:
    """The gemm columns of output rows ``first`` to ``first + rows`` as ``(..., K, rows*Wo*N)``."""
    band = backend.array_module(windows).ascontiguousarray(windows[:, :, :, first : first + rows])
    return band.reshape(groups_shape + (-1, rows * band.shape[4] * band.shape[5]))


def _banded_product(weight: Any, windows: Any, bias: Any) -> Any:
    """``weight @ im2col + bias`` (weight ``(..., O, K)``, bias ``(..., O, 1)`` or None) with the
    columns made a band at a time, so that each band is multiplied while it is still in cache."""
    xp = backend.array_module(weight)
    row, bands = _window_bands(windows)
    result = xp.empty(weight.shape[:-1] + (windows.shape[3] * row,), dtype=weight.dtype)

    def multiply(band: tuple[int, int]) -> None:
        first, rows = band
        out = result[..., first * row : (first + rows) * row]
        xp.matmul(weight, _band_columns(windows, first, rows, weight.shape[:-2]), out=out)
        if bias is not None:
            out += bias

    _blas_pool.run_in_groups(multiply, [bands], xp)
    return result


def _banded_weight_grad(windows: Any, grad: Any) -> Any:
    """The weight's gradient ``grad @ im2col^T`` (``grad`` ``(..., O, L*N)``), a band at a time,
    taken as ``(cols @ grad^T)^T`` and the bands' parts summed in band order."""
    xp = backend.array_module(grad)
    row, bands = _window_bands(windows)
    parts: dict[int, Any] = {}

    def multiply(band: tuple[int, int]) -> None:
        first, rows = band
        cols = _band_columns(windows, first, rows, grad.shape[:-2])
        parts[first] = cols @ grad[..., first * row : (first + rows) * row].swapaxes(-1, -2)

    _blas_pool.run_in_groups(multiply, [bands], xp)
    total = parts[bands[0][0]]
    for first, _ in bands[1:]:
        total += parts[first]
    return total.swapaxes(-1, -2)


def _col2im(cols: Any, size: tuple, kernel: tuple, dilation: tuple, padding: tuple, stride: tuple, out: tuple, gemm: bool) -> Any:
    """Sum the windows in ``cols`` (either layout of ``_im2col``) back into an ``(N, C, *size)`` image.

    From gemm columns the image is summed as ``(C, H, W, N)`` and handed back as an NCHW view.
    """
    xp = backend.array_module(cols)
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    if gemm:
        batch = cols.shape[1] // (out[0] * out[1])
        blocks = cols.reshape(-1, kernel[0], kernel[1], out[0], out[1], batch)
        image = xp.zeros((blocks.shape[0],) + padded + (batch,), dtype=cols.dtype)
        sc, sh, sw, sn = image.strides
        strides = (sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1], sn)
    else:
        blocks = cols.reshape(cols.shape[0], -1, kernel[0], kernel[1], out[0], out[1])
        image = xp.zeros(blocks.shape[:2] + padded, dtype=cols.dtype)
        sn, sc, sh, sw = image.strides
        strides = (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1])
    if all(s >= d * (k - 1) + 1 for k, d, s in zip(kernel, dilation, stride, strict=True)):
        # disjoint windows (pools with stride == kernel): one write through a strided view
        xp.lib.stride_tricks.as_strided(image, blocks.shape, strides)[...] = blocks
    elif gemm:
        _add_windows(image, blocks, kernel, dilation, stride, 0)
    else:
        for i, j, (_, rows, columns) in offset_slices(kernel, dilation, stride, out):
            image[..., rows, columns] += blocks[:, :, i, j]
    if gemm:
        return _unpadded_gemm_image(image, size, padding)
    return image[:, :, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]]


def _add_windows(image: Any, blocks: Any, kernel: tuple, dilation: tuple, stride: tuple, first_row: int) -> None:
    """Add gemm-layout windows ``(C, kh, kw, rows, Wo, N)`` of the output rows from ``first_row``
    on into the padded ``(C, H, W, N)`` image they were read from."""
    for i, j, (_, rows, columns) in offset_slices(kernel, dilation, stride, blocks.shape[3:5], first_row):
        image[:, rows, columns] += blocks[:, i, j]


def _unpadded_gemm_image(image: Any, size: tuple, padding: tuple) -> Any:
    """A padded ``(C, H, W, N)`` image without its padding, as an ``(N, C, H, W)`` view."""
    image = image[:, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]]
    return image.transpose(3, 0, 1, 2)


def _folded_product(a: Any, b: Any, size: tuple, kernel: tuple, dilation: tuple, padding: tuple, stride: tuple, out: tuple) -> Any:
    """``_col2im`` of the gemm columns ``a @ b`` (``a`` ``(..., K, M)``, ``b`` ``(..., M, Ho*Wo*N)``),
    made and summed a band of output rows at a time, so that each band is still in cache when it
    is summed rather than written to memory whole and read back.

    Neighbouring bands add into the rows their windows share, so the even bands run first and the
    odd ones after; bands are tall enough that two even (or two odd) ones share no row.
    """
    xp = backend.array_module(b)
    row = out[1] * (b.shape[-1] // (out[0] * out[1]))  # columns per output row: Wo * N
    channels = a.size // a.shape[-1] // (kernel[0] * kernel[1])
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    image = xp.zeros((channels,) + padded + (row // out[1],), dtype=xp.result_type(a, b))
    # band b adds into padded rows up to its last output row * stride + (kernel - 1) * dilation,
    # and band b + 2 starts (rows of band b + 1, plus one) strides after that output row: with
    # bands of at least (kernel - 1) * dilation // stride rows the two share none
    min_rows = (kernel[0] - 1) * dilation[0] // stride[0]
    bands = _row_bands(out[0], image.itemsize * channels * kernel[0] * kernel[1] * row, min_rows)

    def add(band: tuple[int, int]) -> None:
        first, rows = band
        cols = xp.matmul(a, b[..., first * row : (first + rows) * row])
        blocks = cols.reshape(channels, kernel[0], kernel[1], rows, out[1], -1)
        _add_windows(image, blocks, kernel, dilation, stride, first)

    _blas_pool.run_in_groups(add, [bands[0::2], bands[1::2]], xp)
    return _unpadded_gemm_image(image, size, padding)


# =============================================================== unfold and fold


class Unfold(Function):
    @staticmethod
    def forward(ctx, x, kernel, dilation, padding, stride, out, gemm):
        ctx.geometry = x.shape[2:], kernel, dilation, padding, stride, out, gemm
        return _im2col(x._data, kernel, dilation, padding, stride, out, gemm)

    @staticmethod
    def backward(ctx, grad_output):
        return (Fold.apply(grad_output, *ctx.geometry),) + (None,) * 6


class Fold(Function):
    @staticmethod
    def forward(ctx, cols, size, kernel, dilation, padding, stride, out, gemm):
        ctx.geometry = kernel, dilation, padding, stride, out, gemm
        return _col2im(cols._data, size, kernel, dilation, padding, stride, out, gemm)

    @staticmethod
    def backward(ctx, grad_output):
        return (Unfold.apply(grad_output, *ctx.geometry),) + (None,) * 7


class Convolution(Function):
    """``weight @ unfold(x) + bias`` for flattened weights ``(..., O, K)`` and an optional bias
    ``(..., O, 1)``: a convolution as one graph node, in the gemm layout.

    Its input gradient is a ``FoldedProduct`` (the columns' gradient is never made whole), and its
    weight gradient is taken as ``(cols @ grad^T)^T`` rather than ``grad @ cols^T``.
    """

    # NOTE: with two threads OpenBLAS runs grad @ cols^T (an O x K result summed over N*H*W,
    # e.g. 64 x 288 over 65536) about 30 times slower than the transposed orientation

    @staticmethod
    def forward(ctx, x, weight, bias, kernel, dilation, padding, stride, out):
        windows = _gemm_windows(x._data, kernel, dilation, padding, stride, out)
        ctx.save_for_backward(x, weight)
        ctx.geometry = x.shape[2:], kernel, dilation, padding, stride, out
        if ctx.needs_input_grad and ctx.needs_input_grad[1]:
            ctx.windows = windows  # of the padded copy of x: the weight's gradient reads them again
        return _banded_product(weight._data, windows, None if bias is None else bias._data)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        size, *geometry = ctx.geometry
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        x_grad = weight_grad = bias_grad = None
        if needs_weight and is_grad_enabled():  # a graph of the gradient: columns as a function of x
            cols = Unfold.apply(x, *geometry, True).reshape(weight.shape[:-2] + (weight.shape[-1], -1))
            weight_grad = cols.matmul(grad_output.transpose(-1, -2)).transpose(-1, -2)
        elif needs_weight:
            weight_grad = Tensor._make(_banded_weight_grad(ctx.windows, grad_output._data))
        if needs_x:
            x_grad = FoldedProduct.apply(weight.transpose(-1, -2), grad_output, size, *geometry)
        if needs_bias:
            bias_grad = grad_output.sum(-1, keepdim=True)
        return (x_grad, weight_grad, bias_grad) + (None,) * 5


class FoldedProduct(Function):
    """``fold(a @ b)`` for ``a`` ``(..., K, M)`` and ``b`` ``(..., M, L*N)``: gemm columns summed
    into an image as they are made, a band of output rows at a time (``_folded_product``).

    A convolution's input gradient is one (the weight's transpose times the output's gradient),
    and so is a transposed convolution. For 64 images of 32x32, 32 -> 64 channels, 3x3, that keeps
    a 75 MB column matrix from being written to memory and read back: 26-30 -> 14-16 ms.
    """

    @staticmethod
    def forward(ctx, a, b, size, kernel, dilation, padding, stride, out):
        ctx.save_for_backward(a, b)
        ctx.geometry = kernel, dilation, padding, stride, out
        return _folded_product(a._data, b._data, size, kernel, dilation, padding, stride, out)

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        needs_a, needs_b = ctx.needs_input_grad[:2]
        cols = Unfold.apply(grad_output, *ctx.geometry, True).reshape(a.shape[:-1] + (-1,))
        a_grad = cols.matmul(b.transpose(-1, -2)) if needs_a else None
        b_grad = a.transpose(-1, -2).matmul(cols) if needs_b else None
        return (a_grad, b_grad) + (None,) * 6


def _geometry(size: tuple, kernel_size: Any, dilation: Any, padding: Any, stride: Any) -> tuple:
    kernel, dil = pair(kernel_size, "kernel_size"), pair(dilation, "dilation")
    pad, step = pair(padding, "padding"), pair(stride, "stride")
    if min(kernel) <= 0 or min(dil) <= 0 or min(step) <= 0 or min(pad) < 0:
        raise ValueError(
            f"kernel_size, dilation and stride must be positive and padding non-negative, got "
            f"kernel_size={kernel}, dilation={dil}, padding={pad}, stride={step}"
        )
    out = tuple(out_size(size[a], kernel[a], step[a], pad[a], dil[a]) for a in range(2))
    if min(out) <= 0:
        padded = tuple(size[a] + 2 * pad[a] for a in range(2))
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel size: "
            f"({dil[0] * (kernel[0] - 1) + 1} x {dil[1] * (kernel[1] - 1) + 1}). Kernel size can't be "
            "greater than actual input size"
        )
    return kernel, dil, pad, step, out


def unfold(input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Tensor:
    """Sliding windows of a ``(N, C, H, W)`` batch as columns ``(N, C*kh*kw, L)`` (im2col).

    Example:
        >>> unfold(ones(1, 2, 3, 3), 2).shape
        (1, 8, 4)
    """
    if input.ndim != 4:
        raise RuntimeError(f"Input Error: Only 4D input Tensors are supported (got {input.ndim}D)")
    return Unfold.apply(input, *_geometry(input.shape[2:], kernel_size, dilation, padding, stride), False)


def fold(input: Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Tensor:
    """Sum columns ``(N, C*kh*kw, L)`` back into ``(N, C, *output_size)`` (col2im, unfold's adjoint)."""
    if input.ndim != 3:
        raise RuntimeError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported (got {input.ndim}D)")
    size = pair(output_size, "output_size")
    kernel, dil, pad, step, out = _geometry(size, kernel_size, dilation, padding, stride)
    blocks = kernel[0] * kernel[1]
    if input.shape[1] % blocks or input.shape[2] != out[0] * out[1]:
        raise RuntimeError(
            f"Given output_size={size}, kernel_size={kernel}, dilation={dil}, padding={pad}, "
            f"stride={step}, expected input of shape (N, C * {blocks}, {out[0]} * {out[1]}), but got "
            f"{list(input.shape)}"
        )
    return Fold.apply(input, size, kernel, dil, pad, step, out, False)


# =============================================================== convolutions


def _check_conv(name: str, input: Tensor, weight: Tensor, bias: Tensor | None, groups: int, dims: int) -> None:
    if input.ndim not in (dims + 1, dims + 2):
        raise RuntimeError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {name}, but got "
            f"input of size: {list(input.shape)}"
        )
    if weight.ndim != dims + 2:
        raise RuntimeError(f"{name}: expected weight to be {dims + 2}D, but got weight of size {list(weight.shape)}")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise RuntimeError(
            f"Input type ({input.dtype}), weight type ({weight.dtype}) and bias type "
            f"({None if bias is None else bias.dtype}) should be the same"
        )
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")


def _same_padding(kernel: tuple, dilation: tuple, stride: tuple) -> tuple[tuple, tuple]:
    """PyTorch's ``padding='same'``: the total ``d*(k-1)`` split with the extra one on the right."""
    if stride != (1, 1):
        raise ValueError("padding='same' is not supported for strided convolutions")
    total = tuple(d * (k - 1) for k, d in zip(kernel, dilation, strict=True))
    left = tuple(t // 2 for t in total)
    return left, tuple(t - lo for t, lo in zip(total, left, strict=True))


def _conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any, groups: int) -> Tensor:
    """The batched 4-D convolution behind conv1d and conv2d."""
    from dltool.engine.ops.shape import pad as pad_op

    n, c, h, w = x.shape
    o, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
            f"{list(x.shape)} to have {c_per_group * groups} channels, but got {c} channels instead"
        )
    if o % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of size {list(weight.shape)}")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string '{padding}', should be one of ['valid', 'same']")
        left, right = _same_padding((kh, kw), dilation, stride) if padding == "same" else ((0, 0), (0, 0))
        if left != right:  # NOTE: an odd total pads one more on the right, as PyTorch does
            x = pad_op(x, (0, right[1] - left[1], 0, right[0] - left[0]))
            h, w = x.shape[2:]
        padding = left
    kernel, dilation, padding, stride, out = _geometry((h, w), (kh, kw), dilation, padding, stride)
    if groups == 1:
        flat_weight, flat_bias = weight.reshape(o, -1), None if bias is None else bias.reshape(o, 1)
    else:
        flat_weight = weight.reshape(groups, o // groups, -1)
        flat_bias = None if bias is None else bias.reshape(groups, o // groups, 1)
    y = Convolution.apply(x, flat_weight, flat_bias, kernel, dilation, padding, stride, out)
    # NOTE: the result stays in (O, H, W, N) memory order behind an (N, O, H, W) view; copying it
    # to NCHW would cost a pass, the ops after a convolution take any strides, and the next
    # convolution reads this order without a copy
    return y.reshape(o, out[0], out[1], n).permute(3, 0, 1, 2)


def _batched(input: Tensor, dims: int, fn: Any) -> Tensor:
    """Run ``fn`` on a batched input, adding and removing the batch dim for unbatched ones."""
    if input.ndim == dims + 1:
        return fn(input.unsqueeze(0)).squeeze(0)
    return fn(input)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) of ``(N, C, H, W)`` with ``(O, C/groups, kh, kw)``.

    ``padding`` may be an int, a pair, ``'valid'`` or ``'same'`` (stride 1 only), as in PyTorch.
    """
    _check_conv("conv2d", input, weight, bias, groups, 2)
    return _batched(input, 2, lambda x: _conv2d(x, weight, bias, stride, padding, dilation, groups))


def _via_2d(conv: Any, input: Tensor, weight: Tensor, bias: Tensor | None, args: tuple) -> Tensor:
    """A 1-D convolution run as the 2-D ``conv`` over a height of 1."""
    w2 = weight.unsqueeze(2)
    return _batched(input, 1, lambda x: conv(x.unsqueeze(2), w2, bias, *args).squeeze(2))


def as_2d(value: Any, fill: int) -> Any:
    """A 1-D argument (an int or a 1-tuple) as the 2-D one with ``fill`` on a dummy height axis."""
    if isinstance(value, str):
        return value
    value = value[0] if isinstance(value, (tuple, list)) else value
    return (fill, int(value))


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution of ``(N, C, L)`` with ``(O, C/groups, k)``: a 2-D one over a height of 1."""
    _check_conv("conv1d", input, weight, bias, groups, 1)
    args = (as_2d(stride, 1), as_2d(padding, 0), as_2d(dilation, 1), groups)
    return _via_2d(_conv2d, input, weight, bias, args)


def _conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, output_padding: Any, groups: int, dilation: Any) -> Tensor:
    n, c, h, w = x.shape
    if c != weight.shape[0]:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected input {list(x.shape)} "
            f"to have {weight.shape[0]} channels, but got {c} channels instead"
        )
    o = weight.shape[1] * groups
    kernel = weight.shape[2:]
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    dilation, extra = pair(dilation, "dilation"), pair(output_padding, "output_padding")
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation, strict=True)):
        raise RuntimeError(
            f"output padding must be smaller than either stride or dilation, but got "
            f"output_padding={extra}, stride={stride}, dilation={dilation}"
        )
    size = tuple((n_in - 1) * s - 2 * p + d * (k - 1) + e + 1 for n_in, s, p, d, k, e in zip((h, w), stride, padding, dilation, kernel, extra, strict=True))
    # the columns of the transposed conv are the weight's transpose times the input, folded
    weight_t = weight.reshape(groups, c // groups, -1).transpose(1, 2)
    columns = x.permute(1, 2, 3, 0).reshape(groups, c // groups, h * w * n)
    y = FoldedProduct.apply(weight_t, columns, size, kernel, dilation, padding, stride, (h, w))
    return y if bias is None else y + bias.reshape(1, o, 1, 1)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Transposed 2-D convolution (the gradient of conv2d) with weight ``(C, O/groups, kh, kw)``."""
    _check_conv("conv_transpose2d", input, weight, bias, groups, 2)
    args = (stride, padding, output_padding, groups, dilation)
    return _batched(input, 2, lambda x: _conv_transpose2d(x, weight, bias, *args))


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Transposed 1-D convolution, a 2-D one over a height of 1."""
    _check_conv("conv_transpose1d", input, weight, bias, groups, 1)
    args = (as_2d(stride, 1), as_2d(padding, 0), as_2d(output_padding, 0), groups, as_2d(dilation, 1))
    return _via_2d(_conv_transpose2d, input, weight, bias, args)


# =============================================================== padding modes


def _pad_positions(size: int, before: int, after: int, mode: str) -> Any:
    """Source index of every padded position along one axis for reflect/replicate/circular."""
    positions = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    limit = size - 1 if mode == "reflect" else size
    if before > limit or after > limit:
        raise RuntimeError(
            f"Padding size should be less than{' or equal to' if mode == 'circular' else ''} the "
            f"corresponding input dimension, but got: padding ({before}, {after}) for a dimension of size {size}"
        )
    if mode == "circular":
        return positions % size
    period = 2 * (size - 1)
    folded = np.abs(positions) % period if period else np.zeros_like(positions)
    return np.where(folded >= size, period - folded, folded)


def pad_by_index(input: Tensor, pad: Any, mode: str) -> Tensor:
    """``F.pad`` for ``'reflect'``, ``'replicate'`` and ``'circular'``: a gather along each padded dim."""
    from dltool.engine.ops.index import index_select

    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"Padding length must be divisible by 2 and at most twice the input's dims, got {len(pad)}")
    if any(p < 0 for p in pad):
        raise NotImplementedError(f"negative padding is not supported for mode '{mode}'")
    x = input
    for i in range(len(pad) // 2):
        dim = input.ndim - 1 - i
        before, after = int(pad[2 * i]), int(pad[2 * i + 1])
        if before or after:
            positions = _pad_positions(input.shape[dim], before, after, mode)
            x = index_select(x, dim, Tensor._make(backend.move(positions, input.device)))
    return x
