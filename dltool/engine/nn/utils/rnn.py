"""Variable-length sequences for the recurrent layers: ``PackedSequence`` and its helpers.

A packed batch keeps only the real time steps: ``data`` holds, step after step, the rows of the
sequences still running (longest first), and ``batch_sizes[t]`` says how many there are at step t.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from dltool.engine import backend, dtypes
from dltool.engine.ops.index import IndexAdd
from dltool.engine.ops.shape import pad, stack
from dltool.engine.tensor import Tensor


class PackedSequence(NamedTuple):
    """Packed time steps of sequences of different lengths (as ``torch.nn.utils.rnn.PackedSequence``)."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


def _lengths(lengths: Any) -> np.ndarray:
    values = np.asarray(backend.move(lengths._data, backend.CPU) if isinstance(lengths, Tensor) else lengths, dtype=np.int64)
    if values.ndim != 1:
        raise ValueError(f"lengths must be a 1-D sequence, got shape {values.shape}")
    if (values <= 0).any():
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0")
    return values


def _index(values: np.ndarray, like: Tensor) -> Tensor:
    return Tensor._make(backend.move(values.astype(dtypes.int64), like.device))


def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded ``(T, N, *)`` batch (``(N, T, *)`` with ``batch_first``) of the given lengths."""
    lengths = _lengths(lengths)
    sorted_indices = unsorted_indices = None
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
                "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement "
                "if you do not need ONNX exportability."
            )
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices, unsorted_indices = _index(order, input), _index(np.argsort(order), input)
        lengths = lengths[order]
        input = input.index_select(0 if batch_first else 1, sorted_indices)
    steps = input.transpose(0, 1) if batch_first else input
    if lengths[0] > steps.shape[0]:
        raise RuntimeError(f"the longest length ({lengths[0]}) exceeds the {steps.shape[0]} time steps of the input")
    running = np.arange(lengths[0])[:, None] < lengths[None, :]
    batch_sizes = Tensor._make(running.sum(axis=1).astype(dtypes.int64))
    data = steps[: lengths[0]][Tensor._make(backend.move(running, input.device))]
    return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0, total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo ``pack_padded_sequence``: the padded batch (in the original order) and the lengths."""
    data, batch_sizes, _, unsorted_indices = sequence
    sizes = backend.move(batch_sizes._data, backend.CPU)
    steps, batch = len(sizes), int(sizes[0])
    length = steps if total_length is None else total_length
    if length < steps:
        raise ValueError(
            f"Expected total_length to be at least the length of the longest sequence in input, but got "
            f"total_length={total_length} and max sequence length being {steps}"
        )
    lengths = (sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    running = np.arange(length)[:, None] < lengths[None, :]
    xp = data._xp()
    key = tuple(xp.asarray(k) for k in np.nonzero(running))
    padded = IndexAdd.apply(data, (length, batch) + data.shape[1:], (key,), True)
    if padding_value:
        fill = (~running).astype(data.dtype).reshape((length, batch) + (1,) * (data.ndim - 1)) * padding_value
        padded = padded + Tensor._make(backend.move(fill, data.device))
    if unsorted_indices is not None:
        padded = padded.index_select(1, unsorted_indices)
        lengths = lengths[backend.move(unsorted_indices._data, backend.CPU)]
    return (padded.transpose(0, 1) if batch_first else padded), Tensor._make(lengths.astype(dtypes.int64))


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right") -> Tensor:
    """Stack sequences ``(L_i, *)`` into ``(max L, N, *)`` (``(N, max L, *)`` with ``batch_first``)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        extra = longest - s.shape[0]
        widths = [0, 0] * (s.ndim - 1) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, widths, value=padding_value))
    return stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences ``(L_i, *)`` (longest first unless ``enforce_sorted=False``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)
