"""Shape ops: reshape and views, transposes, expand/repeat/tile, flip/roll/rot90, cat/stack/split, pad."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from dltool.engine import dtypes
from dltool.engine.autograd.function import Function
from dltool.engine.ops._boundary import numpy_aliases
from dltool.engine.ops._utils import unbroadcast
from dltool.engine.ops.elementwise import cast, clone
from dltool.engine.tensor import OVERLAP_MESSAGE, Tensor, _wrap_dim


def _sizes(args: tuple) -> tuple:
    """``f(2, 3)`` and ``f((2, 3))`` alike, as PyTorch accepts both."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


# =============================================================== reshape and views


class Reshape(Function):
    _is_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x._data.reshape(shape)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.reshape(ctx.shape), None

    @staticmethod
    def put_back(base, value, shape):
        return reshape(value, base.shape)


def _infer_shape(shape: tuple, numel: int) -> tuple:
    shape = tuple(int(n) for n in shape)
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for n in shape:
        if n != -1:
            known *= n
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if n == -1 else n for n in shape)
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def reshape(input: Tensor, *shape: Any) -> Tensor:
    """The same elements in a new shape (one dim may be -1)."""
    shape = _infer_shape(_sizes(shape), input._data.size)
    if shape == input.shape:
        return input
    if not input._data.flags.c_contiguous:  # no view possible: reshape a copy, as PyTorch does
        input = clone(input)
    return Reshape.apply(input, shape)


def view(input: Tensor, *shape: Any) -> Tensor:
    """Like ``reshape``; ``view(dtype)`` is not supported."""
    return reshape(input, *shape)


def view_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, other.shape)


def reshape_as(input: Tensor, other: Tensor) -> Tensor:
    return reshape(input, other.shape)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if input.ndim == 0:
        return reshape(input, (1,))
    start, end = _wrap_dim(start_dim, input.ndim), _wrap_dim(end_dim, input.ndim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = input.shape
    return reshape(input, shape[:start] + (-1,) + shape[end + 1 :]) if shape else input


@numpy_aliases
def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    dim = _wrap_dim(dim, input.ndim)
    return reshape(input, input.shape[:dim] + tuple(sizes) + input.shape[dim + 1 :])


@numpy_aliases
def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Drop size-1 dims (all, or those in ``dim``; others in ``dim`` are kept, as in PyTorch)."""
    if dim is None:
        dims = {i for i, n in enumerate(input.shape) if n == 1}
    else:
        wanted = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {_wrap_dim(d, input.ndim) for d in wanted if input.ndim}
        dims = {d for d in dims if input.shape[d] == 1}
    return reshape(input, tuple(n for i, n in enumerate(input.shape) if i not in dims))


@numpy_aliases
def unsqueeze(input: Tensor, dim: int) -> Tensor:
    dim = _wrap_dim(dim, input.ndim + 1)
    return reshape(input, input.shape[:dim] + (1,) + input.shape[dim:])


class Permute(Function):
    _is_view = True

    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x._data.transpose(dims)

    @staticmethod
    def backward(ctx, grad_output):
        return permute(grad_output, _inverse(ctx.dims)), None

    @staticmethod
    def put_back(base, value, dims):
        return permute(value, _inverse(dims))


def _inverse(dims: tuple) -> tuple:
    inverse = [0] * len(dims)
    for i, d in enumerate(dims):
        inverse[d] = i
    return tuple(inverse)


def permute(input: Tensor, *dims: Any) -> Tensor:
    dims = tuple(_wrap_dim(d, input.ndim) for d in _sizes(dims))
    if sorted(dims) != list(range(input.ndim)):
        raise RuntimeError(f"permute(): dims {list(dims)} are not a permutation of {input.ndim} dims")
    return Permute.apply(input, dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    if input.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return input
    dims = list(range(input.ndim))
    d0, d1 = _wrap_dim(dim0, input.ndim), _wrap_dim(dim1, input.ndim)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(input, tuple(dims))


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    """Transpose of a matrix; vectors come back unchanged."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return transpose(input, 0, 1) if input.ndim == 2 else input


def movedim(input: Tensor, source: int, destination: int) -> Tensor:
    dims = list(range(input.ndim))
    src = dims.pop(_wrap_dim(source, input.ndim))
    dims.insert(_wrap_dim(destination, input.ndim), src)
    return permute(input, tuple(dims))


# =============================================================== expand, repeat, flip


class Expand(Function):
    _is_view = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x._xp().broadcast_to(x._data, shape)

    @staticmethod
    def backward(ctx, grad_output):
        return unbroadcast(grad_output, ctx.shape), None

    @staticmethod
    def put_back(base, value, shape):
        raise RuntimeError(OVERLAP_MESSAGE)


def expand(input: Tensor, *sizes: Any) -> Tensor:
    """A broadcast view to ``sizes`` (-1 keeps a dim); no memory is copied."""
    sizes = _sizes(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
            f"number of dimensions in the tensor ({input.ndim})"
        )
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
    if shape == input.shape:
        return input
    for i, n in enumerate(input.shape):
        if n != 1 and n != shape[lead + i]:
            raise RuntimeError(
                f"The expanded size of the tensor ({shape[lead + i]}) must match the existing size "
                f"({n}) at non-singleton dimension {lead + i}.  Target sizes: {list(sizes)}.  "
                f"Tensor sizes: {list(input.shape)}"
            )
    return Expand.apply(input, shape)


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    return expand(input, other.shape)


def broadcast_to(input: Tensor, shape: Sequence[int]) -> Tensor:
    return expand(input, tuple(shape))


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, repeats):
        ctx.shape = x.shape
        ctx.repeats = repeats
        return x._xp().tile(x._data, repeats)

    @staticmethod
    def backward(ctx, grad_output):
        padded = (1,) * (len(ctx.repeats) - len(ctx.shape)) + ctx.shape
        interleaved = []
        for r, n in zip(ctx.repeats, padded, strict=True):
            interleaved += [r, n]
        grad = grad_output.reshape(tuple(interleaved))
        grad = grad.sum(dim=tuple(range(0, len(interleaved), 2)))
        return grad.reshape(ctx.shape), None


def repeat(input: Tensor, *repeats: Any) -> Tensor:
    """Tile the tensor ``repeats`` times along each dim."""
    repeats = _sizes(repeats)
    if len(repeats) < input.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"
        )
    return Repeat.apply(input, repeats)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x._xp().flip(x._data, dims)

    @staticmethod
    def backward(ctx, grad_output):
        return flip(grad_output, ctx.dims), None


def flip(input: Tensor, dims: Any) -> Tensor:
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    return Flip.apply(input, tuple(_wrap_dim(d, input.ndim) for d in dims))


def flipud(input: Tensor) -> Tensor:
    """``input`` flipped along dim 0 (upside down)."""
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, 0)


def fliplr(input: Tensor) -> Tensor:
    """``input`` flipped along dim 1 (left to right)."""
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, 1)


def tile(input: Tensor, *dims: Any) -> Tensor:
    """``repeat`` with ``dims`` padded by leading ones when it is shorter than ``input``'s dims."""
    dims = _sizes(dims)
    return repeat(input, (1,) * (input.ndim - len(dims)) + dims)


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return x._xp().roll(x._data, shifts, dims)

    @staticmethod
    def backward(ctx, grad_output):
        return Roll.apply(grad_output, tuple(-s for s in ctx.shifts), ctx.dims), None, None


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """Shift elements along ``dims`` cyclically; without ``dims``, along the flattened tensor.

    Example:
        >>> roll(tensor([1, 2, 3]), 1).tolist()
        [3, 1, 2]
    """
    shifts = tuple(int(s) for s in (shifts if isinstance(shifts, (tuple, list)) else (shifts,)))
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return reshape(Roll.apply(reshape(input, -1), shifts, (0,)), input.shape)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if not shifts:
        raise RuntimeError("`shifts` required")
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    return Roll.apply(input, shifts, tuple(_wrap_dim(d, input.ndim) for d in dims))


def rot90(input: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
    """Rotate by 90 degrees ``k`` times in the plane of ``dims``, from the first dim towards the second."""
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    first, second = _wrap_dim(dims[0], input.ndim), _wrap_dim(dims[1], input.ndim)
    if first == second:
        raise RuntimeError(
            f"expected rotation dims to be different, but got dim0 = {dims[0]} and dim1 = {dims[1]}"
        )
    turns = k % 4
    if turns == 1:
        return transpose(flip(input, second), first, second)
    if turns == 2:
        return flip(input, (first, second))
    if turns == 3:
        return transpose(flip(input, first), first, second)
    return clone(input)


# =============================================================== joining and splitting


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim = dim
        ctx.sizes = [x.shape[dim] for x in xs]
        return xs[0]._xp().concatenate([x._data for x in xs], axis=dim)

    @staticmethod
    def backward(ctx, grad_output):
        return (None, *split(grad_output, ctx.sizes, ctx.dim))


@numpy_aliases
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing ``dim``; all other dims must match."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    dim = _wrap_dim(dim, tensors[0].ndim)
    reference = tensors[0].shape
    for i, x in enumerate(tensors[1:], 1):
        if (
            x.ndim != len(reference)
            or x.shape[:dim] + x.shape[dim + 1 :] != reference[:dim] + reference[dim + 1 :]
        ):
            raise RuntimeError(
                f"Sizes of tensors must match except in dimension {dim}. Expected {list(reference)} "
                f"but got {list(x.shape)} for tensor number {i} in the list."
            )
    target = tensors[0].dtype
    for x in tensors[1:]:
        target = dtypes.result_type(target, x.dtype, False, False)
    return Cat.apply(dim, *(cast(x, target) for x in tensors))


concat = concatenate = cat


@numpy_aliases
def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, x in enumerate(tensors[1:], 1):
        if x.shape != tensors[0].shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(tensors[0].shape)} at "
                f"entry 0 and {list(x.shape)} at entry {i}"
            )
    dim = _wrap_dim(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(x, dim) for x in tensors], dim)


@numpy_aliases
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    dim = _wrap_dim(dim, input.ndim)
    key = (slice(None),) * dim + (slice(start, start + length),)
    return input[key]


@numpy_aliases
def split(tensor: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` (the last may be smaller) or of the listed section sizes."""
    dim = _wrap_dim(dim, tensor.ndim)
    length = tensor.shape[dim]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise RuntimeError(f"split_size must be positive, got {step}")
        sections = [builtins.min(step, length - start) for start in range(0, length, step)] or [0]
    else:
        sections = list(split_size_or_sections)
        if builtins.sum(sections) != length:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {length} (input tensor's "
                f"size at dimension {dim}), but got split_sizes={sections}"
            )
    pieces, start = [], 0
    for size in sections:
        pieces.append(narrow(tensor, dim, start, size))
        start += size
    return tuple(pieces)


@numpy_aliases
def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    length = input.shape[_wrap_dim(dim, input.ndim)]
    return split(input, builtins.max(-(-length // chunks), 1), dim)


@numpy_aliases
def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    dim = _wrap_dim(dim, input.ndim)
    return tuple(input[(slice(None),) * dim + (i,)] for i in range(input.shape[dim]))


class Pad(Function):
    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.keep = tuple(slice(before, before + n) for (before, _), n in zip(widths, x.shape, strict=True))
        return x._xp().pad(x._data, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output[ctx.keep], None, None


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last dims by ``(left, right, top, bottom, ...)``, as ``torch.nn.functional.pad``.

    Only constant padding with non-negative widths is supported.
    """
    if mode != "constant":
        raise NotImplementedError(f"pad mode '{mode}' is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(
            f"Padding length must be divisible by 2 and at most twice the input's dims, got {len(pad)}"
        )
    if builtins.any(p < 0 for p in pad):
        raise NotImplementedError("negative padding is not supported")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        widths[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return Pad.apply(input, tuple(widths), 0 if value is None else value)
