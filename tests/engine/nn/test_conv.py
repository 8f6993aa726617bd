import numpy as np
import pytest

import dltool.engine as dl
import dltool.engine.nn.functional as F
from dltool.engine import _blas_pool, nn
from dltool.engine.ops import conv as conv_ops
from tests.engine.nn.layer_check import check_layer, gradcheck_layer
from tests.op_check import check_op

CONV2D = [
    dict(),
    dict(stride=2),
    dict(padding=1),
    dict(padding=(2, 1), stride=(1, 2)),
    dict(dilation=2, padding=2),
    dict(groups=2, padding=1),
    dict(groups=4, stride=2, dilation=(1, 2)),
    dict(padding="same", dilation=(2, 1)),
    dict(padding="valid"),
    dict(bias=False, stride=3),
    dict(padding=1, padding_mode="reflect"),
    dict(padding=(1, 2), padding_mode="replicate"),
    dict(padding="same", padding_mode="circular"),
]


@pytest.mark.parametrize("kwargs", CONV2D, ids=[str(k) for k in CONV2D])
@pytest.mark.parametrize("kernel", [3, (2, 3)])
def test_conv2d_matches_pytorch(kernel, kwargs):
    check_layer(lambda lib: lib.nn.Conv2d(4, 8, kernel, **kwargs), (2, 4, 9, 8))


def test_conv2d_one_by_one_and_unbatched():
    check_layer(lambda lib: lib.nn.Conv2d(3, 5, 1), (2, 3, 4, 4))
    check_layer(lambda lib: lib.nn.Conv2d(3, 5, 3, padding=1), (3, 6, 5))


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1), dict(dilation=2, groups=3), dict(padding="same")])
def test_conv1d_matches_pytorch(kwargs):
    check_layer(lambda lib: lib.nn.Conv1d(3, 6, 3, **kwargs), (2, 3, 11))


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(stride=2), dict(stride=2, padding=1, output_padding=1), dict(dilation=2, groups=2), dict(stride=(2, 1), padding=(0, 1), bias=False)],
)
def test_conv_transpose2d_matches_pytorch(kwargs):
    check_layer(lambda lib: lib.nn.ConvTranspose2d(4, 6, 3, **kwargs), (2, 4, 5, 4))


def test_conv_transpose_output_size_and_1d():
    check_layer(lambda lib: lib.nn.ConvTranspose1d(2, 3, 3, stride=2), (2, 2, 6))
    check_layer(lambda lib: lib.nn.ConvTranspose2d(2, 3, 3, stride=2), (1, 2, 4, 4), call=lambda lib, m, xs: m(xs[0], output_size=[10, 10]))


@pytest.mark.parametrize("layer,shape", [(nn.Conv2d(2, 3, 2, stride=2, padding=1, groups=1), (1, 2, 3, 3)), (nn.Conv2d(2, 2, 2, groups=2, dilation=2), (1, 2, 4, 4)), (nn.ConvTranspose2d(2, 2, 2, stride=2, output_padding=1), (1, 2, 2, 2)), (nn.Conv1d(2, 2, 2, padding="same"), (1, 2, 4))])
def test_conv_gradcheck(layer, shape):
    gradcheck_layer(layer, shape)


def test_unfold_fold_are_adjoint_and_match_pytorch():
    check_op(lambda lib, x: lib.nn.functional.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), (2, 3, 5, 6))
    check_op(lambda lib, x: lib.nn.functional.fold(x, (4, 5), 2, padding=1, stride=2), (2, 12, 9))


def test_conv_second_derivative():
    w = dl.randn(2, 1, 2, 2, dtype=dl.float64, requires_grad=True)
    x = dl.randn(1, 1, 3, 3, dtype=dl.float64, requires_grad=True)
    b = dl.randn(2, dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradgradcheck(lambda x, w: F.conv2d(x, w, stride=1, padding=1), (x, w))
    assert dl.autograd.gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, groups=1), (x, w, b))


BANDED = [
    (lambda lib: lib.nn.Conv2d(4, 6, 3, padding=1), (2, 4, 7, 5)),
    (lambda lib: lib.nn.Conv2d(4, 6, (3, 2), stride=2, dilation=(2, 1), padding=(2, 0), groups=2), (3, 4, 9, 6)),
    (lambda lib: lib.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 4)),
]


@pytest.mark.usefixtures("_restore_threads")
@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "in-order"])
@pytest.mark.parametrize("band_bytes", [1, 6000])  # one output row per band, and two
@pytest.mark.parametrize("make,shape", BANDED, ids=["conv", "strided-grouped", "transposed"])
def test_convolutions_in_bands_match_pytorch(monkeypatch, band_bytes, make, shape, pooled):
    monkeypatch.setattr(conv_ops, "BAND_BYTES", band_bytes)
    monkeypatch.setattr(_blas_pool, "MIN_PIECES", 2 if pooled else 10**9)
    dl.set_num_threads(2)  # a pool of two workers, on any machine
    check_layer(make, shape)
    gradcheck_layer(make(dl), shape[:2] + (4, 3))


def test_a_convolution_keeps_its_padded_input_not_its_columns():
    x = dl.randn(4, 3, 10, 10, requires_grad=True)
    y = nn.Conv2d(3, 5, 3, padding=1)(x)
    node = y.grad_fn
    while node.name() != "ConvolutionBackward0":
        node = node.next_functions[0][0]
    kept = [value for value in vars(node).values() if isinstance(value, np.ndarray)]
    owners = []
    for value in kept:  # the arrays that own the memory behind the kept views
        while getattr(value, "base", None) is not None:
            value = value.base
        owners.append(value)
    kept_bytes = sum(owner.nbytes for owner in owners)
    assert kept_bytes == 4 * 3 * 12 * 12 * 4  # the padded (C, H, W, N) copy: columns would be 9x x
    y.sum().backward()
    assert not [value for value in vars(node).values() if isinstance(value, np.ndarray)]  # freed


@pytest.mark.usefixtures("_restore_threads")
def test_second_derivatives_through_a_banded_fold(monkeypatch):
    monkeypatch.setattr(conv_ops, "BAND_BYTES", 1)
    monkeypatch.setattr(_blas_pool, "MIN_PIECES", 2)
    dl.set_num_threads(2)
    x = dl.randn(2, 2, 4, 3, dtype=dl.float64, requires_grad=True)
    w = dl.randn(3, 2, 2, 2, dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w))
    assert dl.autograd.gradgradcheck(lambda x, w: F.conv_transpose2d(x, w.transpose(0, 1), stride=2), (x, w))


@pytest.mark.usefixtures("_restore_threads")
def test_folded_product_equals_fold_of_the_whole_product(monkeypatch):
    geometry = dict(kernel_size=(2, 3), dilation=(2, 1), padding=(1, 2), stride=(1, 2))
    a = dl.randn(2 * 2 * 3, 5)  # columns of 2 channels' 2x3 windows, from 3 images
    size = (7, 9)
    kernel, dil, pad, step, out = conv_ops._geometry(size, **geometry)
    b = dl.randn(5, out[0] * out[1] * 3)
    whole = conv_ops._col2im((a @ b).numpy(), size, kernel, dil, pad, step, out, True)
    monkeypatch.setattr(_blas_pool, "MIN_PIECES", 2)
    dl.set_num_threads(2)
    for band_bytes in (1, 200, 10**9):
        monkeypatch.setattr(conv_ops, "BAND_BYTES", band_bytes)
        banded = conv_ops._folded_product(a.numpy(), b.numpy(), size, kernel, dil, pad, step, out)
        np.testing.assert_allclose(banded, whole, rtol=1e-5, atol=1e-5)


def test_conv_output_is_stored_batch_innermost_and_chains():
    x = dl.randn(4, 3, 6, 6)
    y = F.conv2d(x, dl.randn(5, 3, 3, 3), dl.randn(5))
    assert y.shape == (4, 5, 4, 4) and y.numpy().strides == (4, 16 * 4 * 4, 4 * 4 * 4, 4 * 4)
    # a second convolution, a pool and a grouped convolution read that order directly
    check_op(
        lambda lib, x, w1, w2: lib.nn.functional.conv2d(
            lib.nn.functional.max_pool2d(lib.nn.functional.conv2d(x, w1, padding=1).relu(), 2), w2, groups=2
        ),
        (2, 2, 6, 6), (4, 2, 3, 3), (2, 2, 2, 2),
    )


def test_pad_modes_match_pytorch():
    for mode in ("reflect", "replicate", "circular"):
        check_op(lambda lib, x, mode=mode: lib.nn.functional.pad(x, (2, 1, 1, 2), mode=mode), (2, 3, 4, 5))


def test_conv_keeps_float32():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = dl.randn(2, 3, 5, 5, requires_grad=True)
    y = conv(x)
    y.sum().backward()
    assert y.dtype == dl.float32 and conv.weight.grad.dtype == dl.float32 and x.grad.dtype == dl.float32


def test_conv_errors_name_the_shapes():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError, match=r"expected input\[2, 5, 8, 8\] to have 3 channels, but got 5"):
        conv(dl.randn(2, 5, 8, 8))
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D"):
        conv(dl.randn(8, 8))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        conv(dl.randn(1, 3, 2, 2))
    with pytest.raises(RuntimeError, match="should be the same"):
        conv(dl.randn(1, 3, 4, 4, dtype=dl.float64))
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")


def test_conv_repr_matches_pytorch():
    torch = pytest.importorskip("torch")
    for make in (
        lambda lib: lib.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False, groups=1),
        lambda lib: lib.nn.Conv2d(4, 8, (3, 5), dilation=2, groups=4, padding_mode="reflect", padding=2),
        lambda lib: lib.nn.Conv1d(3, 8, 3, padding="same"),
        lambda lib: lib.nn.ConvTranspose2d(3, 8, 4, stride=2, padding=1, output_padding=1),
    ):
        assert repr(make(dl)) == repr(make(torch))


def test_conv_default_init_matches_pytorch_bounds():
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / np.sqrt(16 * 9)
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
