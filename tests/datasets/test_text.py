"""TextCorpus: splits, windows and streams, char and word vocabularies, encode/decode, bad files."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.datasets import TextCorpus
from dltool.engine.utils.data import BatchedSamples, DataLoader

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(20))  # 1,000+ chars


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def write(tmp_path, content, name="text.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_char_vocab_is_sorted_and_splits_cut_at_the_fraction(corpus_file):
    train = TextCorpus(corpus_file, "train", seq_len=10, val_fraction=0.25)
    val = TextCorpus(corpus_file, "val", seq_len=10, val_fraction=0.25)
    assert train.vocab == sorted(set(TEXT)) and train.classes == train.vocab
    boundary = int(len(TEXT) * 0.75)
    assert len(train.data) == boundary and len(val.data) == len(TEXT) - boundary
    assert train.decode(train.data) == TEXT[:boundary] and val.decode(val.data) == TEXT[boundary:]
    assert train.data.dtype == dl.int64
    assert len(train) == (boundary - 1) // 10 and len(val) == (len(TEXT) - boundary - 1) // 10


def test_test_split_is_the_val_split(corpus_file):
    val, test = (TextCorpus(corpus_file, split, seq_len=7) for split in ("val", "test"))
    np.testing.assert_array_equal(val.data.numpy(), test.data.numpy())
    assert len(val) == len(test)


def test_windows_do_not_overlap_and_targets_shift_by_one(corpus_file):
    ds = TextCorpus(corpus_file, seq_len=12)
    data = ds.data.numpy()
    for i in (0, 1, len(ds) - 1):
        x, y = ds[i]
        assert x.shape == (12,) and y.shape == (12,) and x.dtype == dl.int64 and y.dtype == dl.int64
        np.testing.assert_array_equal(x.numpy(), data[i * 12 : (i + 1) * 12])
        np.testing.assert_array_equal(y.numpy(), data[i * 12 + 1 : (i + 1) * 12 + 1])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_batch_fetch_equals_item_by_item(corpus_file):
    ds = TextCorpus(corpus_file, seq_len=5, streams=3)
    indices = [4, 0, len(ds) - 1, 4]
    batch = ds.__getitems__(indices)
    assert isinstance(batch, BatchedSamples)
    inputs, targets = batch.collated
    assert inputs.shape == (4, 5) and targets.shape == (4, 5)
    for row, i in enumerate(indices):
        x, y = ds[i]
        np.testing.assert_array_equal(inputs.numpy()[row], x.numpy())
        np.testing.assert_array_equal(targets.numpy()[row], y.numpy())


@pytest.mark.parametrize("streams,seq_len", [(4, 9), (3, 50), (1, 16)])
def test_streams_continue_row_by_row_across_batches(corpus_file, streams, seq_len):
    ds = TextCorpus(corpus_file, seq_len=seq_len, streams=streams)
    data = ds.data.numpy()
    stream_len = len(data) // streams
    assert len(ds) == streams * ((stream_len - 1) // seq_len)
    rows = data[: streams * stream_len].reshape(streams, stream_len)  # batchify: stream j is row j
    batches = list(DataLoader(ds, batch_size=streams, shuffle=False))
    assert len(batches) == len(ds) // streams
    for k, (x, y) in enumerate(batches):
        assert x.shape == (streams, seq_len)
        np.testing.assert_array_equal(x.numpy(), rows[:, k * seq_len : (k + 1) * seq_len])
        np.testing.assert_array_equal(y.numpy(), rows[:, k * seq_len + 1 : (k + 1) * seq_len + 1])
        if k:  # row j resumes with the token that followed row j of the batch before
            np.testing.assert_array_equal(x.numpy()[:, 0], batches[k - 1][1].numpy()[:, -1])


def test_word_level_ends_each_line_with_eos(tmp_path):
    path = write(tmp_path, "the cat  sat\r\non the\n\nmat")  # CRLF, a blank line, no final newline
    ds = TextCorpus(path, level="word", seq_len=2, val_fraction=0.0)
    assert ds.vocab == ["the", "cat", "sat", "<eos>", "on", "mat"]
    words = [ds.vocab[i] for i in ds.data.tolist()]
    assert words == ["the", "cat", "sat", "<eos>", "on", "the", "<eos>", "<eos>", "mat", "<eos>"]
    assert ds.decode(ds.data) == "the cat sat\non the\n\nmat\n"
    assert ds.encode("on the mat\ncat") == [4, 0, 5, 3, 1]


def test_max_vocab_keeps_the_most_frequent_words(tmp_path):
    path = write(tmp_path, "a b c b c d\nc e b\n")  # b: 3, c: 3, <eos>: 2, then a, d, e once each
    ds = TextCorpus(path, level="word", seq_len=2, val_fraction=0.0, max_vocab=4)
    assert ds.vocab == ["b", "c", "<eos>", "<unk>"]
    assert ds.decode(ds.data) == "<unk> b c b c <unk>\nc <unk> b\n"
    assert ds.encode("b never") == [0, 3]
    ties = TextCorpus(path, level="word", seq_len=2, val_fraction=0.0, max_vocab=5)
    assert ties.vocab == ["a", "b", "c", "<eos>", "<unk>"]  # of a, d and e (once each), a comes first
    full = TextCorpus(path, level="word", seq_len=2, val_fraction=0.0, max_vocab=6)
    assert full.vocab == ["a", "b", "c", "d", "<eos>", "e"]  # nothing dropped, no <unk>


def test_a_unk_in_the_text_is_where_dropped_words_go(tmp_path):
    path = write(tmp_path, "x <unk> y y z z\n")
    ds = TextCorpus(path, level="word", seq_len=2, val_fraction=0.0, max_vocab=3)
    assert ds.vocab == ["<unk>", "y", "z"]
    assert ds.decode(ds.data) == "<unk> <unk> y y z z <unk>"


def test_vocab_comes_from_the_whole_file(tmp_path):
    path = write(tmp_path, "ab" * 8 + "a" + "xyz")  # 20 characters, the last 3 in val only
    train, val = (TextCorpus(path, split, seq_len=2, val_fraction=0.15) for split in ("train", "val"))
    assert train.vocab == val.vocab == ["a", "b", "x", "y", "z"]
    assert val.decode(val.data) == "xyz"


@pytest.mark.parametrize("level,text", [("char", "héllo, wörld ✓\n"), ("word", "hello there\nworld\n")])
def test_encode_decode_round_trip(tmp_path, level, text):
    ds = TextCorpus(write(tmp_path, text * 4), level=level, seq_len=2, val_fraction=0.0)
    ids = ds.encode(text)
    assert all(isinstance(i, int) for i in ids)
    assert ds.decode(ids) == text and ds.decode(dl.tensor(ids)) == text


def test_encode_names_what_the_vocabulary_lacks(tmp_path):
    chars = TextCorpus(write(tmp_path, "abcabc"), seq_len=2, val_fraction=0.0)
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary"):
        chars.encode("abz")
    words = TextCorpus(write(tmp_path, "a b\n", "words.txt"), level="word", seq_len=2, val_fraction=0.0)
    with pytest.raises(
        ValueError, match="word 'c' is not in the vocabulary, which has no <unk>"
    ):
        words.encode("a c")
    with pytest.raises(ValueError, match="token id 3 is out of range for a vocabulary of 3"):
        chars.decode([0, 3])


def test_real_shakespeare(data_root):
    path = data_root / "shakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip(f"no {path}")
    train, val = (TextCorpus(path, split) for split in ("train", "val"))
    assert len(train.vocab) == 80 and train.vocab == val.vocab
    assert (len(train.data), len(val.data)) == (1_451_205, 161_245)  # 90% / 10% of 1,612,450
    assert len(train) == 14_512


def _error(tmp_path, content, **kwargs):
    path = content if not isinstance(content, (str, bytes)) else write(tmp_path, content)
    with pytest.raises((OSError, ValueError)) as info:
        TextCorpus(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message  # the CLI prints it as one line
    return message


def test_bad_files_are_named_with_what_is_wrong(tmp_path):
    missing = tmp_path / "nope.txt"
    assert _error(tmp_path, missing) == f"text corpus not found: {missing}"
    assert "is a directory" in _error(tmp_path, tmp_path) and str(tmp_path) in _error(tmp_path, tmp_path)
    assert _error(tmp_path, b"") == f"{tmp_path / 'text.txt'} is empty; a text corpus needs some text"
    message = _error(tmp_path, b"ok\n\xff\xfe")
    assert message.startswith(f"{tmp_path / 'text.txt'} is not UTF-8 text: byte 0xff at offset 3")


def test_a_split_too_short_for_one_window_is_an_error(tmp_path):
    path = str(tmp_path / "text.txt")
    message = _error(tmp_path, "abcdefghij" * 2, split="val", seq_len=5)  # 18 / 2 tokens
    assert message == (
        f"{path}: the 'val' split holds 2 tokens, too few for one window of seq_len=5 plus a target token "
        "(needs 6)"
    )
    message = _error(tmp_path, "abcdefghij" * 2, seq_len=5, streams=4)  # 18 tokens: 4 streams of 4
    assert message == (
        f"{path}: the 'train' split holds 18 tokens, too few for one window of seq_len=5 plus a target "
        "token in each of 4 streams (needs 24)"
    )
    assert "holds 0 tokens" in _error(tmp_path, "abcdef", split="val", seq_len=2, val_fraction=0.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(split="dev"), "split must be one of train, val, test, got 'dev'"),
        (dict(level="byte"), "level must be 'char' or 'word', got 'byte'"),
        (dict(seq_len=0), "seq_len must be a positive integer, got 0"),
        (dict(streams=0), "streams must be a positive integer or None, got 0"),
        (dict(val_fraction=1.5), r"val_fraction must be in \[0, 1\], got 1.5"),
        (dict(max_vocab=10), "max_vocab applies to level='word' only"),
        (dict(level="word", max_vocab=1), "max_vocab must be an integer >= 2"),
    ],
)
def test_bad_arguments(corpus_file, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TextCorpus(corpus_file, **kwargs)
