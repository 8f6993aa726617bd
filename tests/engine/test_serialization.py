"""``save`` / ``load``: round trips of every supported type, atomic writes, damaged and hostile files."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import serialization

UNPICKLED = []


def _evil() -> None:
    UNPICKLED.append(True)


class _Payload:
    """Unpickling this calls ``_evil``: a stand-in for code hidden in a hostile file."""

    def __reduce__(self):
        return (_evil, ())


def _round_trip(obj, tmp_path, **load_options):
    dl.save(obj, tmp_path / "obj.ckpt")
    return dl.load(tmp_path / "obj.ckpt", **load_options)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**70,
        1.5,
        -0.0,
        1e-300,
        "text",
        "",
        "ünïcode ✓",
        [],
        (),
        {},
        [1, [2, (3,)]],
        (None,),
    ],
    ids=repr,
)
def test_plain_values_round_trip_with_their_types(value, tmp_path):
    loaded = _round_trip({"v": value}, tmp_path)["v"]
    assert loaded == value and type(loaded) is type(value)  # == tells a tuple from a list too


def test_non_finite_floats_round_trip(tmp_path):
    loaded = _round_trip([math.inf, -math.inf, math.nan], tmp_path)
    assert loaded[:2] == [math.inf, -math.inf] and math.isnan(loaded[2])
    with zipfile.ZipFile(tmp_path / "obj.ckpt") as archive:
        json.loads(archive.read("dltool.json"), parse_constant=pytest.fail)  # standard JSON only


def test_dict_keys_keep_their_types_and_order(tmp_path):
    obj = {"b": 1, 0: "zero", 2: {"nested": True}, (1, "x"): None, 1.5: "f", None: "n", True: "t", "a": 2}
    loaded = _round_trip(obj, tmp_path)
    assert loaded == obj and list(loaded) == list(obj)
    assert [type(k) for k in loaded] == [type(k) for k in obj]
    counter = _round_trip(OrderedDict([("x", Counter({3: 2}))]), tmp_path)
    assert counter == {"x": {3: 2}}


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "uint8", "bool"])
def test_tensors_round_trip_with_dtype_shape_and_requires_grad(dtype, tmp_path):
    array = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    tensor = dl.tensor(array, requires_grad=dtype.startswith("float"))
    scalar = dl.tensor(3, dtype=getattr(dl, dtype))
    empty = dl.zeros(0, 3, dtype=getattr(dl, dtype))
    loaded, loaded_scalar, loaded_empty = _round_trip([tensor, scalar, empty], tmp_path)
    assert isinstance(loaded, dl.Tensor) and loaded.dtype == tensor.dtype and loaded.shape == (2, 3, 4)
    assert loaded.requires_grad == tensor.requires_grad and loaded.is_leaf
    np.testing.assert_array_equal(loaded.detach().numpy(), array)
    assert loaded_scalar.shape == () and loaded_scalar.item() == scalar.item()
    assert loaded_empty.shape == (0, 3) and loaded_empty.dtype == empty.dtype


def test_numpy_arrays_and_scalars_stay_numpy(tmp_path):
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    view = np.arange(10)[::3]
    obj = {"a": np.arange(5, dtype=np.int16), "f": fortran, "v": view, "s": np.float32(2.5), "i": np.int64(7),
           "u": np.array(["ab", "c"]), "0d": np.array(1.5), "e": np.zeros((0, 3), np.int64),
           "b": np.array([True, False]), "h": np.array([0.5, -2], np.float16), "bs": np.bool_(True),
           "r": np.zeros(2, [("x", "<f4"), ("y", "<i8")])}  # fmt: skip
    loaded = _round_trip(obj, tmp_path)
    for key, value in obj.items():
        assert type(loaded[key]) is type(value) and loaded[key].dtype == value.dtype
        assert np.shape(loaded[key]) == np.shape(value)
        np.testing.assert_array_equal(loaded[key], value)
    assert loaded["f"].flags.f_contiguous and not loaded["f"].flags.c_contiguous


def test_field_names_beyond_latin1_round_trip_as_npy_3_0(tmp_path):
    array = np.array([(1.5, 2)], [("größe ✓", "<f4"), ("n", "<i8")])
    with pytest.warns(UserWarning, match="format 3.0"):
        dl.save({"a": array}, tmp_path / "obj.ckpt")
    loaded = dl.load(tmp_path / "obj.ckpt")["a"]
    assert loaded.dtype == array.dtype and loaded.tolist() == array.tolist()


def test_an_object_saved_twice_is_stored_once_and_loads_as_one(tmp_path):
    weight = dl.randn(3, 3)
    loaded = _round_trip({"a": weight, "b": [weight], "c": weight.clone()}, tmp_path)
    assert loaded["a"] is loaded["b"][0] and loaded["a"] is not loaded["c"]
    with zipfile.ZipFile(tmp_path / "obj.ckpt") as archive:
        assert sorted(archive.namelist()) == ["arrays/0.npy", "arrays/1.npy", "dltool.json"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())


def test_the_arrays_are_plain_npy_files(tmp_path):
    dl.save({"w": dl.arange(4)}, tmp_path / "obj.ckpt")
    with zipfile.ZipFile(tmp_path / "obj.ckpt") as archive:
        header = json.loads(archive.read("dltool.json"))
        assert header == {"format": "dltool", "version": 1, "root": {"kind": "dict", "items": [
            ["w", {"kind": "tensor", "array": 0, "device": "cpu", "requires_grad": False}]]}}  # fmt: skip
        np.testing.assert_array_equal(np.load(io.BytesIO(archive.read("arrays/0.npy"))), np.arange(4))


def test_file_objects_and_path_strings(tmp_path):
    buffer = io.BytesIO()
    dl.save({"x": dl.ones(2)}, buffer)
    buffer.seek(0)
    assert dl.load(buffer)["x"].tolist() == [1.0, 1.0]
    dl.save([1, 2], str(tmp_path / "p.ckpt"))
    assert dl.load(str(tmp_path / "p.ckpt")) == [1, 2]


def test_map_location(tmp_path):
    loaded = _round_trip({"t": dl.ones(2), "n": np.ones(2)}, tmp_path, map_location="cpu")
    assert loaded["t"].device == dl.device("cpu") and isinstance(loaded["n"], np.ndarray)
    assert _round_trip([dl.ones(1)], tmp_path, map_location=dl.device("cpu"))[0].device.type == "cpu"
    with pytest.raises(TypeError, match="map_location should be None, a string or a device"):
        dl.load(tmp_path / "obj.ckpt", map_location=lambda storage, location: storage)
    if not dl.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            dl.load(tmp_path / "obj.ckpt", map_location="cuda")


@pytest.mark.parametrize(
    "obj,match",
    [
        ({"f": lambda: 0}, r"cannot store a function at obj\['f'\]"),
        ([1, {2: object()}], r"cannot store a object at obj\[1\]\[2\]"),
        ({"s": {1, 2}}, "cannot store a set"),
        ({"o": np.array([None, 1])}, r"obj\['o'\] is an object array"),
        ({dl.ones(1): 1}, "keys must be plain values"),
    ],
)
def test_unsupported_objects_are_refused_before_anything_is_written(obj, match, tmp_path):
    with pytest.raises(TypeError, match=match):
        dl.save(obj, tmp_path / "obj.ckpt")
    assert os.listdir(tmp_path) == []


def test_a_crash_mid_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    dl.save({"epoch": 1, "w": dl.ones(1000)}, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(KeyboardInterrupt):
        dl.save({"epoch": 2, "w": dl.zeros(1000)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.ckpt"]
    assert dl.load(path)["epoch"] == 1


def test_writes_go_through_fsync_and_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        os, "replace", lambda a, b: calls.append(("replace", os.path.dirname(a))) or real_replace(a, b)
    )
    dl.save({"a": 1}, tmp_path / "x.ckpt")
    assert calls[0] == "fsync" and calls[1] == ("replace", str(tmp_path))
    assert dl.load(tmp_path / "x.ckpt") == {"a": 1}


def _checkpoint_bytes(tmp_path):
    dl.save({"w": dl.arange(100, dtype=dl.float32), "name": "model"}, tmp_path / "good.ckpt")
    return (tmp_path / "good.ckpt").read_bytes()


@pytest.mark.parametrize("cut", [0, 10, 200, -30, -1])
def test_truncated_files_raise_a_clear_error_naming_the_file(cut, tmp_path):
    data = _checkpoint_bytes(tmp_path)
    path = tmp_path / "broken.ckpt"
    path.write_bytes(data[:cut])
    with pytest.raises(RuntimeError, match=f"^{path}: not a dltool checkpoint or it is corrupted"):
        dl.load(path)


def test_flipped_bytes_are_caught_by_the_checksums(tmp_path):
    data = bytearray(_checkpoint_bytes(tmp_path))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("arrays/0.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200  # inside the array bytes
    data[offset] ^= 0xFF
    path = tmp_path / "flipped.ckpt"
    path.write_bytes(bytes(data))
    with pytest.raises(
        RuntimeError, match=r"flipped.ckpt: not a dltool checkpoint or it is corrupted \(Bad CRC"
    ):
        dl.load(path)


def _archive(path, header, entries=(), deflated=()):
    """A zip of stored entries, but for the names in ``deflated``."""

    def compression(name):
        return zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED

    with zipfile.ZipFile(path, "w") as archive:
        header = header if isinstance(header, str) else json.dumps(header)
        archive.writestr("dltool.json", header, compress_type=compression("dltool.json"))
        for name, data in entries:
            archive.writestr(name, data, compress_type=compression(name))


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npy_header(descr, shape):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


ONE_ARRAY = {"format": "dltool", "version": 1, "root": {"kind": "ndarray", "array": 0}}


@pytest.mark.parametrize(
    "header,entries,reason",
    [
        ("not json", (), "Expecting value"),
        ({"format": "other", "version": 1, "root": None}, (), "unknown format 'other'"),
        ({"format": "dltool", "version": 99, "root": None}, (), "version 99"),
        ({"format": "dltool", "version": 1, "root": {"kind": "module"}}, (), "unknown node kind 'module'"),
        ({"format": "dltool", "version": 1, "root": {"kind": "ndarray", "array": 3}}, (), "arrays/3.npy"),
        (
            {"format": "dltool", "version": 1, "root": {"kind": "ndarray", "array": 0}},
            [("arrays/0.npy", b"xx")],
            "",
        ),
        ([1, 2], (), r"dltool.json holds a list, not a JSON object"),
        ('"text"', (), r"dltool.json holds a str, not a JSON object"),
    ],
)
def test_foreign_or_malformed_archives_are_refused(header, entries, reason, tmp_path):
    path = tmp_path / "odd.ckpt"
    _archive(path, header, entries)
    with pytest.raises(RuntimeError, match=f"odd.ckpt: not a dltool checkpoint or it is corrupted.*{reason}"):
        dl.load(path)


@pytest.mark.parametrize("dtype", [object, [("w", "<f4"), ("code", object)]], ids=["object", "structured"])
def test_a_pickled_array_is_refused_without_unpickling(dtype, tmp_path):
    payload = io.BytesIO()
    np.save(payload, np.array([(0.0, _Payload())], dtype=dtype), allow_pickle=True)
    path = tmp_path / "hostile.ckpt"
    _archive(path, ONE_ARRAY, [("arrays/0.npy", payload.getvalue())])
    with pytest.raises(
        RuntimeError,
        match=r"hostile.ckpt: not a dltool checkpoint .*\(entry arrays/0.npy holds dtype .*which needs pickle",
    ):
        dl.load(path)
    assert UNPICKLED == []


@pytest.mark.parametrize("compressed", ["arrays/0.npy", "dltool.json"])
def test_compressed_entries_are_refused_before_they_are_read(compressed, tmp_path):
    path = tmp_path / "bomb.ckpt"
    _archive(path, ONE_ARRAY, [("arrays/0.npy", _npy(np.zeros(1000)))], deflated=[compressed])
    with pytest.raises(
        RuntimeError,
        match=rf"^{path}: not a dltool checkpoint or it is corrupted "
        rf"\(entry {compressed} is compressed \(deflate\); dltool writes stored entries\)$",
    ):
        dl.load(path)


@pytest.mark.parametrize(
    "data,reason",
    [
        (
            _npy_header("<f8", (10**12,)) + bytes(8),
            r"declares 8000000000128 bytes \(float64 of shape \(1000000000000,\)\) but holds 136",
        ),
        (
            _npy_header("<f8", (10,)) + bytes(72),
            r"declares 208 bytes \(float64 of shape \(10,\)\) but holds 200",
        ),
        (
            _npy_header("<f8", (10,)) + bytes(88),
            r"declares 208 bytes \(float64 of shape \(10,\)\) but holds 216",
        ),
        (_npy_header("<f8", (-1,)) + bytes(8), r"has a bad shape \(-1,\)"),
        (_npy_header("<f8", (True,)) + bytes(8), r"has a bad shape \(True,\)"),
    ],
    ids=["huge", "short", "long", "negative", "bool"],
)
def test_an_array_header_must_account_for_exactly_its_entry(data, reason, tmp_path):
    path = tmp_path / "crafted.ckpt"
    _archive(path, ONE_ARRAY, [("arrays/0.npy", data)])
    with pytest.raises(
        RuntimeError, match=rf"^{path}: not a dltool checkpoint .*\(entry arrays/0.npy {reason}\)$"
    ):
        dl.load(path)


@pytest.mark.parametrize(
    "root", ["[" * 100_000 + "]" * 100_000, '{"kind": "list", "items": [' * 100_000 + "]}" * 100_000]
)
def test_a_deeply_nested_tree_is_refused_not_a_recursion_error(root, tmp_path):
    path = tmp_path / "deep.ckpt"
    _archive(path, '{"format": "dltool", "version": 1, "root": ' + root + "}")
    with pytest.raises(RuntimeError, match=rf"^{path}: not a dltool checkpoint .*maximum recursion depth"):
        dl.load(path)


def _local_header(name, data):
    """The zip local file header of a stored entry (APPNOTE.TXT 4.3.7), dated 1980-01-01."""
    fields = (0x04034B50, 20, 0, 0, 0, 0x21, zlib.crc32(data), len(data), len(data), len(name), 0)
    return struct.pack("<IHHHHHIIIHH", *fields) + name.encode()


def _directory_record(name, data, offset):
    """The central directory record (APPNOTE.TXT 4.3.12) of that entry, its header at ``offset``."""
    fields = (0x02014B50, 20, 20, 0, 0, 0, 0x21, zlib.crc32(data), len(data), len(data), len(name), 0, 0, 0, 0, 0,
              offset)  # fmt: skip
    return struct.pack("<IHHHHHHIIIHHHHHII", *fields) + name.encode()


def test_overlapping_entries_are_refused(tmp_path):
    inner = _npy(np.zeros(100_000, np.uint8))
    inner_entry = _local_header("arrays/1.npy", inner) + inner
    outer = _npy(np.frombuffer(inner_entry, np.uint8))  # arrays/0.npy holds all of arrays/1.npy
    root = {"kind": "list", "items": [{"kind": "ndarray", "array": 0}, {"kind": "ndarray", "array": 1}]}
    body, records = b"", []
    for name, data in [
        ("dltool.json", json.dumps({**ONE_ARRAY, "root": root}).encode()),
        ("arrays/0.npy", outer),
    ]:
        records.append(_directory_record(name, data, len(body)))
        body += _local_header(name, data) + data
    records.append(_directory_record("arrays/1.npy", inner, len(body) - len(inner_entry)))
    directory = b"".join(records)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(records), len(records), len(directory), len(body), 0)
    path = tmp_path / "overlap.ckpt"
    path.write_bytes(body + directory + end)
    # Python 3.12+ and the 3.11.8+ security releases refuse such entries themselves ("Overlapped entries")
    with pytest.raises(RuntimeError, match=rf"^{path}: not a dltool checkpoint .*[Oo]verlap"):
        dl.load(path)


def test_a_torch_checkpoint_is_refused_not_unpickled(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.pt"
    torch.save({"p": _Payload()}, path)
    with pytest.raises(RuntimeError, match="torch.pt: not a dltool checkpoint"):
        dl.load(path)
    assert UNPICKLED == []


_SAVE_PAST_THE_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys
    import numpy as np
    import dltool.engine as dl
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        dl.save({"epoch": 2, "w": np.zeros(100_000)}, sys.argv[1])
    except OSError as error:
        print(type(error).__name__, error.errno, error)
    """
)


def test_a_failed_write_names_the_path_and_keeps_the_previous_file(tmp_path):
    pytest.importorskip("resource")  # POSIX
    path = tmp_path / "last.ckpt"
    dl.save({"epoch": 1}, path)
    root = Path(__file__).resolve().parents[2]  # python -c imports from the working folder
    result = subprocess.run(
        [sys.executable, "-c", _SAVE_PAST_THE_SIZE_LIMIT, str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    message = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}: {str(path)!r}"  # "File too large"
    assert result.stdout.strip() == f"OSError {errno.EFBIG} {message}"
    assert dl.load(path) == {"epoch": 1} and os.listdir(tmp_path) == ["last.ckpt"]


def test_missing_file_is_the_usual_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        dl.load(tmp_path / "nope.ckpt")


def test_serialization_module_never_imports_pickle():
    source = Path(serialization.__file__).read_text()
    assert "import pickle" not in source and "allow_pickle=True" not in source
