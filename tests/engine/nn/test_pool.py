import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.op_check import check_op

MAX_POOL = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=3, ceil_mode=True),
]


@pytest.mark.parametrize("kwargs", MAX_POOL, ids=[str(k) for k in MAX_POOL])
def test_max_pool2d_matches_pytorch(kwargs):
    check_op(lambda lib, x: lib.nn.functional.max_pool2d(x, **kwargs), (2, 3, 9, 8))


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    # after a ReLU many windows are all zeros; PyTorch routes each window's gradient to one element
    # (ties are not differentiable, so this compares with PyTorch without a gradcheck)
    torch = pytest.importorskip("torch")
    x = np.maximum(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), 0)
    for args in ((2,), (3, 1, 1)):
        ours, ref = dl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        dl.nn.functional.max_pool2d(ours, *args).sum().backward()
        torch.nn.functional.max_pool2d(ref, *args).sum().backward()
        np.testing.assert_array_equal(ours.grad.numpy(), ref.grad.numpy())


def test_max_pool_return_indices_and_1d():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8))
    ours = dl.nn.functional.max_pool2d(dl.tensor(x), 3, 2, 1, return_indices=True)[1]
    ref = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)[1]
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    big = np.random.default_rng(2).standard_normal((1, 2, 130, 130))  # offset x dilation past int8
    ours = dl.nn.functional.max_pool2d(dl.tensor(big), 3, 1, dilation=64, return_indices=True)[1]
    ref = torch.nn.functional.max_pool2d(torch.tensor(big), 3, 1, dilation=64, return_indices=True)[1]
    np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    assert ours.dtype == dl.int64
    check_op(lambda lib, x: lib.nn.functional.max_pool1d(x, 3, 2, 1), (2, 3, 10))
    check_op(lambda lib, x: lib.nn.functional.max_pool2d(x, 2), (3, 6, 6))


AVG_POOL = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(1, 2), divisor_override=5),
]


@pytest.mark.parametrize("kwargs", AVG_POOL, ids=[str(k) for k in AVG_POOL])
def test_avg_pool2d_matches_pytorch(kwargs):
    check_op(lambda lib, x: lib.nn.functional.avg_pool2d(x, **kwargs), (2, 3, 9, 8))


@pytest.mark.parametrize("size", [1, (3, 4), (4, None), 5, (2, 4), (9, 8)])
def test_adaptive_avg_pool2d_matches_pytorch(size):
    check_op(lambda lib, x: lib.nn.functional.adaptive_avg_pool2d(x, size), (2, 3, 9, 8))


def test_pool_1d_variants():
    check_op(lambda lib, x: lib.nn.functional.avg_pool1d(x, 3, 2, 1), (2, 3, 9))
    check_op(lambda lib, x: lib.nn.functional.adaptive_avg_pool1d(x, 4), (2, 3, 9))


def test_pool_modules_and_repr_match_pytorch():
    torch = pytest.importorskip("torch")
    makers = [
        lambda lib: lib.nn.MaxPool2d(3, 2, 1),
        lambda lib: lib.nn.MaxPool1d(2),
        lambda lib: lib.nn.AvgPool2d(2),
        lambda lib: lib.nn.AvgPool1d(3, 2),
        lambda lib: lib.nn.AdaptiveAvgPool2d((1, 1)),
        lambda lib: lib.nn.AdaptiveAvgPool1d(4),
    ]
    for make in makers:
        assert repr(make(dl)) == repr(make(torch))
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8))
    for make in makers[::2]:
        np.testing.assert_allclose(
            make(dl)(dl.tensor(x)).numpy(), make(torch)(torch.tensor(x)).numpy(), atol=1e-12
        )


def test_pool_double_backward():
    x = dl.randn(1, 2, 4, 4, dtype=dl.float64, requires_grad=True)
    assert dl.autograd.gradgradcheck(lambda x: dl.nn.functional.max_pool2d(x, 2, 1), x)
    assert dl.autograd.gradgradcheck(lambda x: dl.nn.functional.max_pool2d(x, 2), x)
    assert dl.autograd.gradgradcheck(lambda x: dl.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True), x)
    assert dl.autograd.gradgradcheck(lambda x: dl.nn.functional.avg_pool2d(x, 3, 1, 1), x)


def test_max_pool_of_a_batch_innermost_input_keeps_its_memory_order():
    # a convolution's output is stored (C, H, W, N); pooling and its gradient keep that order
    check_op(lambda lib, x: lib.nn.functional.max_pool2d(x.permute(3, 0, 1, 2), 2), (3, 6, 6, 4))
    x = dl.randn(3, 6, 6, 4, requires_grad=True)
    y = dl.nn.functional.max_pool2d(x.permute(3, 0, 1, 2), 2)
    assert y.shape == (4, 3, 3, 3) and y.detach().numpy().strides[0] == 4  # batch innermost
    y.backward(dl.ones(4, 3, 3, 3))  # an NCHW gradient into a (C, H, W, N) input
    assert x.grad.shape == (3, 6, 6, 4) and x.grad.sum().item() == 4 * 3 * 3 * 3


def test_pool_keeps_float32_and_rejects_bad_padding():
    x = dl.randn(1, 2, 6, 6, requires_grad=True)
    for pool in (nn.MaxPool2d(2), nn.AvgPool2d(3, 2, 1), nn.AdaptiveAvgPool2d(4)):
        y = pool(x)
        y.sum().backward()
        assert y.dtype == dl.float32 and x.grad.dtype == dl.float32
    with pytest.raises(RuntimeError, match="pad should be at most half of effective kernel size"):
        nn.MaxPool2d(2, padding=2)(x)
    with pytest.raises(RuntimeError, match="Expected 3D or 4D"):
        nn.MaxPool2d(2)(dl.randn(6, 6))


@pytest.mark.parametrize("size", [1, (4, 3), (3, None), 5, (9, 8), (2, 4)], ids=str)
def test_adaptive_max_pool2d_matches_pytorch(size):
    # 9 -> 4 and 8 -> 3 make overlapping windows of two lengths
    check_op(
        lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, size, return_indices=True)[0], (2, 3, 9, 8)
    )
    check_op(lambda lib, x: lib.nn.functional.adaptive_max_pool2d(x, size), (3, 9, 8))


def test_adaptive_max_pool_indices_and_1d():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 8))
    for size in ((4, 3), 5, (None, 2)):
        ours = dl.nn.functional.adaptive_max_pool2d(dl.tensor(x), size, return_indices=True)
        ref = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), size, return_indices=True)
        np.testing.assert_array_equal(ours[1].numpy(), ref[1].numpy())
        assert ours[1].dtype == dl.int64
    ours = dl.nn.functional.adaptive_max_pool1d(dl.tensor(x[0]), 5, return_indices=True)
    ref = torch.nn.functional.adaptive_max_pool1d(torch.tensor(x[0]), 5, return_indices=True)
    np.testing.assert_array_equal(ours[1].numpy(), ref[1].numpy())
    check_op(lambda lib, x: lib.nn.functional.adaptive_max_pool1d(x, 4), (2, 3, 9))
    check_op(lambda lib, x: lib.nn.functional.adaptive_max_pool1d(x, (3,)), (3, 7))


def test_adaptive_max_pool_ties_go_to_the_first_maximum():
    torch = pytest.importorskip("torch")
    x = np.maximum(np.random.default_rng(4).standard_normal((2, 3, 7, 7)), 0)
    ours, ref = dl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    dl.nn.functional.adaptive_max_pool2d(ours, 3).sum().backward()
    torch.nn.functional.adaptive_max_pool2d(ref, 3).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), ref.grad.numpy())


UNPOOL = [
    ((8, 8), dict(kernel_size=2)),
    ((7, 9), dict(kernel_size=2, stride=2, padding=1, output_size=(7, 9))),
    ((8, 9), dict(kernel_size=(2, 3), stride=(2, 3), output_size=(9, 10))),
    ((8, 8), dict(kernel_size=2, output_size=(2, 3, 9, 9))),
]


def _pooled(kwargs: dict, x: np.ndarray) -> tuple:
    """``max_pool2d``'s values and indices for ``x``, computed by dltool."""
    pool = {k: v for k, v in kwargs.items() if k != "output_size"}
    values, indices = dl.nn.functional.max_pool2d(dl.tensor(x), **pool, return_indices=True)
    return values.numpy(), indices.numpy()


@pytest.mark.parametrize("size,kwargs", UNPOOL, ids=[str(k) for _, k in UNPOOL])
def test_max_unpool2d_matches_pytorch(size, kwargs):
    values, indices = _pooled(kwargs, np.random.default_rng(5).standard_normal((2, 3, *size)))
    check_op(lambda lib, y: lib.nn.functional.max_unpool2d(y, lib.tensor(indices), **kwargs), arrays=[values])
    check_op(
        lambda lib, y: lib.nn.functional.max_unpool2d(y, lib.tensor(indices[0]), **kwargs), arrays=[values[0]]
    )


def test_max_unpool_of_overlapping_windows_and_1d():
    torch = pytest.importorskip("torch")
    # windows that overlap share maxima: a position written twice passes its gradient to both
    values, indices = _pooled(
        dict(kernel_size=3, stride=1), np.random.default_rng(6).standard_normal((1, 2, 6, 6))
    )
    ours, ref = dl.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    upstream = np.random.default_rng(7).standard_normal((1, 2, 6, 6))
    y = dl.nn.functional.max_unpool2d(ours, dl.tensor(indices), 3, 1)
    y_ref = torch.nn.functional.max_unpool2d(ref, torch.tensor(indices), 3, 1)
    np.testing.assert_array_equal(y.detach().numpy(), y_ref.detach().numpy())
    (y * dl.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), ref.grad.numpy())
    x = np.random.default_rng(8).standard_normal((2, 3, 9))
    values, indices = (
        t.numpy() for t in dl.nn.functional.max_pool1d(dl.tensor(x), 2, 2, 1, return_indices=True)
    )
    check_op(
        lambda lib, y: lib.nn.functional.max_unpool1d(y, lib.tensor(indices), 2, 2, 1, output_size=[9]),
        arrays=[values],
    )
    check_op(
        lambda lib, y: lib.nn.functional.max_unpool1d(
            y, lib.tensor(indices[0]), 2, padding=1, output_size=(2, 3, 9)
        ),
        arrays=[values[0]],
    )


def test_adaptive_max_and_unpool_modules_match_pytorch():
    torch = pytest.importorskip("torch")
    makers = [
        lambda lib: lib.nn.AdaptiveMaxPool2d((3, None), return_indices=True),
        lambda lib: lib.nn.AdaptiveMaxPool1d(3),
        lambda lib: lib.nn.MaxUnpool2d(2),
        lambda lib: lib.nn.MaxUnpool1d(3, 2, 1),
        lambda lib: lib.nn.MaxUnpool2d((2, 3), stride=1, padding=(1, 0)),
    ]
    for make in makers:
        assert repr(make(dl)) == repr(make(torch))
    x = np.random.default_rng(9).standard_normal((2, 3, 8, 8))
    for lib, tensor in ((dl, dl.tensor(x)), (torch, torch.tensor(x))):
        pooled, indices = lib.nn.MaxPool2d(2, return_indices=True)(tensor)
        restored = lib.nn.MaxUnpool2d(2)(pooled, indices, output_size=tensor.size())
        adaptive = lib.nn.AdaptiveMaxPool2d((3, None), return_indices=True)(tensor)
        if lib is dl:
            ours = [restored, *adaptive]
    np.testing.assert_array_equal(ours[0].numpy(), restored.numpy())
    np.testing.assert_array_equal(ours[1].numpy(), adaptive[0].numpy())
    np.testing.assert_array_equal(ours[2].numpy(), adaptive[1].numpy())


def test_adaptive_max_and_unpool_errors_read_like_pytorch():
    F = dl.nn.functional
    x = dl.randn(2, 3, 8, 8)
    y, i = F.max_pool2d(x, 2, return_indices=True)
    with pytest.raises(
        RuntimeError, match=r"adaptive_max_pool2d\(\): Expected 3D or 4D tensor, but got: \[8, 8\]"
    ):
        F.adaptive_max_pool2d(x[0, 0], 3)
    with pytest.raises(RuntimeError, match="Expected 2 to 3 dimensions, but got 4-dimensional tensor"):
        F.adaptive_max_pool1d(x, 3)
    with pytest.raises(
        ValueError, match=r'invalid output_size "\(10, 9\)" \(dim 0 must be between 6 and 10\)'
    ):
        F.max_unpool2d(y, i, 2, output_size=(10, 9))
    with pytest.raises(
        ValueError,
        match="output_size should be a sequence containing 2 or 4 elements, but it has a length of '3'",
    ):
        F.max_unpool2d(y, i, 2, output_size=(3, 9, 9))
    with pytest.raises(
        RuntimeError, match=r"Found an invalid max index: \d+ \(output volumes are of size 8x8\)"
    ):
        F.max_unpool2d(y, i + 40, 2)
    with pytest.raises(RuntimeError, match="elements in indices should be type int64 but got"):
        F.max_unpool2d(y, i.float(), 2)
    with pytest.raises(
        RuntimeError,
        match=r"Expected shape of indices to be same as that of the input tensor \(\[2, 3, 4, 4\]\)",
    ):
        F.max_unpool2d(y, i[:, :2], 2)
    with pytest.raises(
        RuntimeError,
        match="Input to max_unpooling2d should be a 3d or 4d Tensor, but got a tensor with 2 dimensions.",
    ):
        F.max_unpool2d(y[0, 0], i[0, 0], 2)
