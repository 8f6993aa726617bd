"""Padding layers and the Fold / Unfold modules."""

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.op_check import check_op

PADS = [
    ("ZeroPad1d", (2,), (2, 3, 4)),
    ("ZeroPad2d", ((1, 0, 2, 1),), (2, 3, 4)),
    ("ConstantPad1d", ((1, 2), 3.5), (3, 4)),
    ("ConstantPad2d", (1, -1.0), (2, 1, 3, 4)),
    ("ReflectionPad1d", (3,), (2, 3, 4)),
    ("ReflectionPad2d", ((1, 0, 2, 1),), (2, 3, 4, 5)),
    ("ReplicationPad1d", ((0, 3),), (3, 4)),
    ("ReplicationPad2d", (2,), (3, 4, 5)),
    ("CircularPad1d", ((2, 1),), (2, 3, 4)),
    ("CircularPad2d", (1,), (2, 3, 4, 5)),
    ("ReflectionPad3d", (1,), (1, 2, 3, 4, 3)),
]


@pytest.mark.parametrize("name,args,shape", PADS, ids=[p[0] for p in PADS])
def test_padding_layers_match_pytorch(name, args, shape):
    torch = pytest.importorskip("torch")
    check_op(lambda lib, x: getattr(lib.nn, name)(*args)(x), shape)
    assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))
    assert getattr(nn.modules.padding, name) is getattr(nn, name)


def test_padding_layer_errors_match_pytorch():
    with pytest.raises(NotImplementedError, match="Padding size 4 is not supported for 2D input tensor"):
        nn.ReflectionPad2d(1)(dl.randn(4, 4))
    with pytest.raises(NotImplementedError, match="Padding size 2 is not supported for 4D input tensor"):
        nn.ReplicationPad1d(1)(dl.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="expected 2D or 3D input \\(got 1D input\\)"):
        nn.CircularPad1d(1)(dl.randn(4))
    with pytest.raises(
        RuntimeError, match="Padding size should be less than the corresponding input dimension"
    ):
        nn.ReflectionPad1d(4)(dl.randn(2, 3, 4))
    assert isinstance(nn.ZeroPad2d(1), nn.ConstantPad2d)


def test_fold_and_unfold_modules_match_pytorch():
    torch = pytest.importorskip("torch")
    check_op(lambda lib, x: lib.nn.Unfold(2, dilation=(1, 2), padding=1, stride=2)(x), (2, 3, 5, 6))
    check_op(lambda lib, x: lib.nn.Fold((4, 5), (2, 3), padding=(1, 0))(x), (2, 12, 15))
    for make in (lambda lib: lib.nn.Fold((4, 5), 2), lambda lib: lib.nn.Unfold(2, padding=1)):
        assert repr(make(dl)) == repr(make(torch))
    x = dl.randn(1, 2, 4, 4)
    ones = nn.Fold(4, 2, stride=2)(nn.Unfold(2, stride=2)(x))  # non-overlapping blocks: a round trip
    np.testing.assert_allclose(ones.numpy(), x.numpy())
