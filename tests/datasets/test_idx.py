import gzip
import struct

import numpy as np
import pytest

from dltool.datasets import read_idx, write_idx


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["x-idx", "x-idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    write_idx(tmp_path / name, array)
    got = read_idx(tmp_path / name)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    assert got.flags.writeable


def test_header_is_big_endian_with_the_magic_number(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 2], dtype=np.uint8))
    raw = (tmp_path / "labels").read_bytes()
    assert (
        raw[:4] == b"\x00\x00\x08\x01"
        and struct.unpack(">I", raw[4:8]) == (3,)
        and raw[8:] == b"\x03\x01\x02"
    )


def test_gzip_is_recognized_by_content_not_name(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((2, 2), np.uint8))
    (tmp_path / "a.gz").rename(tmp_path / "plain-name")
    assert read_idx(tmp_path / "plain-name").shape == (2, 2)


def _raw(tmp_path, array):
    write_idx(tmp_path / "good", array)
    return (tmp_path / "good").read_bytes()


@pytest.mark.parametrize(
    "mutate,message",
    [
        (
            lambda raw: raw[:-5],
            r"truncated IDX file: the header declares shape \(4, 5, 6\) \(120 bytes\) but only 115",
        ),
        (lambda raw: raw + b"\0\0", r"2 bytes past the data of shape \(4, 5, 6\)"),
        (lambda raw: raw[:10], r"truncated IDX file \(the header of 3 dimensions is cut short\)"),
        (lambda raw: b"PK\x03\x04" + raw[4:], r"not an IDX file \(magic number 0x504b0304\)"),
        (lambda raw: raw[:2] + b"\x07" + raw[3:], r"not an IDX file"),
        (lambda raw: b"", r"not an IDX file"),
    ],
    ids=["truncated-data", "extra-bytes", "truncated-header", "zip", "bad-type", "empty"],
)
def test_corrupt_files_name_the_file(tmp_path, mutate, message):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(mutate(_raw(tmp_path, np.zeros((4, 5, 6), np.uint8))))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_raw(tmp_path, np.arange(1000, dtype=np.uint8) % 10))[:-20])
    with pytest.raises(ValueError, match="corrupt or truncated gzip data") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_expected_magic_number(tmp_path):
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="magic number 0x00000801, expected 0x00000803"):
        read_idx(tmp_path / "labels", magic=0x803)


def test_unsupported_dtype():
    with pytest.raises(TypeError, match="IDX files hold uint8"):
        write_idx("unused", np.zeros(2, np.uint16))
