import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.ops.shape import pad
from tests.engine.ops.parity import same_error
from tests.op_check import check_op

SHAPE_OPS = [
    ("reshape", lambda lib, x: x.reshape(4, -1), (2, 3, 2)),
    ("reshape_tuple", lambda lib, x: lib.reshape(x, (3, 4)), (2, 3, 2)),
    ("view", lambda lib, x: x.view(-1), (2, 3)),
    ("view_as", lambda lib, x: x.view_as(x.t()), (2, 3)),
    ("flatten", lambda lib, x: x.flatten(), (2, 3, 4)),
    ("flatten_start", lambda lib, x: x.flatten(1), (2, 3, 4)),
    ("flatten_range", lambda lib, x: lib.flatten(x, 0, -2), (2, 3, 4)),
    ("unflatten", lambda lib, x: x.unflatten(1, (2, -1)), (2, 6)),
    ("unflatten_neg", lambda lib, x: lib.unflatten(x, -1, (3, 2)), (2, 6)),
    ("squeeze_all", lambda lib, x: x.squeeze(), (2, 1, 3, 1)),
    ("squeeze_neg", lambda lib, x: x.squeeze(-1), (2, 1, 3, 1)),
    ("squeeze_tuple", lambda lib, x: lib.squeeze(x, (1, 3)), (2, 1, 3, 1)),
    ("squeeze_noop", lambda lib, x: x.squeeze(0), (2, 1, 3, 1)),
    ("unsqueeze", lambda lib, x: x.unsqueeze(0), (2, 3)),
    ("unsqueeze_neg", lambda lib, x: lib.unsqueeze(x, -1), (2, 3)),
    ("transpose", lambda lib, x: x.transpose(0, -1), (2, 3, 4)),
    ("t", lambda lib, x: x.t(), (2, 3)),
    ("T", lambda lib, x: x.T, (2, 3)),
    ("mT", lambda lib, x: x.mT, (2, 3, 4)),
    ("permute", lambda lib, x: x.permute(2, 0, 1), (2, 3, 4)),
    ("permute_tuple_neg", lambda lib, x: lib.permute(x, (-1, 0, 1)), (2, 3, 4)),
    ("movedim", lambda lib, x: lib.movedim(x, 0, -1), (2, 3, 4)),
    ("expand", lambda lib, x: x.expand(2, 3, 4), (3, 1)),
    ("expand_keep", lambda lib, x: x.expand(-1, 4), (3, 1)),
    ("expand_tuple", lambda lib, x: x.expand((2, 3)), (3,)),
    ("repeat", lambda lib, x: x.repeat(2, 3), (2, 3)),
    ("repeat_new_dims", lambda lib, x: x.repeat(2, 1, 3), (2, 3)),
    ("flip", lambda lib, x: x.flip(0), (2, 3, 4)),
    ("flip_tuple_neg", lambda lib, x: lib.flip(x, (0, -1)), (2, 3, 4)),
    ("split_size", lambda lib, x: x.split(2, dim=1), (2, 5)),
    ("split_sections", lambda lib, x: lib.split(x, [1, 3, 1], -1), (2, 5)),
    ("chunk", lambda lib, x: x.chunk(3), (5, 2)),
    ("chunk_neg", lambda lib, x: lib.chunk(x, 2, -1), (2, 5)),
    ("unbind", lambda lib, x: x.unbind(1), (2, 3)),
    ("narrow", lambda lib, x: x.narrow(1, 1, 2), (2, 4)),
    ("roll", lambda lib, x: x.roll(1, 0), (3, 4)),
    ("roll_tuple_neg", lambda lib, x: lib.roll(x, (2, -1), (-1, 0)), (2, 3, 4)),
    ("roll_flat", lambda lib, x: lib.roll(x, 5), (2, 3, 4)),
    ("roll_list_dims", lambda lib, x: x.roll([1, 1], [1, 2]), (2, 3, 4)),
    ("rot90", lambda lib, x: x.rot90(), (2, 3)),
    ("rot90_k2", lambda lib, x: lib.rot90(x, 2, (1, 2)), (2, 3, 4)),
    ("rot90_k3_neg_dims", lambda lib, x: lib.rot90(x, 3, [-1, 0]), (2, 3, 4)),
    ("rot90_negative_k", lambda lib, x: lib.rot90(x, -1, [0, 2]), (2, 3, 4)),
    ("rot90_k0", lambda lib, x: lib.rot90(x, 4), (2, 3)),
    ("flipud", lambda lib, x: lib.flipud(x), (3, 2)),
    ("fliplr", lambda lib, x: x.fliplr(), (2, 3, 2)),
    ("tile", lambda lib, x: lib.tile(x, (2, 3)), (2, 3)),
    ("tile_short", lambda lib, x: x.tile((2,)), (2, 3)),
    ("tile_long", lambda lib, x: x.tile(2, 1, 2), (2, 3)),
]


@pytest.mark.parametrize("name,fn,shape", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops(name, fn, shape):
    check_op(fn, shape)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim):
    shapes = {0: ((1, 3), (2, 3)), 1: ((2, 1), (2, 3)), -1: ((2, 2), (2, 3))}[dim]
    check_op(lambda lib, x, y: lib.cat([x, y, x], dim=dim), *shapes)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_stack(dim):
    check_op(lambda lib, x, y: lib.stack((x, y), dim), (2, 3), (2, 3))


@pytest.mark.parametrize("widths", [(1, 2), (1, 2, 0, 1), (0, 0, 2, 0, 1, 1)])
def test_pad_matches_functional_pad(widths):
    def fn(lib, x):
        if lib is dl:
            return pad(x, widths, value=0.5)
        return lib.nn.functional.pad(x, widths, value=0.5)

    check_op(fn, (2, 3, 2))


def test_views_share_memory_and_version_counter():
    x = dl.arange(6.0)
    y = x.view(2, 3)
    y.data[0, 0] = 100.0
    assert x[0].item() == 100.0
    z = x.reshape(3, 2)
    z.mul_(2)
    assert x._version == z._version == 1


def test_cat_promotes_dtypes():
    assert dl.cat([dl.tensor([1]), dl.tensor([0.5])]).dtype == dl.float32
    assert dl.cat([dl.tensor([1.0]), dl.tensor([2.0], dtype=dl.float64)]).tolist() == [1.0, 2.0]


def test_split_and_chunk_sizes():
    x = dl.arange(7)
    assert [p.shape for p in x.split(3)] == [(3,), (3,), (1,)]
    assert [p.shape for p in x.chunk(3)] == [(3,), (3,), (1,)]
    assert [p.tolist() for p in dl.split(x, [2, 5])] == [[0, 1], [2, 3, 4, 5, 6]]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib, x: lib.cat([x, x], axis=1),
        lambda lib, x: lib.stack([x, x], axis=-1),
        lambda lib, x: x.unsqueeze(axis=0),
        lambda lib, x: lib.squeeze(x[:1], axis=0),
        lambda lib, x: x.chunk(2, axis=0),
        lambda lib, x: lib.unbind(x, axis=1),
        lambda lib, x: x.narrow(axis=1, start=1, length=2),
    ],
)
def test_shape_ops_take_numpy_axis(fn):
    check_op(fn, (2, 3))


def test_expand_does_not_copy():
    x = dl.ones(3, 1)
    y = x.expand(3, 1000)
    assert np.shares_memory(x.numpy(), y.numpy())


@pytest.mark.parametrize(
    "call,error,message",
    [
        (
            lambda: dl.ones(2, 3).reshape(4, 2),
            RuntimeError,
            r"shape '\[4, 2\]' is invalid for input of size 6",
        ),
        (lambda: dl.ones(2, 3).view(-1, -1), RuntimeError, "only one dimension can be inferred"),
        (
            lambda: dl.ones(2, 3).expand(4, 3),
            RuntimeError,
            "must match the existing size \\(2\\) at non-singleton dimension 0",
        ),
        (lambda: dl.ones(2, 3).expand(3), RuntimeError, "number of sizes provided \\(1\\)"),
        (lambda: dl.ones(2, 3).permute(0, 0), RuntimeError, "not a permutation"),
        (lambda: dl.ones(2, 3, 4).t(), RuntimeError, "t\\(\\) expects a tensor with <= 2 dimensions"),
        (
            lambda: dl.cat([dl.ones(2, 3), dl.ones(2, 4)]),
            RuntimeError,
            "Sizes of tensors must match except in dimension 0",
        ),
        (lambda: dl.cat([]), RuntimeError, "expected a non-empty list"),
        (
            lambda: dl.stack([dl.ones(2), dl.ones(3)]),
            RuntimeError,
            "stack expects each tensor to be equal size",
        ),
        (lambda: dl.ones(5).split([2, 2]), RuntimeError, "split_sizes to sum exactly to 5"),
        (lambda: dl.ones(5).chunk(0), RuntimeError, "chunk expects `chunks` to be greater than 0"),
        (lambda: dl.ones(2, 2).repeat(2), RuntimeError, "repeat dims can not be smaller"),
        (lambda: dl.ones(2, 3).flatten(1, 0), RuntimeError, "start_dim cannot come after end_dim"),
        (lambda: dl.ones(2, 3).unsqueeze(3), IndexError, "Dimension out of range"),
        (lambda: pad(dl.ones(2), (1, 2, 3)), RuntimeError, "Padding length must be divisible by 2"),
        (lambda: dl.cat([dl.ones(2)], dim=0, axis=0), TypeError, "unexpected keyword argument 'axis'"),
    ],
)
def test_shape_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.roll(lib.ones(2, 3), (1, 2)),
        lambda lib: lib.roll(lib.ones(2, 3), (1, 2), 0),
        lambda lib: lib.roll(lib.ones(2, 3), 1, (0, 1)),
        lambda lib: lib.roll(lib.ones(2, 3), (), ()),
        lambda lib: lib.roll(lib.ones(2, 3), 1, 2),
        lambda lib: lib.rot90(lib.ones(3)),
        lambda lib: lib.rot90(lib.ones(2, 3), 1, [0, 1, 1]),
        lambda lib: lib.rot90(lib.ones(2, 3), 1, [1, -1]),
        lambda lib: lib.rot90(lib.ones(2, 3), 1, [0, 3]),
        lambda lib: lib.flipud(lib.tensor(1.0)),
        lambda lib: lib.fliplr(lib.ones(3)),
    ],
)
def test_shape_errors_match_pytorch(fn):
    same_error(fn)
