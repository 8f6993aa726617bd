import pytest

import dltool.engine as dl
from tests.engine.ops.parity import same_error, same_values
from tests.op_check import check_op

ASSEMBLE_OPS = [
    ("repeat_interleave_flat", lambda lib, x: lib.repeat_interleave(x, 2), (2, 3)),
    ("repeat_interleave_dim", lambda lib, x: x.repeat_interleave(3, dim=0), (2, 3)),
    ("repeat_interleave_neg_dim", lambda lib, x: x.repeat_interleave(2, -1), (2, 3)),
    ("repeat_interleave_tensor", lambda lib, x: x.repeat_interleave(lib.tensor([2, 0, 1]), 1), (2, 3)),
    ("repeat_interleave_tensor_1", lambda lib, x: lib.repeat_interleave(x, lib.tensor([3]), 0), (2, 3)),
    (
        "repeat_interleave_output_size",
        lambda lib, x: lib.repeat_interleave(x, lib.tensor([1, 2]), dim=-2, output_size=3),
        (2, 3),
    ),
    ("repeat_interleave_axis", lambda lib, x: x.repeat_interleave(2, axis=1), (2, 3)),
    ("atleast_1d", lambda lib, x: lib.atleast_1d(x.sum()), (2,)),
    ("atleast_2d_many", lambda lib, x: lib.atleast_2d(x.sum(), x[0], x), (2, 3)),
    ("atleast_3d_list", lambda lib, x: lib.atleast_3d([x.sum(), x[0], x, x[None]]), (2, 3)),
    ("hstack", lambda lib, x: lib.hstack([x, x[:, :1]]), (2, 3)),
    ("hstack_vectors_and_scalars", lambda lib, x: lib.hstack([x[0], x[1, 1]]), (2, 3)),
    ("vstack", lambda lib, x: lib.vstack((x[0], x, x[1, 1].expand(3))), (2, 3)),
    ("row_stack", lambda lib, x: lib.row_stack([x, x[:1]]), (2, 3)),
    ("dstack", lambda lib, x: lib.dstack([x[0], x[1]]), (2, 3)),
    ("dstack_matrices", lambda lib, x: lib.dstack([x, x * 2]), (2, 3)),
    ("column_stack", lambda lib, x: lib.column_stack([x[0], x.t(), x[1, 1].expand(3)]), (2, 3)),
    ("cartesian_prod", lambda lib, x: lib.cartesian_prod(x[0], x[1, :2]), (2, 3)),
    ("cartesian_prod_three", lambda lib, x: lib.cartesian_prod(x[0], x[1, :2], x[1]), (2, 3)),
    ("block_diag", lambda lib, x: lib.block_diag(x, x[0, 0], x[1], x.t()), (2, 3)),
]


@pytest.mark.parametrize("name,fn,shape", ASSEMBLE_OPS, ids=[s[0] for s in ASSEMBLE_OPS])
def test_assemble_ops(name, fn, shape):
    check_op(fn, shape)


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    check_op(lambda lib, x, y, z: lib.meshgrid(x, y, z, indexing=indexing), (2,), (3,), (4,))
    check_op(lambda lib, x, y: lib.meshgrid([x, y.sum()], indexing=indexing), (2,), (3,))


def test_meshgrid_defaults_to_ij_and_gives_views():
    x, y = dl.arange(2), dl.arange(3)
    grid_x, grid_y = dl.meshgrid(x, y)
    assert grid_x.shape == (2, 3) and grid_y.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert grid_x._data.base is not None  # broadcast, not copied


def test_integer_results():
    same_values(lambda lib: lib.repeat_interleave(lib.tensor([1, 0, 2])))
    same_values(lambda lib: lib.repeat_interleave(lib.tensor([[1, 2], [3, 4]]), lib.tensor([0, 2]), 0))
    same_values(lambda lib: lib.cartesian_prod(lib.tensor([1, 2]), lib.tensor([3, 4, 5])))
    same_values(lambda lib: lib.cartesian_prod(lib.tensor([1, 2])))
    same_values(lambda lib: lib.block_diag())
    same_values(lambda lib: lib.block_diag(lib.tensor([1]), lib.tensor([1.5, 2.0])))
    same_values(lambda lib: lib.block_diag(lib.ones(0, 2), lib.ones(2, 0)))
    same_values(lambda lib: lib.hstack([lib.tensor(1), lib.tensor(2)]))
    same_values(lambda lib: lib.vstack([lib.tensor(1), lib.tensor(2)]))
    same_values(lambda lib: lib.column_stack([lib.tensor(1), lib.tensor(2)]))
    same_values(lambda lib: lib.atleast_1d())


def test_stacks_write_out():
    out = dl.zeros(0)
    result = dl.hstack([dl.ones(2), dl.zeros(1)], out=out)
    assert result is out and out.tolist() == [1.0, 1.0, 0.0]
    out = dl.zeros(2, 2)
    assert dl.column_stack([dl.ones(2), dl.ones(2)], out=out) is out and out.tolist() == [[1.0] * 2] * 2


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), -1),
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), lib.tensor([1, 2, 3]), 0),
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), lib.tensor([1, -2]), 0),
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), lib.tensor([[1, 2]]), 0),
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), lib.tensor([1.0, 2.0]), 0),
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), 2, 0, output_size=5),
        lambda lib: lib.repeat_interleave(lib.ones(2, 3), 2, 3),
        lambda lib: lib.meshgrid(lib.ones(2), lib.ones(3, dtype=lib.float64), indexing="ij"),
        lambda lib: lib.meshgrid(lib.ones(2), lib.ones(3), indexing="foo"),
        lambda lib: lib.meshgrid(indexing="ij"),
        lambda lib: lib.hstack([]),
        lambda lib: lib.dstack([]),
        lambda lib: lib.column_stack([]),
        lambda lib: lib.block_diag(lib.ones(2), lib.ones(1, 2, 3)),
        lambda lib: lib.cartesian_prod(lib.ones(2, 2)),
    ],
)
def test_errors_match_pytorch(fn):
    same_error(fn)
