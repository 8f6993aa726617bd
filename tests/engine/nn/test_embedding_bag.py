import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.nn.layer_check import check_layer
from tests.op_check import check_op

rng = np.random.default_rng(0)
# bags [1, 2], [] and [4, 5, 4] (a repeat), [3, 2, 9]
INDICES = np.array([1, 2, 4, 5, 4, 3, 2, 9])
OFFSETS = np.array([0, 2, 2, 5])
WEIGHTS_SHAPE = (10, 3)

BAGS = [
    dict(mode="sum"),
    dict(mode="mean"),
    dict(mode="max"),
    dict(mode="sum", padding_idx=2),
    dict(mode="mean", padding_idx=4),
    dict(mode="max", padding_idx=-8),
    dict(mode="mean", include_last_offset=True, offsets=[0, 2, 2, 5, 8]),
]


@pytest.mark.parametrize("options", BAGS, ids=[str(o) for o in BAGS])
def test_embedding_bag_matches_pytorch(options):
    kwargs = dict(options)
    offsets = np.array(kwargs.pop("offsets", OFFSETS))
    check_op(
        lambda lib, w: lib.nn.functional.embedding_bag(lib.tensor(INDICES), w, lib.tensor(offsets), **kwargs),
        WEIGHTS_SHAPE,
    )


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_of_fixed_length_rows(mode):
    check_op(
        lambda lib, w: lib.nn.functional.embedding_bag(lib.tensor(INDICES.reshape(2, 4)), w, mode=mode),
        WEIGHTS_SHAPE,
    )


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_scale_grad_by_freq_divides_by_each_index_count(mode):
    # The documented gradient, that of embedding(..., scale_grad_by_freq=True) summed over bags.
    # NOTE: PyTorch's CPU embedding_bag (2.13) divides some rows by another index's count.
    torch = pytest.importorskip("torch")
    weight = rng.standard_normal(WEIGHTS_SHAPE)
    ours, ref = dl.tensor(weight, requires_grad=True), torch.tensor(weight, requires_grad=True)
    upstream = rng.standard_normal((len(OFFSETS), WEIGHTS_SHAPE[1]))
    y = dl.nn.functional.embedding_bag(
        dl.tensor(INDICES), ours, dl.tensor(OFFSETS), mode=mode, scale_grad_by_freq=True
    )
    rows = torch.nn.functional.embedding(torch.tensor(INDICES), ref, scale_grad_by_freq=True)
    bags = torch.tensor(np.searchsorted(OFFSETS, np.arange(len(INDICES)), side="right") - 1)
    y_ref = torch.zeros(len(OFFSETS), WEIGHTS_SHAPE[1], dtype=torch.float64).index_add(0, bags, rows)
    if mode == "mean":
        y_ref = y_ref / torch.bincount(bags, minlength=len(OFFSETS)).clamp(min=1)[:, None]
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), rtol=1e-12)
    (y * dl.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-12)


def test_embedding_bag_per_sample_weights():
    def fn(lib, w, scale):
        return lib.nn.functional.embedding_bag(
            lib.tensor(INDICES), w, lib.tensor(OFFSETS), mode="sum", per_sample_weights=scale, padding_idx=5
        )

    check_op(fn, WEIGHTS_SHAPE, INDICES.shape)
    check_op(
        lambda lib, w, scale: lib.nn.functional.embedding_bag(
            lib.tensor(INDICES.reshape(4, 2)), w, mode="sum", per_sample_weights=scale
        ),
        WEIGHTS_SHAPE,
        (4, 2),
    )


def test_embedding_bag_layer_matches_pytorch():
    indices, offsets = INDICES, OFFSETS
    check_layer(lambda lib: lib.nn.EmbeddingBag(10, 3, mode="max"), arrays=[indices, offsets])
    check_layer(lambda lib: lib.nn.EmbeddingBag(10, 3, padding_idx=9), arrays=[indices, offsets])
    check_layer(
        lambda lib: lib.nn.EmbeddingBag(10, 3, mode="sum", include_last_offset=True),
        arrays=[indices, np.array([0, 2, 2, 5, 8])],
    )
    per_sample = rng.uniform(0.5, 2.0, INDICES.shape)
    check_layer(lambda lib: lib.nn.EmbeddingBag(10, 3, mode="sum"), arrays=[indices, offsets, per_sample])


def test_embedding_bag_init_repr_and_from_pretrained():
    torch = pytest.importorskip("torch")
    bag = nn.EmbeddingBag(100, 4, padding_idx=-2)
    weight = bag.weight.detach().numpy()
    assert bag.padding_idx == 98 and not weight[98].any() and weight.std() > 0.5
    makers = [
        lambda lib: lib.nn.EmbeddingBag(5, 3),
        lambda lib: lib.nn.EmbeddingBag(
            5, 3, max_norm=1.0, norm_type=1.0, scale_grad_by_freq=True, mode="max", padding_idx=1
        ),
    ]
    for make in makers:
        assert repr(make(dl)) == repr(make(torch))
    weight = rng.standard_normal((6, 2)) * 3
    ours = nn.EmbeddingBag.from_pretrained(dl.tensor(weight), max_norm=1.5, mode="sum")
    ref = torch.nn.EmbeddingBag.from_pretrained(torch.tensor(weight), max_norm=1.5, mode="sum")
    assert (
        not ours.weight.requires_grad
        and nn.EmbeddingBag.from_pretrained(dl.tensor(weight), freeze=False).weight.requires_grad
    )
    out = ours(dl.tensor([0, 1, 3, 1]), dl.tensor([0, 3]))
    np.testing.assert_allclose(
        out.numpy(), ref(torch.tensor([0, 1, 3, 1]), torch.tensor([0, 3])).numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(
        ours.weight.detach().numpy(), ref.weight.detach().numpy(), rtol=1e-6
    )  # renormed alike
    assert nn.EmbeddingBag(5, 3)(dl.tensor([], dtype=dl.int64), dl.tensor([], dtype=dl.int64)).shape == (0, 3)


def test_embedding_bag_errors_read_like_pytorch():
    F = dl.nn.functional
    weight, indices, offsets = dl.randn(6, 2), dl.tensor([1, 2, 4, 5]), dl.tensor([0, 2])
    with pytest.raises(ValueError, match="offsets has to be a 1D Tensor but got None"):
        F.embedding_bag(indices, weight)
    with pytest.raises(ValueError, match="if input is 2D, then offsets has to be None"):
        F.embedding_bag(indices.reshape(2, 2), weight, offsets)
    with pytest.raises(ValueError, match="input has to be 1D or 2D Tensor, but got Tensor of dimension 3"):
        F.embedding_bag(indices.reshape(1, 2, 2), weight)
    with pytest.raises(ValueError, match="mode has to be one of sum, mean or max"):
        F.embedding_bag(indices, weight, offsets, mode="foo")
    with pytest.raises(NotImplementedError, match="per_sample_weights is only supported for mode='sum'"):
        F.embedding_bag(indices, weight, offsets, per_sample_weights=dl.ones(4))
    with pytest.raises(ValueError, match="then it must have the same shape as the input"):
        F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=dl.ones(3))
    with pytest.raises(RuntimeError, match="offsets\\[0\\] has to be 0"):
        F.embedding_bag(indices, weight, dl.tensor([1, 2]))
    with pytest.raises(
        RuntimeError,
        match="offsets\\[-1\\] can not be greater than input's length 4 but got offsets\\[-1\\] of 5",
    ):
        F.embedding_bag(indices, weight, dl.tensor([0, 5]))
    with pytest.raises(
        RuntimeError, match="Index 1 of input takes value 6 which is not in the valid range \\[0, 6\\)"
    ):
        F.embedding_bag(dl.tensor([1, 6, 7]), weight, dl.tensor([0]))
    with pytest.raises(
        RuntimeError, match="padding_idx must be within the number of embeddings, -6 through 5, but got 6"
    ):
        F.embedding_bag(indices, weight, offsets, padding_idx=6)
    with pytest.raises(ValueError, match="max mode does not support scaling the gradient by the frequency"):
        F.embedding_bag(indices, weight, offsets, mode="max", scale_grad_by_freq=True)
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        nn.EmbeddingBag(5, 2, padding_idx=5)
