"""A text file as a language-modelling dataset: characters or words, cut into training windows."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dltool.engine import from_numpy
from dltool.engine.tensor import Tensor
from dltool.engine.utils.data import BatchedSamples, Dataset

_EOS, _UNK = "<eos>", "<unk>"
_LEVELS = ("char", "word")
_SPLITS = ("train", "val", "test")


class Vocabulary:
    """Tokens by id, and the mapping between text and token ids at one ``level`` (char or word).

    ``dltool generate`` rebuilds it from a checkpoint's stored vocabulary, without the text file.

    Example:
        >>> Vocabulary(["a", "b", "c"], "char").encode("cab")
        [2, 0, 1]
    """

    def __init__(self, tokens: list[str], level: str) -> None:
        if level not in _LEVELS:
            raise ValueError(f"level must be one of {_LEVELS}, got {level!r}")
        self.tokens, self.level = list(tokens), level
        if level == "char":
            points = np.array([ord(token) for token in self.tokens], dtype=np.uint32)
            self._order = np.argsort(points, kind="stable")
            self._points = points[self._order]
        else:
            self._index = {word: i for i, word in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``; at word level each newline is an ``<eos>``.

        Raises:
            ValueError: a character (char level) or a word (word level, without ``<unk>`` in
                the vocabulary) that the vocabulary lacks.
        """
        ids = self.char_ids(text) if self.level == "char" else self.word_ids(_words(text))
        return ids.tolist()

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of token ids; at word level words are joined by spaces and ``<eos>`` ends a line.

        Raises:
            ValueError: an id outside the vocabulary.
        """
        ids = ids.tolist() if isinstance(ids, Tensor) else [int(i) for i in ids]
        bad = next((i for i in ids if not 0 <= i < len(self.tokens)), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is out of range for a vocabulary of {len(self.tokens)}")
        tokens = [self.tokens[i] for i in ids]
        if self.level == "char":
            return "".join(tokens)
        pieces: list[str] = []
        for token in tokens:
            if token == _EOS:
                pieces.append("\n")
            else:
                pieces.append(token if not pieces or pieces[-1] == "\n" else " " + token)
        return "".join(pieces)

    def char_ids(self, text: str) -> np.ndarray:
        codes = _code_points(text)
        found = np.minimum(np.searchsorted(self._points, codes), max(len(self._points) - 1, 0))
        unknown = np.flatnonzero(self._points[found] != codes) if len(self._points) else np.arange(len(codes))
        if unknown.size:
            raise ValueError(f"character {chr(codes[unknown[0]])!r} is not in the vocabulary")
        return self._order[found].astype(np.int64)

    def word_ids(self, words: list[str]) -> np.ndarray:
        unk = self._index.get(_UNK)
        if unk is None:
            unknown = next((word for word in words if word not in self._index), None)
            if unknown is not None:
                raise ValueError(f"word {unknown!r} is not in the vocabulary, which has no <unk>")
        return np.array([self._index.get(word, unk) for word in words], dtype=np.int64)


class TextCorpus(Dataset):
    """One UTF-8 text file, tokenized and cut into ``(input, target)`` windows for language modelling.

    Tokens are characters (``level="char"``) or words (``level="word"``). Words are split as in
    PyTorch's word_language_model example: each line's whitespace-separated words, then an
    ``<eos>`` token for its end (the last line gets one too). Line endings are read as ``\\n``
    whatever the file uses (``\\r\\n``, ``\\r``), as Python's text mode reads them.

    The vocabulary comes from the whole file, so both splits share it: characters in code-point
    order, words in order of first appearance. ``max_vocab`` (word level only: a character
    vocabulary is small and has no spelling for an unknown character) keeps the
    ``max_vocab - 1`` most frequent words, ties going to the earlier one, and maps the others to
    ``<unk>``, which is the last entry unless the file already uses it.

    Splits follow char-rnn and nanoGPT: the first ``int(n * (1 - val_fraction))`` tokens are
    ``"train"``, the rest ``"val"``. The corpus has no third split: ``"test"`` is ``"val"``.

    A sample is ``(input, target)``, two int64 tensors of shape ``(seq_len,)``, the target being
    the input shifted by one token. With ``streams=None`` the windows are consecutive and do not
    overlap (``(n - 1) // seq_len`` of them), to be shuffled by the loader. With ``streams=B``
    the split is cut into ``B`` equally long contiguous streams (as ``batchify`` in PyTorch's
    word_language_model example) and sample ``k * B + j`` is window ``k`` of stream ``j``: a
    ``DataLoader`` with ``batch_size=B`` and ``shuffle=False`` then yields batches whose row ``j``
    continues row ``j`` of the batch before, so a recurrent model can carry its state across
    batches (truncated backpropagation through time). Tokens that do not fill a window are dropped.

    Args:
        path: the text file, UTF-8.
        split: ``"train"``, ``"val"``, or ``"test"`` (the same as ``"val"``).
        level: ``"char"`` or ``"word"``.
        seq_len: tokens per window.
        streams: the number of parallel streams (the batch size), or None for shuffled windows.
        val_fraction: the share of the tokens, at the end of the file, that forms ``"val"``.
        max_vocab: the largest vocabulary, ``<unk>`` included (word level), or None for all words.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: the file is empty or not UTF-8, the split is too short for one window, or an
            argument is out of range; the message names the file or the argument.

    Example:
        >>> _ = Path("hamlet.txt").write_text("HAMLET, Prince of Denmark. " * 4)
        >>> corpus = TextCorpus("hamlet.txt", seq_len=8)
        >>> x, y = corpus[0]
        >>> corpus.decode(x), corpus.decode(y), len(corpus.vocab)
        ('HAMLET, ', 'AMLET, P', 21)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        level: str = "char",
        seq_len: int = 100,
        streams: int | None = None,
        val_fraction: float = 0.1,
        max_vocab: int | None = None,
    ) -> None:
        _check_arguments(split, level, seq_len, streams, val_fraction, max_vocab)
        self.path = Path(path).expanduser()
        self.split, self.level, self.seq_len, self.streams = split, level, seq_len, streams
        text = _read_text(self.path)
        if level == "char":
            self.vocabulary = Vocabulary([chr(point) for point in np.unique(_code_points(text))], level)
            ids = self.vocabulary.char_ids(text)
        else:
            words = _words(text if text.endswith("\n") else text + "\n")
            self.vocabulary = Vocabulary(_word_vocab(words, max_vocab), level)
            ids = self.vocabulary.word_ids(words)
        self.vocab = self.vocabulary.tokens
        boundary = int(len(ids) * (1 - val_fraction))
        self.data = from_numpy(ids[:boundary] if split == "train" else ids[boundary:])
        self._starts = self._window_starts(len(self.data))

    @property
    def classes(self) -> list[str]:
        """The vocabulary, index to token: what a classifier's outputs stand for."""
        return self.vocab

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` (``Vocabulary.encode``)."""
        return self.vocabulary.encode(text)

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of token ids (``Vocabulary.decode``)."""
        return self.vocabulary.decode(ids)

    def _window_starts(self, n: int) -> np.ndarray:
        """The offset of each sample's first token in the split, in sample order."""
        streams = self.streams or 1
        stream_len = n // streams
        count = max(stream_len - 1, 0) // self.seq_len
        if count < 1:
            layout = "" if self.streams is None else f" in each of {streams} streams"
            raise ValueError(
                f"{self.path}: the {self.split!r} split holds {n} tokens, too few for one window of "
                f"seq_len={self.seq_len} plus a target token{layout} (needs {streams * (self.seq_len + 1)})"
            )
        windows = np.arange(count, dtype=np.int64) * self.seq_len
        # sample k * streams + j is window k of stream j, so a batch of `streams` rows is one step in time
        stream_offsets = np.arange(streams, dtype=np.int64) * stream_len
        return (windows[:, None] + stream_offsets[None, :]).reshape(-1)

    def _windows(self, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        starts = self._starts[np.asarray(indices, dtype=np.int64)]
        window = self.data.numpy()[starts[:, None] + np.arange(self.seq_len + 1)]
        return np.ascontiguousarray(window[:, :-1]), np.ascontiguousarray(window[:, 1:])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        inputs, targets = self._windows([index])
        return from_numpy(inputs[0]), from_numpy(targets[0])

    def __getitems__(self, indices: list[int]) -> BatchedSamples:
        """A batch in one step: each window cut by one fancy index."""
        inputs, targets = self._windows(indices)
        return BatchedSamples([from_numpy(inputs), from_numpy(targets)])

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        layout = "shuffled windows" if self.streams is None else f"{self.streams} streams"
        return (
            f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
            f"    File: {self.path}\n    Split: {self.split}\n    Level: {self.level}, "
            f"vocabulary of {len(self.vocab)}\n    Windows: {self.seq_len} tokens, {layout}"
        )


def _check_arguments(
    split: str, level: str, seq_len: int, streams: int | None, val_fraction: float, max_vocab: int | None
) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    if level not in _LEVELS:
        raise ValueError(f"level must be 'char' or 'word', got {level!r}")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if streams is not None and (isinstance(streams, bool) or not isinstance(streams, int) or streams < 1):
        raise ValueError(f"streams must be a positive integer or None, got {streams!r}")
    if not 0 <= val_fraction <= 1:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    if max_vocab is not None and level == "char":
        raise ValueError("max_vocab applies to level='word' only: a character vocabulary is never cut")
    if max_vocab is not None and (
        isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 2
    ):
        raise ValueError(
            f"max_vocab must be an integer >= 2 (one word plus <unk>) or None, got {max_vocab!r}"
        )


def _read_text(path: Path) -> str:
    """The file's text with ``\\n`` line endings; a missing, empty or non-UTF-8 file is an error naming it."""
    if not path.exists():
        raise FileNotFoundError(f"text corpus not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; a text corpus is one UTF-8 text file")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"{path} is empty; a text corpus needs some text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text: byte 0x{raw[error.start]:02x} at offset {error.start} ({error.reason})"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _words(text: str) -> list[str]:
    """The whitespace-separated words of ``text``, with ``<eos>`` in place of each newline."""
    return [token for line in text.split("\n") for token in (*line.split(), _EOS)][:-1]


def _word_vocab(words: list[str], max_vocab: int | None) -> list[str]:
    """The distinct words by first appearance; past ``max_vocab``, the most frequent plus ``<unk>``."""
    counts = Counter(words)
    if max_vocab is None or len(counts) <= max_vocab:
        return list(counts)
    ranked = (word for word, _ in counts.most_common() if word != _UNK)
    kept = set(islice(ranked, max_vocab - 1)) | {_UNK}
    return [word for word in counts if word in kept] + ([] if _UNK in counts else [_UNK])
