"""interpolate / Upsample, pixel_shuffle / PixelShuffle and their inverses."""

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.op_check import check_op

INTERPOLATIONS = [
    ("nearest_3d_x2", (2, 3, 5), dict(scale_factor=2)),
    ("nearest_3d_size", (2, 3, 5), dict(size=7)),
    ("nearest_4d_fraction", (2, 2, 5, 6), dict(scale_factor=(1.7, 0.6))),
    ("nearest_4d_size", (2, 2, 5, 6), dict(size=(3, 11))),
    ("nearest_5d", (1, 2, 3, 2, 4), dict(scale_factor=(2, 1.5, 0.5))),
    ("nearest_exact_4d", (2, 2, 5, 6), dict(scale_factor=2.09, mode="nearest-exact")),
    ("nearest_exact_3d", (2, 3, 5), dict(size=3, mode="nearest-exact")),
    ("linear", (2, 3, 5), dict(scale_factor=1.6, mode="linear")),
    ("linear_corners", (2, 3, 5), dict(size=9, mode="linear", align_corners=True)),
    ("bilinear_x2", (2, 2, 4, 5), dict(scale_factor=2, mode="bilinear")),
    ("bilinear_down", (2, 2, 6, 7), dict(size=(4, 3), mode="bilinear")),
    ("bilinear_corners", (2, 2, 4, 5), dict(scale_factor=(1.5, 2.5), mode="bilinear", align_corners=True)),
    ("bilinear_one_row", (1, 2, 4, 5), dict(size=(1, 8), mode="bilinear", align_corners=True)),
    ("bilinear_same_width", (1, 2, 4, 5), dict(scale_factor=(1.6, 1.05), mode="bilinear")),
    ("trilinear", (1, 2, 3, 2, 4), dict(size=(4, 3, 5), mode="trilinear")),
    ("area_4d", (2, 2, 6, 7), dict(size=(4, 3), mode="area")),
    ("area_3d", (2, 2, 9), dict(scale_factor=0.5, mode="area")),
    ("recompute", (2, 2, 5, 6), dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)),
]


@pytest.mark.parametrize("name,shape,kwargs", INTERPOLATIONS, ids=[i[0] for i in INTERPOLATIONS])
def test_interpolate_matches_pytorch(name, shape, kwargs):
    check_op(lambda lib, x: lib.nn.functional.interpolate(x, **kwargs), shape)


def test_interpolate_second_derivative():
    x = dl.randn(1, 2, 3, 4, dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradgradcheck(
        lambda x: dl.nn.functional.interpolate(x, size=(5, 3), mode="bilinear") ** 2, (x,)
    )


def test_nearest_picks_the_same_pixels_as_pytorch_in_float32():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for trial in range(60):
        ndim = 3 + trial % 3
        shape = (1, 1) + tuple(int(n) for n in rng.integers(4, 12, ndim - 2))  # 0.3 * 4 > 1
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        mode = ("nearest", "nearest-exact")[trial % 2]
        if trial % 4 == 0:
            kwargs = dict(size=tuple(int(n) for n in rng.integers(1, 30, ndim - 2)))
        else:  # some land on out == 2 * in, which PyTorch's 2-D nearest kernel special-cases
            kwargs = dict(
                scale_factor=tuple(float(s) for s in rng.choice([2.09, 1.05, 0.3, 1.7, 3.3], ndim - 2))
            )
        ours = dl.nn.functional.interpolate(dl.tensor(x), mode=mode, **kwargs).numpy()
        ref = torch.nn.functional.interpolate(torch.tensor(x), mode=mode, **kwargs).numpy()
        np.testing.assert_array_equal(ours, ref, err_msg=f"{shape} {mode} {kwargs}")


def test_bilinear_float32_parity():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 17)).astype(np.float32)
    for kwargs in (dict(scale_factor=2.3), dict(size=(7, 40), align_corners=True)):
        ours = dl.nn.functional.interpolate(dl.tensor(x), mode="bilinear", **kwargs).numpy()
        ref = torch.nn.functional.interpolate(torch.tensor(x), mode="bilinear", **kwargs).numpy()
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_interpolate_errors_match_pytorch():
    F, x = dl.nn.functional, dl.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor should be defined"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor should be defined"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set with the interpolating modes"):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(ValueError, match="output size of \\(3, 4, 5\\)"):
        F.interpolate(x, size=(3, 4, 5))
    with pytest.raises(ValueError, match="scale_factor of shape \\(3, 4, 5\\)"):
        F.interpolate(x, scale_factor=(3, 4, 5))
    with pytest.raises(TypeError, match="but got size with types \\[<class 'float'>, <class 'int'>\\]"):
        F.interpolate(x, size=(3.0, 4))
    with pytest.raises(ValueError, match="recompute_scale_factor is not meaningful with an explicit size"):
        F.interpolate(x, size=2, recompute_scale_factor=True)
    with pytest.raises(NotImplementedError, match="Got 3D input, but bilinear mode needs 4D input"):
        F.interpolate(dl.randn(1, 1, 4), size=3, mode="bilinear")
    with pytest.raises(NotImplementedError, match="Only 3D, 4D and 5D input Tensors supported \\(got 2D\\)"):
        F.interpolate(dl.randn(1, 4), size=3)
    with pytest.raises(RuntimeError, match="but got input \\(H: 4, W: 4\\) output \\(H: 0, W: 0\\)"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match="Anti-alias option is restricted to bilinear"):
        F.interpolate(x, size=2, antialias=True)


def test_upsample_modules_match_pytorch():
    torch = pytest.importorskip("torch")
    makers = [
        lambda lib: lib.nn.Upsample(scale_factor=2),
        lambda lib: lib.nn.Upsample(size=(3, 7), mode="bilinear", align_corners=True),
        lambda lib: lib.nn.Upsample(scale_factor=(2, 1.5), mode="nearest-exact"),
        lambda lib: lib.nn.UpsamplingNearest2d(size=5),
        lambda lib: lib.nn.UpsamplingBilinear2d(scale_factor=1.5),
    ]
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    for make in makers:
        assert repr(make(dl)) == repr(make(torch))
        np.testing.assert_allclose(
            make(dl)(dl.tensor(x)).numpy(), make(torch)(torch.tensor(x)).numpy(), atol=1e-12
        )
    assert nn.modules.upsampling.Upsample is nn.Upsample


@pytest.mark.parametrize("shape,factor", [((2, 8, 3, 4), 2), ((9, 2, 3), 3), ((2, 2, 4, 1, 2), 2)])
def test_pixel_shuffle_and_unshuffle_match_pytorch(shape, factor):
    check_op(lambda lib, x: lib.nn.functional.pixel_shuffle(x, factor), shape)
    unshuffled = shape[:-3] + (shape[-3] // factor**2, shape[-2] * factor, shape[-1] * factor)
    check_op(lambda lib, x: lib.nn.functional.pixel_unshuffle(x, factor), unshuffled)
    x = dl.randn(*shape)
    shuffle, unshuffle = nn.PixelShuffle(factor), nn.PixelUnshuffle(factor)
    np.testing.assert_array_equal(unshuffle(shuffle(x)).numpy(), x.numpy())


def test_pixel_shuffle_errors_and_reprs_match_pytorch():
    torch = pytest.importorskip("torch")
    F = dl.nn.functional
    with pytest.raises(
        RuntimeError, match="pixel_shuffle expects input to have at least 3 dimensions, but got input with 2"
    ):
        F.pixel_shuffle(dl.randn(4, 4), 2)
    with pytest.raises(RuntimeError, match="but input.size\\(-3\\)=5 is not divisible by 4"):
        F.pixel_shuffle(dl.randn(1, 5, 4, 4), 2)
    with pytest.raises(RuntimeError, match="pixel_shuffle expects a positive upscale_factor, but got 0"):
        F.pixel_shuffle(dl.randn(1, 4, 4, 4), 0)
    with pytest.raises(
        RuntimeError, match="expects width to be divisible by downscale_factor, but input.size\\(-1\\)=5"
    ):
        F.pixel_unshuffle(dl.randn(1, 4, 4, 5), 2)
    for make in (lambda lib: lib.nn.PixelShuffle(2), lambda lib: lib.nn.PixelUnshuffle(3)):
        assert repr(make(dl)) == repr(make(torch))
