import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.op_check import check_op

REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)
LABELS = rng.integers(0, 5, (6,))
LABELS_2D = rng.integers(0, 4, (3, 2, 2))
WEIGHT = rng.uniform(0.5, 2.0, 5)
ELEMENT_WEIGHT = rng.uniform(0.0, 2.0, (4, 3))


def _labels(lib, values):
    return lib.tensor(values)


CROSS_ENTROPY = [
    dict(),
    dict(weight=True),
    dict(ignore_index=2),
    dict(weight=True, ignore_index=1),
    dict(label_smoothing=0.2),
    dict(weight=True, label_smoothing=0.1, ignore_index=3),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", CROSS_ENTROPY, ids=[str(o) for o in CROSS_ENTROPY])
def test_cross_entropy_class_indices(options, reduction):
    def fn(lib, x):
        kwargs = dict(options, reduction=reduction)
        if kwargs.pop("weight", False):
            kwargs["weight"] = lib.tensor(WEIGHT, dtype=lib.float64)
        return lib.nn.functional.cross_entropy(x, lib.tensor(LABELS), **kwargs)

    check_op(fn, (6, 5), low=-3, high=3)


@pytest.mark.parametrize("ignore_index", [-100, 2, 4])
def test_cross_entropy_ignore_index_absent_from_targets(ignore_index):
    # 2 lies between the smallest and largest target, 4 above them: both ways of building the rows
    check_op(
        lambda lib, x: lib.nn.functional.cross_entropy(
            x, lib.tensor([0, 1, 3, 3]), ignore_index=ignore_index
        ),
        (4, 5),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spatial_targets_and_1d_input(reduction):
    check_op(
        lambda lib, x: lib.nn.functional.cross_entropy(
            x, lib.tensor(LABELS_2D), reduction=reduction, ignore_index=0, label_smoothing=0.1
        ),
        (3, 4, 2, 2),
    )
    check_op(lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(3), reduction=reduction), (5,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "options", [dict(), dict(weight=True), dict(label_smoothing=0.3), dict(weight=True, label_smoothing=0.1)]
)
def test_cross_entropy_probability_targets_with_target_gradient(options, reduction):
    def fn(lib, x, t):
        kwargs = dict(options, reduction=reduction)
        if kwargs.pop("weight", False):
            kwargs["weight"] = lib.tensor(WEIGHT[:4], dtype=lib.float64)
        return lib.nn.functional.cross_entropy(x, t.softmax(dim=1), **kwargs)

    check_op(fn, (3, 4), (3, 4))


def test_cross_entropy_is_stable_for_huge_logits():
    x = dl.tensor([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 0.0]], requires_grad=True)
    loss = nn.CrossEntropyLoss()(x, dl.tensor([0, 0]))
    loss.backward()
    assert np.isclose(loss.item(), 5e4, rtol=1e-6)
    assert dl.isfinite(x.grad).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "options", [dict(), dict(weight=True), dict(ignore_index=4), dict(weight=True, ignore_index=0)]
)
def test_nll_loss(options, reduction):
    def fn(lib, x):
        kwargs = dict(options, reduction=reduction)
        if kwargs.pop("weight", False):
            kwargs["weight"] = lib.tensor(WEIGHT, dtype=lib.float64)
        return lib.nn.functional.nll_loss(x.log_softmax(dim=1), lib.tensor(LABELS), **kwargs)

    check_op(fn, (6, 5))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    target = rng.uniform(0, 1, (4, 3))
    weight = rng.uniform(0.5, 2, (4, 3))

    def fn(lib, x):
        w = lib.tensor(weight) if weighted else None
        return lib.nn.functional.binary_cross_entropy(x, lib.tensor(target), weight=w, reduction=reduction)

    check_op(fn, (4, 3), low=0.05, high=0.95)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "options", [dict(), dict(weight=True), dict(pos_weight=True), dict(weight=True, pos_weight=True)]
)
def test_binary_cross_entropy_with_logits(options, reduction):
    target = rng.integers(0, 2, (4, 3)).astype(float)

    def fn(lib, x):
        kwargs = dict(reduction=reduction)
        if options.get("weight"):
            kwargs["weight"] = lib.tensor([0.5, 1.0, 2.0], dtype=lib.float64)
        if options.get("pos_weight"):
            kwargs["pos_weight"] = lib.tensor([3.0, 0.5, 1.0], dtype=lib.float64)
        return lib.nn.functional.binary_cross_entropy_with_logits(x, lib.tensor(target), **kwargs)

    check_op(fn, (4, 3), low=-4, high=4)


REGRESSION = [
    ("mse", lambda lib, x, y, r: lib.nn.functional.mse_loss(x, y, reduction=r)),
    ("l1", lambda lib, x, y, r: lib.nn.functional.l1_loss(x, y, reduction=r)),
    ("smooth_l1", lambda lib, x, y, r: lib.nn.functional.smooth_l1_loss(x, y, reduction=r, beta=0.5)),
    ("smooth_l1_beta0", lambda lib, x, y, r: lib.nn.functional.smooth_l1_loss(x, y, reduction=r, beta=0.0)),
    ("huber", lambda lib, x, y, r: lib.nn.functional.huber_loss(x, y, reduction=r, delta=0.7)),
    (
        "mse_weighted",
        lambda lib, x, y, r: lib.nn.functional.mse_loss(x, y, reduction=r, weight=lib.tensor(ELEMENT_WEIGHT)),
    ),
    (
        "l1_weighted",
        lambda lib, x, y, r: lib.nn.functional.l1_loss(x, y, reduction=r, weight=lib.tensor(ELEMENT_WEIGHT)),
    ),
    (
        "huber_weighted",
        lambda lib, x, y, r: lib.nn.functional.huber_loss(
            x, y, reduction=r, weight=lib.tensor(ELEMENT_WEIGHT)
        ),
    ),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn", REGRESSION, ids=[r[0] for r in REGRESSION])
def test_regression_losses(name, fn, reduction):
    check_op(lambda lib, x, y: fn(lib, x, y, reduction), (4, 3), (4, 3))


@pytest.mark.parametrize("reduction", ["sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    def fn(lib, x, t):
        target = t.log_softmax(dim=1) if log_target else t.softmax(dim=1)
        return lib.nn.functional.kl_div(
            x.log_softmax(dim=1), target, reduction=reduction, log_target=log_target
        )

    check_op(fn, (3, 4), (3, 4))


def test_kl_div_mean_warns_like_pytorch_and_handles_zero_targets():
    x = dl.randn(2, 3).log_softmax(dim=1)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        dl.nn.functional.kl_div(x, dl.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]))
    t = dl.tensor([[0.0, 1.0]], requires_grad=True)
    dl.nn.functional.kl_div(dl.tensor([[-1.0, -0.5]]), t, reduction="sum").backward()
    assert dl.isfinite(t.grad).all()


def test_loss_modules_match_functional_and_keep_weights_as_buffers():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 5))
    pairs = [
        (
            lambda lib: lib.nn.CrossEntropyLoss(
                weight=lib.tensor(WEIGHT), ignore_index=1, label_smoothing=0.1
            ),
            lambda lib: lib.tensor(LABELS),
        ),
        (lambda lib: lib.nn.NLLLoss(reduction="sum"), lambda lib: lib.tensor(LABELS)),
        (lambda lib: lib.nn.MSELoss(), lambda lib: lib.tensor(x[::-1].copy())),
        (lambda lib: lib.nn.L1Loss(reduction="none"), lambda lib: lib.tensor(x[::-1].copy())),
        (lambda lib: lib.nn.SmoothL1Loss(beta=0.3), lambda lib: lib.tensor(x[::-1].copy())),
        (lambda lib: lib.nn.HuberLoss(delta=2.0), lambda lib: lib.tensor(x[::-1].copy())),
        (
            lambda lib: lib.nn.BCEWithLogitsLoss(pos_weight=lib.ones(5) * 2),
            lambda lib: lib.tensor((x > 0).astype(float)),
        ),
        (
            lambda lib: lib.nn.KLDivLoss(reduction="batchmean", log_target=True),
            lambda lib: lib.tensor(x[::-1].copy()).log_softmax(1),
        ),
    ]
    for make, target in pairs:
        ours = make(dl)(dl.tensor(x), target(dl))
        ref = make(torch)(torch.tensor(x), target(torch))
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-6)
        assert repr(make(dl)) == repr(make(torch))
    probs = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(
        nn.BCELoss()(dl.tensor(probs), dl.tensor(probs[::-1].copy())).item(),
        torch.nn.BCELoss()(torch.tensor(probs), torch.tensor(probs[::-1].copy())).item(),
    )
    assert list(nn.CrossEntropyLoss(weight=dl.ones(3)).state_dict()) == ["weight"]


def test_loss_float32_results():
    x = dl.randn(4, 3, requires_grad=True)
    for loss in (
        nn.CrossEntropyLoss(label_smoothing=0.1)(x, dl.tensor([0, 1, 2, 1])),
        nn.MSELoss()(x, dl.zeros(4, 3)),
        nn.BCEWithLogitsLoss()(x, dl.ones(4, 3)),
        nn.SmoothL1Loss()(x, dl.zeros(4, 3)),
    ):
        loss.backward()
        assert loss.dtype == dl.float32 and x.grad.dtype == dl.float32


def test_loss_errors_read_like_pytorch():
    x = dl.randn(4, 3)
    with pytest.raises(IndexError, match="Target 7 is out of bounds."):
        dl.nn.functional.cross_entropy(x, dl.tensor([0, 7, 1, 2]))
    with pytest.raises(RuntimeError, match=r"Expected target size \(4,\), got \(3,\)"):
        dl.nn.functional.cross_entropy(x, dl.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="sums is not a valid value for reduction"):
        dl.nn.functional.cross_entropy(x, dl.tensor([0, 1, 2, 1]), reduction="sums")
    with pytest.raises(ValueError, match="must be the same as input size"):
        dl.nn.functional.binary_cross_entropy_with_logits(x, dl.ones(4))
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        dl.nn.functional.binary_cross_entropy(x, dl.ones(4, 3))
    with pytest.warns(UserWarning, match="different to the input size"):
        dl.nn.functional.mse_loss(x, dl.ones(3))
    with pytest.warns(UserWarning, match="please use reduction='sum' instead"):
        nn.MSELoss(size_average=False)


def test_one_hot_matches_pytorch():
    torch = pytest.importorskip("torch")
    labels = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(
        dl.nn.functional.one_hot(dl.tensor(labels)).numpy(),
        torch.nn.functional.one_hot(torch.tensor(labels)).numpy(),
    )
    assert dl.nn.functional.one_hot(dl.tensor([1]), 4).dtype == dl.int64
    with pytest.raises(RuntimeError, match="Class values must be smaller than num_classes."):
        dl.nn.functional.one_hot(dl.tensor([5]), 3)


COUNTS = np.array([[0.0, 1.0, 2.0], [5.0, 0.0, 3.0], [1.0, 7.0, 4.0], [2.0, 2.0, 0.0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll_loss(log_input, full, reduction):
    def fn(lib, x):
        return lib.nn.functional.poisson_nll_loss(
            x, lib.tensor(COUNTS), log_input=log_input, full=full, reduction=reduction
        )

    check_op(fn, (4, 3), low=0.1 if not log_input else -2.0, high=3.0)


def test_poisson_nll_loss_target_gradient_and_eps():
    # targets above 1, where the Stirling term depends on them
    check_op(
        lambda lib, x, t: lib.nn.functional.poisson_nll_loss(x, t, full=True),
        (4, 3),
        (4, 3),
        low=1.5,
        high=4.0,
    )
    check_op(
        lambda lib, x: lib.nn.functional.poisson_nll_loss(x, lib.tensor(COUNTS), log_input=False, eps=0.5),
        (4, 3),
        low=0.1,
        high=2.0,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(4, 3), (4,), (4, 1), (1, 3)], ids=str)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_loss(var_shape, full, reduction):
    def fn(lib, x, t, var):
        return lib.nn.functional.gaussian_nll_loss(x, t, var, full=full, reduction=reduction)

    arrays = [rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.uniform(0.2, 2.0, var_shape)]
    check_op(fn, arrays=arrays)


def test_gaussian_nll_loss_float_var_and_clamped_variance_match_pytorch():
    torch = pytest.importorskip("torch")
    check_op(
        lambda lib, x, t: lib.nn.functional.gaussian_nll_loss(x, t, 0.7, reduction="sum"), (4, 3), (4, 3)
    )
    # a variance below eps is clamped outside autograd: its gradient is taken at eps, as in PyTorch
    x, t, var = (
        rng.standard_normal((2, 3)),
        rng.standard_normal((2, 3)),
        np.array([[1e-9, 0.5, 0.0], [2.0, 1e-7, 1.0]]),
    )
    ours, ref = dl.tensor(var, requires_grad=True), torch.tensor(var, requires_grad=True)
    loss = nn.GaussianNLLLoss(eps=1e-6)(dl.tensor(x), dl.tensor(t), ours)
    torch_loss = torch.nn.GaussianNLLLoss(eps=1e-6)(torch.tensor(x), torch.tensor(t), ref)
    loss.backward()
    torch_loss.backward()
    np.testing.assert_allclose(loss.item(), torch_loss.item(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), rtol=1e-12)


def test_likelihood_losses_modules_and_errors():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 3))
    for make in (
        lambda lib: lib.nn.PoissonNLLLoss(log_input=False, full=True, eps=1e-3, reduction="sum"),
        lambda lib: lib.nn.PoissonNLLLoss(),
    ):
        ours = make(dl)(dl.tensor(np.abs(x)), dl.tensor(COUNTS))
        np.testing.assert_allclose(
            ours.numpy(), make(torch)(torch.tensor(np.abs(x)), torch.tensor(COUNTS)).numpy(), rtol=1e-12
        )
        assert repr(make(dl)) == repr(make(torch))
    make = lambda lib: lib.nn.GaussianNLLLoss(full=True, reduction="none")  # noqa: E731
    var = np.abs(x[:, :1])
    ours = make(dl)(dl.tensor(x), dl.tensor(COUNTS), dl.tensor(var))
    np.testing.assert_allclose(
        ours.numpy(),
        make(torch)(torch.tensor(x), torch.tensor(COUNTS), torch.tensor(var)).numpy(),
        rtol=1e-12,
    )
    F = dl.nn.functional
    with pytest.raises(ValueError, match="x is not a valid value for reduction"):
        F.poisson_nll_loss(dl.tensor(x), dl.tensor(COUNTS), reduction="x")
    with pytest.raises(ValueError, match="var is of incorrect size"):
        F.gaussian_nll_loss(dl.tensor(x), dl.tensor(x), dl.ones(4, 3, 1))
    with pytest.raises(ValueError, match="var has negative entry/entries"):
        F.gaussian_nll_loss(dl.tensor(x), dl.tensor(x), -dl.ones(4))
    with pytest.raises(ValueError, match="var has negative entry/entries"):
        F.gaussian_nll_loss(dl.tensor(x), dl.tensor(x), -1.0)
    with pytest.raises(ValueError, match="x is not valid"):
        F.gaussian_nll_loss(dl.tensor(x), dl.tensor(x), dl.ones(4), reduction="x")
