import pytest

import dltool.engine as dl
from tests.engine.ops.parity import same_error, same_values
from tests.op_check import check_op

DIAGONAL_OPS = [
    ("tril", lambda lib, x: x.tril(), (3, 4)),
    ("tril_offset", lambda lib, x: lib.tril(x, 1), (2, 3, 4)),
    ("tril_negative_offset", lambda lib, x: lib.tril(x, diagonal=-1), (4, 3)),
    ("triu", lambda lib, x: lib.triu(x), (3, 4)),
    ("triu_offset", lambda lib, x: x.triu(-1), (2, 3, 4)),
    ("diagonal", lambda lib, x: x.diagonal(), (3, 4)),
    ("diagonal_offset", lambda lib, x: lib.diagonal(x, 1), (3, 4)),
    ("diagonal_negative_offset", lambda lib, x: lib.diagonal(x, -2), (4, 3)),
    ("diagonal_dims", lambda lib, x: lib.diagonal(x, 1, -1, 0), (3, 2, 4)),
    ("diagonal_offset_past_end", lambda lib, x: lib.diagonal(x, 5) * 2, (3, 4)),
    ("diag_vector", lambda lib, x: lib.diag(x), (3,)),
    ("diag_vector_offset", lambda lib, x: x.diag(-2), (3,)),
    ("diag_matrix", lambda lib, x: lib.diag(x), (3, 4)),
    ("diag_matrix_offset", lambda lib, x: lib.diag(x, 2), (3, 4)),
    ("diag_embed", lambda lib, x: lib.diag_embed(x), (2, 3)),
    ("diag_embed_offset_dims", lambda lib, x: x.diag_embed(1, 0, 2), (2, 3)),
    ("diag_embed_negative", lambda lib, x: lib.diag_embed(x, -1, -1, -3), (2, 3)),
]


@pytest.mark.parametrize("name,fn,shape", DIAGONAL_OPS, ids=[s[0] for s in DIAGONAL_OPS])
def test_diagonal_ops(name, fn, shape):
    check_op(fn, shape)


@pytest.mark.parametrize("offset,dim1,dim2,src", [(0, 0, 1, (3,)), (1, 1, 0, (2,)), (-1, -1, 0, (2, 2))])
def test_diagonal_scatter(offset, dim1, dim2, src):
    shape = (3, 3) if len(src) == 1 else (3, 2, 3)
    check_op(lambda lib, x, s: lib.diagonal_scatter(x, s, offset, dim1, dim2), shape, src)


def test_writes_through_a_diagonal_view_reach_the_base():
    x = dl.tensor([[1.0, 2.0], [3.0, 4.0]])
    x.diagonal().add_(10.0)
    assert x.tolist() == [[11.0, 2.0], [3.0, 14.0]]
    leaf = dl.ones(2, 2, requires_grad=True)
    y = leaf * 2
    y.diagonal().mul_(3.0)
    y.sum().backward()
    assert leaf.grad.tolist() == [[6.0, 2.0], [2.0, 6.0]]


def test_diag_of_a_matrix_is_a_copy():
    x = dl.ones(2, 2)
    dl.diag(x).zero_()
    assert x.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_integer_and_bool_inputs():
    same_values(lambda lib: lib.tril(lib.ones(3, 3, dtype=lib.bool)))
    same_values(lambda lib: lib.triu(lib.arange(12).reshape(3, 4), 1))
    same_values(lambda lib: lib.diag(lib.arange(3), 1))
    same_values(lambda lib: lib.diagonal(lib.ones(2, 3), 5))


@pytest.mark.parametrize("row,col,offset", [(3, 4, 1), (3, 4, -1), (4, 3, 0), (0, 3, 0), (3, 3, 5)])
def test_triangle_indices(row, col, offset):
    same_values(lambda lib: lib.tril_indices(row, col, offset))
    same_values(lambda lib: lib.triu_indices(row, col, offset))
    same_values(lambda lib: lib.tril_indices(row, col, offset, dtype=lib.int32))


def test_tril_and_triu_in_place_and_out():
    x = dl.ones(2, 2)
    assert x.tril_() is x and x.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    out = dl.zeros(2, 2)
    assert dl.triu(dl.ones(2, 2), out=out) is out and out.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert dl.diag(dl.ones(2), out=dl.zeros(0)).tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.tril(lib.ones(3)),
        lambda lib: lib.triu(lib.ones(3)),
        lambda lib: lib.diag(lib.ones(2, 2, 2)),
        lambda lib: lib.diag(lib.tensor(1.0)),
        lambda lib: lib.diagonal(lib.ones(2, 3), 0, 0, 0),
        lambda lib: lib.diagonal(lib.ones(3)),
        lambda lib: lib.diag_embed(lib.ones(2, 3), 0, 1, 1),
        lambda lib: lib.diag_embed(lib.tensor(1.0)),
        lambda lib: lib.diagonal_scatter(lib.zeros(3, 3), lib.ones(2)),
        lambda lib: lib.tril_indices(-1, 4),
        lambda lib: lib.triu_indices(3, -2),
        lambda lib: lib.tril_indices(3, 3, dtype=lib.float32),
    ],
)
def test_errors_match_pytorch(fn):
    same_error(fn)
