"""``save`` / ``load``: round trips of every supported type, atomic writes, damaged and hostile files."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
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
           "u": np.array(["ab", "c"])}  # fmt: skip
    loaded = _round_trip(obj, tmp_path)
    for key, value in obj.items():
        assert type(loaded[key]) is type(value) and loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


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


def _archive(path, header, entries=()):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dltool.json", header if isinstance(header, str) else json.dumps(header))
        for name, data in entries:
            archive.writestr(name, data)


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
        ([1, 2], (), ""),
    ],
)
def test_foreign_or_malformed_archives_are_refused(header, entries, reason, tmp_path):
    path = tmp_path / "odd.ckpt"
    _archive(path, header, entries)
    with pytest.raises(RuntimeError, match=f"odd.ckpt: not a dltool checkpoint or it is corrupted.*{reason}"):
        dl.load(path)


def test_a_pickled_array_is_refused_without_unpickling(tmp_path):
    payload = io.BytesIO()
    np.save(payload, np.array([_Payload()], dtype=object), allow_pickle=True)
    path = tmp_path / "hostile.ckpt"
    _archive(path, {"format": "dltool", "version": 1, "root": {"kind": "ndarray", "array": 0}},
             [("arrays/0.npy", payload.getvalue())])  # fmt: skip
    with pytest.raises(RuntimeError, match="hostile.ckpt: .*allow_pickle=False"):
        dl.load(path)
    assert UNPICKLED == []


def test_a_torch_checkpoint_is_refused_not_unpickled(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.pt"
    torch.save({"p": _Payload()}, path)
    with pytest.raises(RuntimeError, match="torch.pt: not a dltool checkpoint"):
        dl.load(path)
    assert UNPICKLED == []


def test_missing_file_is_the_usual_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        dl.load(tmp_path / "nope.ckpt")


def test_serialization_module_never_imports_pickle():
    source = Path(serialization.__file__).read_text()
    assert "import pickle" not in source and "allow_pickle=True" not in source
