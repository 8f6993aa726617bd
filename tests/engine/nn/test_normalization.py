import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.engine.nn.layer_check import check_layer, gradcheck_layer
from tests.op_check import check_op


def _steps(lib, layer, xs):
    """Three training steps (running stats move), then eval on the same input."""
    outs = [layer(x) for x in xs]
    layer.eval()
    outs.append(layer(xs[0]))
    return outs


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda lib: lib.nn.BatchNorm2d(3), (4, 3, 5, 5)),
        (lambda lib: lib.nn.BatchNorm2d(3, momentum=None), (4, 3, 5, 5)),
        (lambda lib: lib.nn.BatchNorm2d(3, affine=False, momentum=0.3), (4, 3, 5, 5)),
        (lambda lib: lib.nn.BatchNorm1d(3), (6, 3)),
        (lambda lib: lib.nn.BatchNorm1d(3, eps=1e-3), (6, 3, 7)),
    ],
)
def test_batch_norm_train_then_eval_matches_pytorch(make, shape):
    check_layer(make, shape, shape, shape, call=_steps)


def test_batch_norm_without_running_stats_uses_batch_stats_in_eval():
    check_layer(lambda lib: lib.nn.BatchNorm2d(3, track_running_stats=False), (4, 3, 5, 5), train=False)


def test_batch_norm_eval_with_trained_stats():
    layer, torch_layer = check_layer(lambda lib: lib.nn.BatchNorm2d(3), (4, 3, 5, 5))
    assert int(layer.num_batches_tracked) == 1
    layer.eval()
    x = dl.randn(2, 3, 4, 4, dtype=dl.float64)
    import torch

    torch_layer.eval()
    np.testing.assert_allclose(
        layer(x).detach().numpy(), torch_layer(torch.tensor(x.numpy())).detach().numpy(), atol=1e-10
    )


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda lib: lib.nn.LayerNorm(6), (3, 4, 6)),
        (lambda lib: lib.nn.LayerNorm((4, 6), eps=1e-3), (3, 4, 6)),
        (lambda lib: lib.nn.LayerNorm(6, elementwise_affine=False), (3, 6)),
        (lambda lib: lib.nn.LayerNorm(6, bias=False), (3, 6)),
        (lambda lib: lib.nn.GroupNorm(2, 6), (3, 6, 4, 4)),
        (lambda lib: lib.nn.GroupNorm(3, 6, affine=False), (3, 6, 5)),
        (lambda lib: lib.nn.GroupNorm(1, 4), (2, 4)),
    ],
)
def test_layer_and_group_norm_match_pytorch(make, shape):
    check_layer(make, shape)


@pytest.mark.parametrize(
    "layer,shape",
    [
        (nn.BatchNorm2d(2), (3, 2, 2, 2)),
        (nn.BatchNorm1d(2), (4, 2)),
        (nn.LayerNorm(3), (2, 3)),
        (nn.GroupNorm(2, 4), (2, 4, 3)),
    ],
)
def test_normalization_gradcheck(layer, shape):
    with dl.no_grad():
        for p in layer.parameters():
            p.copy_(dl.randn(*p.shape))
    gradcheck_layer(layer, shape)


def test_normalization_second_derivative():
    x = dl.randn(3, 2, 2, dtype=dl.float64, requires_grad=True)
    w = dl.randn(2, dtype=dl.float64, requires_grad=True)
    b = dl.randn(2, dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradgradcheck(
        lambda x, w: dl.nn.functional.batch_norm(x, None, None, w, None, True), (x, w)
    )
    assert dl.autograd.gradgradcheck(
        lambda x, w, b: dl.nn.functional.batch_norm(x, None, None, w, b, True), (x, w, b)
    )
    assert dl.autograd.gradgradcheck(lambda x: dl.nn.functional.layer_norm(x, (2,)), (x,))


@pytest.mark.parametrize("affine", ["weight", "bias", "both", "none"])
def test_functional_batch_norm_with_any_affine_part(affine):
    def fn(lib, x, w, b):
        weight = w if affine in ("weight", "both") else None
        bias = b if affine in ("bias", "both") else None
        return lib.nn.functional.batch_norm(x.permute(3, 0, 1, 2), None, None, weight, bias, True)

    check_op(fn, (3, 4, 4, 5), (3,), (3,))  # the input stored batch-innermost, as a conv output


def test_instance_norm_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    ours = dl.nn.functional.instance_norm(dl.tensor(x))
    np.testing.assert_allclose(
        ours.numpy(), torch.nn.functional.instance_norm(torch.tensor(x)).numpy(), atol=1e-10
    )


def test_batch_norm_errors_and_float32():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="expected 4D input \\(got 2D input\\)"):
        bn(dl.randn(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(dl.randn(1, 3))
    with pytest.raises(RuntimeError, match="expected input with shape \\[\\*, 5\\]"):
        nn.LayerNorm(5)(dl.randn(2, 4))
    with pytest.raises(ValueError, match="num_channels \\(6\\) must be divisible by num_groups \\(4\\)"):
        nn.GroupNorm(4, 6)
    y = bn(dl.randn(2, 3, 4, 4))
    assert (
        y.dtype == dl.float32
        and bn.running_var.dtype == dl.float32
        and bn.num_batches_tracked.dtype == dl.int64
    )


def test_norm_reprs_match_pytorch():
    torch = pytest.importorskip("torch")
    for make in (
        lambda lib: lib.nn.BatchNorm2d(8, momentum=None),
        lambda lib: lib.nn.BatchNorm1d(4, affine=False),
        lambda lib: lib.nn.LayerNorm((3, 4)),
        lambda lib: lib.nn.GroupNorm(2, 8, eps=1e-3),
    ):
        assert repr(make(dl)) == repr(make(torch))


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda lib: lib.nn.InstanceNorm1d(3), (4, 3, 6)),
        (lambda lib: lib.nn.InstanceNorm1d(3, affine=True), (3, 6)),  # unbatched
        (lambda lib: lib.nn.InstanceNorm2d(3, affine=True, eps=1e-3), (2, 3, 4, 5)),
        (lambda lib: lib.nn.InstanceNorm2d(3, affine=True, bias=False), (3, 4, 5)),
        (lambda lib: lib.nn.InstanceNorm3d(2, affine=True), (2, 2, 3, 2, 4)),
    ],
)
def test_instance_norm_layers_match_pytorch(make, shape):
    check_layer(make, shape)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda lib: lib.nn.InstanceNorm2d(3, track_running_stats=True), (4, 3, 5, 5)),
        (
            lambda lib: lib.nn.InstanceNorm1d(3, affine=True, track_running_stats=True, momentum=0.3),
            (4, 3, 6),
        ),
        (lambda lib: lib.nn.InstanceNorm1d(3, track_running_stats=True, momentum=None), (4, 3, 6)),
    ],
)
def test_instance_norm_running_stats_train_then_eval_match_pytorch(make, shape):
    check_layer(make, shape, shape, shape, call=_steps)


def test_functional_instance_norm_with_running_stats_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((3, 2, 5))
    stats = {
        lib: (lib.tensor([0.5, -1.0], dtype=lib.float64), lib.tensor([2.0, 0.5], dtype=lib.float64))
        for lib in (dl, torch)
    }
    for lib in (dl, torch):
        lib.nn.functional.instance_norm(lib.tensor(x), *stats[lib], momentum=0.2)
    for ours, ref in zip(stats[dl], stats[torch], strict=True):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-12)
    check_op(lambda lib, x, w, b: lib.nn.functional.instance_norm(x, weight=w, bias=b), (2, 3, 4), (3,), (3,))
    check_op(
        lambda lib, x, w: lib.nn.functional.instance_norm(
            x,
            lib.zeros(3, dtype=lib.float64),
            lib.ones(3, dtype=lib.float64) * 2,
            w,
            None,
            use_input_stats=False,
        ),
        (2, 3, 4),
        (3,),
    )


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda lib: lib.nn.RMSNorm(6), (3, 4, 6)),
        (lambda lib: lib.nn.RMSNorm([4, 6], eps=1e-3), (3, 4, 6)),
        (lambda lib: lib.nn.RMSNorm(6, elementwise_affine=False), (2, 6)),
    ],
)
def test_rms_norm_matches_pytorch(make, shape):
    check_layer(make, shape)


def test_functional_rms_norm_and_its_default_eps_match_pytorch():
    torch = pytest.importorskip("torch")
    check_op(lambda lib, x, w: lib.nn.functional.rms_norm(x, (5,), w), (3, 5), (5,))
    check_op(lambda lib, x: lib.nn.functional.rms_norm(x, (2, 5), eps=0.1), (3, 2, 5))
    tiny = np.full((2, 4), 1e-4)  # where eps is most of the mean square, so its value shows
    for dtype in ("float32", "float64"):
        ours = dl.nn.functional.rms_norm(dl.tensor(tiny.astype(dtype)), (4,)).numpy()
        ref = torch.nn.functional.rms_norm(torch.tensor(tiny.astype(dtype)), (4,)).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-6)


@pytest.mark.parametrize("size,shape", [(3, (2, 5, 4)), (2, (2, 6, 3, 3)), (5, (1, 4, 2, 3, 2))])
def test_local_response_norm_matches_pytorch(size, shape):
    check_op(lambda lib, x: lib.nn.functional.local_response_norm(x, size, alpha=0.5, beta=0.6, k=1.5), shape)
    check_layer(lambda lib: lib.nn.LocalResponseNorm(size), shape)


def test_new_normalization_errors_match_pytorch():
    F = dl.nn.functional
    with pytest.raises(
        RuntimeError,
        match="Expected weight to be of same shape as normalized_shape, but got weight of shape \\[3\\]",
    ):
        F.rms_norm(dl.randn(2, 4), (4,), dl.ones(3))
    with pytest.raises(RuntimeError, match="expected input with shape \\[\\*, 5\\]"):
        F.rms_norm(dl.randn(2, 4), (5,))
    with pytest.raises(ValueError, match="Expected 3D or higher dimensionality input \\(got 2 dimensions\\)"):
        F.local_response_norm(dl.randn(2, 4), 2)
    with pytest.raises(
        ValueError, match="Expected more than 1 spatial element when training, got input size \\[2, 3, 1\\]"
    ):
        F.instance_norm(dl.randn(2, 3, 1))
    with pytest.raises(RuntimeError, match="Expected running_mean and running_var to be defined"):
        F.instance_norm(dl.randn(2, 3, 4), use_input_stats=False)
    with pytest.raises(ValueError, match="expected 3D or 4D input \\(got 2D input\\)"):
        nn.InstanceNorm2d(3)(dl.randn(4, 4))
    with pytest.raises(
        ValueError, match="expected input's size at dim=1 to match num_features \\(3\\), but got: 4."
    ):
        nn.InstanceNorm1d(3, affine=True)(dl.randn(2, 4, 4))
    with pytest.warns(UserWarning, match="input's size at dim=1 does not match num_features"):
        nn.InstanceNorm1d(3)(dl.randn(2, 4, 4))


def test_new_norm_reprs_match_pytorch():
    torch = pytest.importorskip("torch")
    for make in (
        lambda lib: lib.nn.InstanceNorm2d(3),
        lambda lib: lib.nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
        lambda lib: lib.nn.RMSNorm(4),
        lambda lib: lib.nn.RMSNorm([3, 4], eps=1e-3, elementwise_affine=False),
        lambda lib: lib.nn.LocalResponseNorm(3, k=2.0),
    ):
        assert repr(make(dl)) == repr(make(torch))
    assert (
        dict(nn.InstanceNorm2d(3, affine=True, track_running_stats=True).state_dict()).keys()
        == dict(torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).state_dict()).keys()
    )
