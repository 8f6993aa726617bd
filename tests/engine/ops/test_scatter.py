import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.ops.parity import same_error, same_values
from tests.op_check import check_op

INDEX = [[0, 1, 0, 1], [2, 2, 2, 0], [1, 1, 0, 2]]  # repeats within rows and columns

SCATTER_OPS = [
    ("scatter", lambda lib, x, s: x.scatter(1, lib.tensor([[2, 0], [1, 3], [0, 1]]), s[:, :2])),
    ("scatter_dim0", lambda lib, x, s: lib.scatter(x, 0, lib.tensor([[2, 0, 1, 0]]), s[:1])),
    ("scatter_value", lambda lib, x, s: lib.scatter(x, -1, lib.tensor([[2], [0], [3]]), value=0.5) * s),
    ("index_add", lambda lib, x, s: x.index_add(1, lib.tensor([3, 0, 3, 1]), s)),
    ("index_add_alpha_neg_dim", lambda lib, x, s: lib.index_add(x, -2, lib.tensor([2, 2, 0]), s, alpha=-2.5)),
    ("index_copy", lambda lib, x, s: x.index_copy(1, lib.tensor([3, 0, 2, 1]), s)),
    ("index_copy_neg_dim", lambda lib, x, s: lib.index_copy(x, -1, lib.tensor([1, 2, 0, 3]), s * s)),
    ("index_fill", lambda lib, x, s: x.index_fill(1, lib.tensor([0, 2]), -1.0) * s),
    ("index_fill_tensor_value", lambda lib, x, s: lib.index_fill(x, 0, lib.tensor([1]), s[0, 0]) * s),
]


@pytest.mark.parametrize("name,fn", SCATTER_OPS, ids=[s[0] for s in SCATTER_OPS])
def test_scatter_ops(name, fn):
    check_op(fn, (3, 4), (3, 4))


@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_reduce(reduce, include_self, dim):
    def fn(lib, x, src):
        return lib.scatter_reduce(x, dim, lib.tensor(INDEX), src, reduce, include_self=include_self)

    check_op(fn, (3, 4), (3, 4))


@pytest.mark.parametrize("reduce", ["prod", "amax", "amin"])
def test_scatter_reduce_with_zeros_and_ties(reduce):
    # zeros (prod) and equal values (amax, amin: the gradient is shared) take special care
    x = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    src = np.array([[1.0, 0.0, 2.0], [2.0, 3.0, 0.0]])
    index = [[0, 0, 1], [1, 2, 1]]

    def fn(lib, x, src):
        return lib.scatter_reduce(x, 1, lib.tensor(index), src, reduce).sum(0)

    if reduce == "prod":
        check_op(fn, arrays=[x, src])
    else:  # ties have no finite-difference gradient, so only the parity part applies
        same_values(lambda lib: _gradients(lib, fn, x, src))


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter:UserWarning")
@pytest.mark.parametrize("reduce", ["add", "multiply"])
def test_scatter_with_reduce(reduce):
    # PyTorch has no gradient for scatter with reduce=; it is scatter_reduce's "sum" or "prod" here
    rng = np.random.default_rng(0)
    x, src = (dl.tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(2))
    assert dl.autograd.gradcheck(lambda x, src: x.scatter(1, dl.tensor(INDEX), src, reduce=reduce), (x, src))
    same_values(
        lambda lib: lib.scatter(lib.ones(3, 4), 1, lib.tensor(INDEX), lib.full((3, 4), 2.0), reduce=reduce)
    )
    same_values(lambda lib: lib.ones(3, 4).scatter_(0, lib.tensor(INDEX), 1.5, reduce=reduce))


def _gradients(lib, fn, *arrays):
    inputs = [lib.tensor(a, requires_grad=True) for a in arrays]
    fn(lib, *inputs).sum().backward()
    return [t.grad for t in inputs]


def test_scatter_reduce_integers_match_pytorch():
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        for include_self in (True, False):
            same_values(
                lambda lib, r=reduce, s=include_self: lib.scatter_reduce(
                    lib.tensor([1, -3, 4]),
                    0,
                    lib.tensor([0, 1, 0, 1, 0]),
                    lib.tensor([-5, 2, 3, 7, 0]),
                    r,
                    include_self=s,
                )
            )


def test_in_place_twins():
    x = dl.zeros(3)
    assert x.index_add_(0, dl.tensor([0, 0, 2]), dl.ones(3)) is x and x.tolist() == [2.0, 0.0, 1.0]
    x.index_fill_(0, dl.tensor([1]), 5.0).index_copy_(0, dl.tensor([2]), dl.tensor([7.0]))
    assert x.tolist() == [2.0, 5.0, 7.0]
    x.scatter_(0, dl.tensor([0]), dl.tensor([9.0])).scatter_add_(0, dl.tensor([1, 1]), dl.ones(2))
    assert x.tolist() == [9.0, 7.0, 7.0]
    x.scatter_(0, dl.tensor([2, 2]), 2.0, reduce="multiply").scatter_reduce_(
        0, dl.tensor([0]), dl.tensor([1.0]), "amin"
    )
    assert x.tolist() == [1.0, 7.0, 28.0]
    leaf = dl.ones(3, requires_grad=True)
    y = leaf * 1
    y.index_add_(0, dl.tensor([0, 0]), leaf[:2] * 3)
    y.sum().backward()
    assert leaf.grad.tolist() == [4.0, 4.0, 1.0]


def test_out():
    out = dl.zeros(3)
    assert dl.index_add(dl.zeros(3), 0, dl.tensor([1]), dl.ones(1), out=out) is out
    assert out.tolist() == [0.0, 1.0, 0.0]
    out = dl.zeros(0)
    dl.scatter_reduce(dl.ones(2), 0, dl.tensor([1, 1]), dl.tensor([2.0, 3.0]), "sum", out=out)
    assert out.tolist() == [1.0, 6.0]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.index_add(lib.ones(2, 3), 1, lib.tensor([0, 2, 0]), lib.ones(2, 2)),
        lambda lib: lib.index_add(lib.ones(2, 3), 1, lib.tensor([0, 2, 0]), lib.ones(3, 3)),
        lambda lib: lib.index_add(lib.ones(2, 3), 1, lib.tensor([[0, 2, 0]]), lib.ones(2, 3)),
        lambda lib: lib.index_add(lib.ones(2, 3), 1, lib.tensor([0.0, 2.0, 0.0]), lib.ones(2, 3)),
        lambda lib: lib.index_add(lib.ones(2, 3), 1, lib.tensor([5, 0, 0]), lib.ones(2, 3)),
        lambda lib: lib.index_add(lib.ones(2, 3), 1, lib.tensor([-1, 0, 0]), lib.ones(2, 3)),
        lambda lib: lib.index_add(
            lib.ones(2, 3), 1, lib.tensor([0, 2, 0]), lib.ones(2, 3, dtype=lib.float64)
        ),
        lambda lib: lib.index_fill(lib.ones(2, 3), 1, lib.tensor([0, 2]), lib.tensor([-1.0])),
        lambda lib: lib.scatter_reduce(
            lib.ones(4), 0, lib.tensor([0]), lib.tensor([1.0], dtype=lib.float64), "sum"
        ),
        lambda lib: lib.scatter(lib.ones(4), 0, lib.tensor([0]), lib.tensor([1.0], dtype=lib.float64)),
        lambda lib: lib.scatter_add(lib.ones(4), 0, lib.tensor([0]), lib.tensor([1.0], dtype=lib.float64)),
        lambda lib: lib.scatter(lib.ones(4), 0, lib.tensor([0, 0]), 2.0, reduce="mean"),
        lambda lib: lib.scatter_reduce(lib.ones(4), 0, lib.tensor([0]), lib.tensor([1.0]), "median"),
    ],
)
def test_errors_match_pytorch(fn):
    same_error(fn)


@pytest.mark.parametrize("reduce", [None, "sum", "amax"])
def test_src_larger_than_index(reduce):
    # PyTorch's own backward rejects this case, so only the finite-difference check runs
    rng = np.random.default_rng(1)
    x, src = (
        dl.tensor(rng.standard_normal((3, 2)), requires_grad=True),
        dl.tensor(rng.standard_normal((3, 3)), requires_grad=True),
    )
    index = dl.tensor([[0, 1], [2, 0]])  # no position written twice
    if reduce is None:
        assert dl.autograd.gradcheck(lambda x, src: dl.scatter(x, 0, index, src), (x, src))
    else:
        assert dl.autograd.gradcheck(lambda x, src: dl.scatter_reduce(x, 0, index, src, reduce), (x, src))
