import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.ops.parity import same_values


@pytest.mark.parametrize(
    "data,dtype",
    [
        (1.5, dl.float32),
        ([1.0, 2.0], dl.float32),
        ([1, 2.5], dl.float32),
        (3, dl.int64),
        ([[1, 2], [3, 4]], dl.int64),
        ([True, False], dl.bool),
        (np.array([1.0]), dl.float64),  # numpy arrays keep their dtype, as in PyTorch
        (np.array([1], dtype=np.int32), dl.int32),
        (np.float64(2.0), dl.float64),
    ],
)
def test_tensor_infers_pytorch_dtypes(data, dtype):
    assert dl.tensor(data).dtype == dtype


def test_tensor_copies_and_as_tensor_from_numpy_share():
    array = np.zeros(3, dtype=np.float32)
    copied, shared, from_np = dl.tensor(array), dl.as_tensor(array), dl.from_numpy(array)
    array[0] = 1.0
    assert copied.tolist() == [0.0, 0.0, 0.0]
    assert shared.tolist() == from_np.tolist() == [1.0, 0.0, 0.0]
    from_np[1] = 2.0  # writes through the tensor reach the array too
    assert array[1] == 2.0
    assert dl.as_tensor(array, dtype=dl.float64).dtype == dl.float64
    assert dl.as_tensor(shared) is shared


def test_tensor_options():
    x = dl.tensor([1, 2], dtype=dl.float64, requires_grad=True)
    assert x.dtype == dl.float64 and x.requires_grad and x.is_leaf
    assert dl.tensor([1.0], dtype=float).dtype == dl.float32
    assert dl.tensor([1.0], dtype="float16").dtype == dl.float16
    assert dl.tensor(dl.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    assert dl.tensor([dl.tensor(1.0), dl.tensor(2.0)]).tolist() == [1.0, 2.0]


def test_from_numpy_rejects_other_types():
    with pytest.raises(TypeError, match="expected np.ndarray"):
        dl.from_numpy([1, 2])


def test_filled_factories():
    assert dl.zeros(2, 3).shape == dl.zeros((2, 3)).shape == dl.zeros([2, 3]).shape == (2, 3)
    assert dl.zeros(2).dtype == dl.ones(2).dtype == dl.empty(2).dtype == dl.float32
    assert dl.ones(2, dtype=dl.int64).tolist() == [1, 1]
    assert dl.empty(2, 2).shape == (2, 2)
    assert dl.full((2,), 3).dtype == dl.int64 and dl.full((2,), 3.0).dtype == dl.float32
    assert dl.full((2, 1), True).tolist() == [[True], [True]]
    assert dl.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert dl.eye(2, 3).shape == (2, 3) and dl.eye(2, dtype=dl.int64).dtype == dl.int64
    assert dl.zeros(2, requires_grad=True).requires_grad


def test_ranges():
    assert dl.arange(4).tolist() == [0, 1, 2, 3] and dl.arange(4).dtype == dl.int64
    assert dl.arange(1, 2, 0.25).tolist() == [1.0, 1.25, 1.5, 1.75]
    assert dl.arange(1, 2, 0.25).dtype == dl.float32
    assert dl.arange(5, 0, -2).tolist() == [5, 3, 1]
    assert dl.arange(3, dtype=dl.float64).dtype == dl.float64
    assert dl.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert dl.linspace(0, 1, 5).dtype == dl.float32


def test_like_factories_keep_shape_and_dtype():
    x = dl.ones(2, 3, dtype=dl.float64)
    for fn in (dl.zeros_like, dl.ones_like, dl.empty_like, dl.rand_like, dl.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == dl.float64, fn.__name__
    assert dl.zeros_like(x, dtype=dl.int32).dtype == dl.int32
    assert dl.full_like(x, 7).tolist() == [[7.0] * 3] * 2
    assert dl.ones_like(x).sum().item() == 6.0
    assert dl.randint_like(x, 3).dtype == dl.float64
    assert ((dl.randint_like(x, 3) >= 0) & (dl.randint_like(x, 3) < 3)).all()


def test_constant_like_factories_keep_the_memory_layout_as_pytorch_does():
    torch = pytest.importorskip("torch")
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for permutation in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        x, t = dl.from_numpy(values).permute(*permutation), torch.from_numpy(values).permute(*permutation)
        for ours, theirs in (
            (dl.zeros_like(x), torch.zeros_like(t)),
            (dl.full_like(x, 2), torch.full_like(t, 2)),
        ):
            assert tuple(s // 4 for s in ours.numpy().strides) == theirs.stride()
            assert ours.tolist() == theirs.tolist()


def test_random_factories_shapes_dtypes_and_ranges():
    assert dl.rand(2, 3).shape == (2, 3) and dl.rand(2).dtype == dl.float32
    u = dl.rand(1000)
    assert (u >= 0).all() and (u < 1).all()
    n = dl.randn(10000, dtype=dl.float64)
    assert n.dtype == dl.float64 and abs(n.mean().item()) < 0.05 and abs(n.std().item() - 1) < 0.05
    r = dl.randint(3, 7, (100,))
    assert r.dtype == dl.int64 and r.min().item() >= 3 and r.max().item() < 7
    assert dl.randint(5, (2, 2)).shape == (2, 2)
    assert sorted(dl.randperm(6).tolist()) == list(range(6)) and dl.randperm(3).dtype == dl.int64
    m = dl.normal(5.0, 0.1, (1000,))
    assert abs(m.mean().item() - 5.0) < 0.05 and m.dtype == dl.float32
    assert dl.normal(dl.zeros(2, 3), dl.ones(2, 3)).shape == (2, 3)
    assert dl.normal(0.0, dl.ones(4)).shape == (4,)


RANDOM_CALLS = [
    lambda g: dl.rand(3, generator=g),
    lambda g: dl.randn(3, generator=g),
    lambda g: dl.randint(0, 100, (3,), generator=g),
    lambda g: dl.randperm(10, generator=g),
    lambda g: dl.normal(0.0, 1.0, (3,), generator=g),
    lambda g: dl.ones(3).normal_(generator=g),
    lambda g: dl.ones(3).uniform_(-1, 1, generator=g),
    lambda g: dl.bernoulli(dl.full((8,), 0.5), generator=g),
    lambda g: dl.multinomial(dl.ones(5), 3, generator=g),
]


@pytest.mark.parametrize("draw", RANDOM_CALLS)
def test_every_random_function_takes_a_generator(draw):
    first = draw(dl.Generator().manual_seed(7))
    again = draw(dl.Generator().manual_seed(7))
    assert dl.equal(first, again)


def test_manual_seed_makes_the_default_generator_reproducible():
    dl.manual_seed(123)
    a = dl.randn(4)
    dl.manual_seed(123)
    assert dl.equal(a, dl.randn(4))
    assert not dl.equal(a, dl.randn(4))
    assert dl.initial_seed() == 123


def test_generator_state_round_trip():
    g = dl.Generator().manual_seed(3)
    dl.randn(5, generator=g)
    state = g.get_state()
    assert isinstance(state, dl.Tensor) and state.dtype == dl.uint8
    expected = dl.randn(5, generator=g)
    other = dl.Generator().set_state(state)  # a state moves between generators
    assert dl.equal(dl.randn(5, generator=other), expected)
    g.set_state(state)
    assert dl.equal(dl.randn(5, generator=g), expected)
    assert g.initial_seed() == 3


def test_global_rng_state_round_trip():
    state = dl.get_rng_state()
    expected = dl.rand(3)
    dl.set_rng_state(state)
    assert dl.equal(dl.rand(3), expected)


def test_generators_are_independent():
    g1, g2 = dl.Generator().manual_seed(1), dl.Generator().manual_seed(1)
    a = dl.randn(3, generator=g1)
    dl.randn(100)  # the default generator does not disturb g2
    assert dl.equal(dl.randn(3, generator=g2), a)


def test_size_given_as_a_keyword_tuple_or_list():
    for fn in (dl.zeros, dl.ones, dl.empty, dl.rand, dl.randn):
        assert fn(size=(2, 3)).shape == fn([2, 3]).shape == fn(2, 3).shape == (2, 3), fn.__name__
    assert dl.ones(dl.tensor(2)).shape == (2,)
    assert dl.full(size=(2,), fill_value=1.5).tolist() == [1.5, 1.5]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.logspace(0, 2, 3),
        lambda lib: lib.logspace(-1, 1, 5, base=2),
        lambda lib: lib.logspace(0, 2, 3, dtype=lib.int64),
        lambda lib: lib.logspace(0.5, 3, 4, dtype=lib.float64),
        lambda lib: lib.logspace(0, 2, 1),
        lambda lib: lib.logspace(0, 2, 0),
        lambda lib: lib.logspace(lib.tensor(0), lib.tensor(2.0), 3),
        lambda lib: lib.logspace(0, 1, 2, out=lib.zeros(2, dtype=lib.float64)),
        lambda lib: lib.empty_strided((2, 3), (1, 2)).shape,
        lambda lib: lib.ones(2, dtype=lib.float64).new_zeros(3),
        lambda lib: lib.ones(2, 3).new_zeros((2, 1)),
        lambda lib: lib.ones(2, 3).new_zeros(size=(2, 1)),
        lambda lib: lib.ones(2).new_ones(2, dtype=lib.int32),
        lambda lib: lib.ones(2).new_empty((2,)).shape,
        lambda lib: lib.ones(2, dtype=lib.int64).new_full((2,), 2.7),
        lambda lib: lib.ones(2, dtype=lib.int64).new_tensor([1.5, 2.5]),
        lambda lib: lib.ones(2, dtype=lib.float64).new_tensor([[1, 2]]),
    ],
)
def test_factories_match_pytorch(fn):
    same_values(fn)


def test_new_factories_keep_dtype_and_set_requires_grad():
    x = dl.ones(2, dtype=dl.float64, requires_grad=True)
    assert not x.new_zeros(2).requires_grad
    assert x.new_tensor([1.0], requires_grad=True).requires_grad
    assert x.new_full((1,), 3, dtype=dl.int32).dtype == dl.int32


RANDINT_FORMS = [
    (lambda lib: lib.randint(10, (3,)), (3,)),
    (lambda lib: lib.randint(10, size=(3,)), (3,)),
    (lambda lib: lib.randint(high=10, size=(3,)), (3,)),
    (lambda lib: lib.randint(low=2, high=10, size=(3, 1)), (3, 1)),
    (lambda lib: lib.randint(2, 10, (3,)), (3,)),
    (lambda lib: lib.randint(5, [2, 2]), (2, 2)),
    (lambda lib: lib.randint(5, ()), ()),
]


@pytest.mark.parametrize("draw,shape", RANDINT_FORMS)
def test_every_randint_overload(draw, shape):
    torch = pytest.importorskip("torch")
    ours, theirs = draw(dl), draw(torch)
    assert ours.shape == tuple(theirs.shape) == shape and ours.dtype == dl.int64
    assert (ours >= 0).all() and (ours < 10).all()


def test_randint_options_and_out():
    assert dl.randint(5, (2,), dtype=dl.float32).dtype == dl.float32
    assert dl.randint(5, (2,), dtype=dl.float32, requires_grad=True).requires_grad
    out = dl.zeros(0, dtype=dl.int64)
    assert dl.randint(3, 4, (5,), out=out) is out and out.tolist() == [3] * 5
    assert dl.randint_like(dl.zeros(2, 2), high=1).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert dl.randint_like(dl.zeros(3), 4, 5).tolist() == [4.0, 4.0, 4.0]


@pytest.mark.parametrize(
    "fn",
    [
        lambda lib: lib.randint(10),
        lambda lib: lib.randint(5, 2, (3,)),
        lambda lib: lib.randint(5, 5, (3,)),
        lambda lib: lib.randint(5, (2,), requires_grad=True),
        lambda lib: lib.logspace(0, 2, -1),
        lambda lib: lib.empty_strided((2, 3), (1,)),
        lambda lib: lib.zeros(),
        lambda lib: lib.ones(2, -1),
    ],
)
def test_factory_errors(fn):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as expected:
        fn(torch)
    with pytest.raises(expected.type):
        fn(dl)
