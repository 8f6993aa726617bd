import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.op_check import check_op

REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)
SIGNS = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
CLASSES = np.array([0, 3, 1, 2, 3, 0])
MULTI_LABELS = rng.integers(0, 2, (6, 4)).astype(float)
CLASS_WEIGHT = np.array([0.5, 1.0, 2.0, 1.5])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_loss(margin, reduction):
    def fn(lib, x1, x2):
        return lib.nn.functional.cosine_embedding_loss(
            x1, x2, lib.tensor(SIGNS), margin=margin, reduction=reduction
        )

    check_op(fn, (6, 4), (6, 4))
    check_op(
        lambda lib, x1, x2: lib.nn.functional.cosine_embedding_loss(
            x1, x2, lib.tensor(-1.0), margin=-0.5, reduction=reduction
        ),
        (4,),
        (4,),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_loss(margin, reduction):
    def fn(lib, x1, x2):
        return lib.nn.functional.margin_ranking_loss(
            x1, x2, lib.tensor(SIGNS), margin=margin, reduction=reduction
        )

    check_op(fn, (6,), (6,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.4])
def test_hinge_embedding_loss(margin, reduction):
    target = np.sign(rng.standard_normal((6, 3)))
    check_op(
        lambda lib, x: lib.nn.functional.hinge_embedding_loss(
            x, lib.tensor(target), margin=margin, reduction=reduction
        ),
        (6, 3),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_loss(reduction):
    target = np.sign(rng.standard_normal((6, 3)))
    check_op(
        lambda lib, x: lib.nn.functional.soft_margin_loss(x, lib.tensor(target), reduction=reduction),
        (6, 3),
        low=-5,
        high=5,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_multilabel_soft_margin_loss(weighted, reduction):
    def fn(lib, x):
        weight = lib.tensor(CLASS_WEIGHT) if weighted else None
        return lib.nn.functional.multilabel_soft_margin_loss(
            x, lib.tensor(MULTI_LABELS), weight=weight, reduction=reduction
        )

    check_op(fn, (6, 4), low=-4, high=4)
    check_op(
        lambda lib, x, t: lib.nn.functional.multilabel_soft_margin_loss(x, t, reduction=reduction),
        (2, 3, 4),
        (2, 3, 4),
        low=0,
        high=1,
    )


MULTI_MARGIN = [dict(), dict(p=2), dict(margin=0.6), dict(weight=True), dict(p=2, margin=1.5, weight=True)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", MULTI_MARGIN, ids=[str(o) for o in MULTI_MARGIN])
def test_multi_margin_loss(options, reduction):
    def fn(lib, x):
        kwargs = dict(options, reduction=reduction)
        if kwargs.pop("weight", False):
            kwargs["weight"] = lib.tensor(CLASS_WEIGHT)
        return lib.nn.functional.multi_margin_loss(x, lib.tensor(CLASSES), **kwargs)

    check_op(fn, (6, 4))
    check_op(lambda lib, x: lib.nn.functional.multi_margin_loss(x, lib.tensor(2), reduction=reduction), (4,))


TRIPLET = [dict(), dict(p=1), dict(p=3.0, eps=1e-3), dict(swap=True), dict(margin=0.5, swap=True, p=1)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", TRIPLET, ids=[str(o) for o in TRIPLET])
def test_triplet_margin_loss(options, reduction):
    def fn(lib, anchor, positive, negative):
        return lib.nn.functional.triplet_margin_loss(
            anchor, positive, negative, reduction=reduction, **options
        )

    check_op(fn, (5, 4), (5, 4), (5, 4))


def test_triplet_margin_loss_of_single_vectors():
    check_op(
        lambda lib, a, p, n: lib.nn.functional.triplet_margin_loss(a, p, n, margin=3.0, swap=True),
        (4,),
        (4,),
        (4,),
    )


def test_margin_loss_modules_match_pytorch():
    torch = pytest.importorskip("torch")
    x1, x2, x3 = (rng.standard_normal((6, 4)) for _ in range(3))
    cases = [
        (
            lambda lib: lib.nn.CosineEmbeddingLoss(margin=0.2),
            lambda lib: (lib.tensor(x1), lib.tensor(x2), lib.tensor(SIGNS)),
        ),
        (
            lambda lib: lib.nn.MarginRankingLoss(margin=0.1, reduction="sum"),
            lambda lib: (lib.tensor(x1[:, 0]), lib.tensor(x2[:, 0]), lib.tensor(SIGNS)),
        ),
        (
            lambda lib: lib.nn.HingeEmbeddingLoss(margin=2.0),
            lambda lib: (lib.tensor(x1), lib.tensor(np.sign(x2))),
        ),
        (
            lambda lib: lib.nn.SoftMarginLoss(reduction="none"),
            lambda lib: (lib.tensor(x1), lib.tensor(np.sign(x2))),
        ),
        (
            lambda lib: lib.nn.MultiLabelSoftMarginLoss(weight=lib.tensor(CLASS_WEIGHT)),
            lambda lib: (lib.tensor(x1), lib.tensor(MULTI_LABELS)),
        ),
        (
            lambda lib: lib.nn.MultiMarginLoss(p=2, margin=0.5, weight=lib.tensor(CLASS_WEIGHT)),
            lambda lib: (lib.tensor(x1), lib.tensor(CLASSES)),
        ),
        (
            lambda lib: lib.nn.TripletMarginLoss(margin=0.5, p=1.0, swap=True),
            lambda lib: (lib.tensor(x1), lib.tensor(x2), lib.tensor(x3)),
        ),
        (
            lambda lib: lib.nn.TripletMarginLoss(),
            lambda lib: (lib.tensor(x1), lib.tensor(x2), lib.tensor(x3)),
        ),
    ]
    for make, inputs in cases:
        np.testing.assert_allclose(
            make(dl)(*inputs(dl)).numpy(), make(torch)(*inputs(torch)).numpy(), rtol=1e-7
        )
        assert repr(make(dl)) == repr(make(torch))
    assert list(nn.MultiMarginLoss(weight=dl.ones(4)).state_dict()) == ["weight"]
    assert list(nn.MultiLabelSoftMarginLoss(weight=dl.ones(4)).state_dict()) == ["weight"]


def test_margin_losses_keep_float32():
    x = dl.randn(6, 4, requires_grad=True)
    losses = [
        nn.CosineEmbeddingLoss()(x, x.detach() + 1, dl.tensor(SIGNS, dtype=dl.float32)),
        nn.MultiMarginLoss()(x, dl.tensor(CLASSES)),
        nn.MultiLabelSoftMarginLoss()(x, dl.tensor(MULTI_LABELS, dtype=dl.float32)),
        nn.TripletMarginLoss()(x, x.detach() * 2, x.detach() + 1),
    ]
    for loss in losses:
        loss.backward()
        assert loss.dtype == dl.float32 and x.grad.dtype == dl.float32


def test_margin_loss_errors_read_like_pytorch():
    x = dl.randn(4, 3)
    F = dl.nn.functional
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected, multi-target not supported"):
        F.cosine_embedding_loss(x, x, dl.ones(4, 1))
    with pytest.raises(
        RuntimeError,
        match=r"1D target tensor expects 2D input tensors, but found inputs with sizes \[4\] and \[4\]",
    ):
        F.cosine_embedding_loss(x[:, 0], x[:, 1], dl.ones(4))
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.cosine_embedding_loss(x, x, dl.ones(4), reduction="foo")
    with pytest.raises(
        RuntimeError, match="margin_ranking_loss : All input tensors should have same dimension"
    ):
        F.margin_ranking_loss(x, x, dl.ones(4))
    with pytest.raises(ValueError, match="x is not valid"):
        F.multilabel_soft_margin_loss(x, dl.ones(4, 3), reduction="x")
    with pytest.raises(RuntimeError, match="target out of range"):
        F.multi_margin_loss(x, dl.tensor([0, 1, 2, 3]))
    with pytest.raises(RuntimeError, match=r"Expected target size \[4\], but got \[3\]"):
        F.multi_margin_loss(x, dl.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="only p == 1 and p == 2 supported"):
        F.multi_margin_loss(x, dl.tensor([0, 1, 2, 1]), p=3)
    with pytest.raises(ValueError, match="weight must be one-dimensional"):
        F.multi_margin_loss(x, dl.tensor([0, 1, 2, 1]), weight=dl.ones(3, 1))
    with pytest.raises(RuntimeError, match=r"inconsistent weight size, expected 3 but got \[4\]"):
        F.multi_margin_loss(x, dl.tensor([0, 1, 2, 1]), weight=dl.ones(4))
    with pytest.raises(RuntimeError, match="Expected non-empty vector or matrix"):
        F.multi_margin_loss(dl.randn(2, 3, 4), dl.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin must be greater than 0, got 0"):
        F.triplet_margin_loss(x, x, x, margin=0)
    with pytest.raises(RuntimeError, match="anchor 2D, positive 2D, and negative 1D inputs"):
        F.triplet_margin_loss(x, x, x[0])
    with pytest.raises(ValueError, match="TripletMarginLoss: expected margin to be greater than 0, got -1"):
        nn.TripletMarginLoss(margin=-1)
    with pytest.raises(
        ValueError, match="MultiMarginLoss: expected weight to be None or 1D tensor, got 2D instead"
    ):
        nn.MultiMarginLoss(weight=dl.ones(2, 2))
