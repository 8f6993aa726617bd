"""The numpy LeNet floor does PyTorch's arithmetic: same loss, gradients and Adam updates."""

import numpy as np
import pytest

from benchmarks.numpy_layers import col2im, im2col
from benchmarks.numpy_lenet import KERNEL, NumpyLeNet
from tests.benchmarks.floor_check import assert_same_weights, step_both

LR = 1e-3


def batch(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(32, 1, 28, 28)).astype(np.float32)
    images[:, :, :12] = -0.81  # a flat background, as in Fashion-MNIST: ties inside pooling windows
    return images, rng.integers(0, 10, 32)


def test_two_training_steps_match_pytorch():
    torch = pytest.importorskip("torch")
    from benchmarks.models import lenet, reference_model

    reference = reference_model(lenet)
    floor = NumpyLeNet([v.detach().numpy().copy() for v in reference.state_dict().values()], lr=LR)
    optimizer = torch.optim.Adam(reference.parameters(), lr=LR)
    settled = [np.ones(p.shape, dtype=bool) for p in reference.parameters()]
    for seed in (1, 2):  # the second step reads the moments the first one left
        images, labels = batch(seed)
        loss, grads, expected = step_both(torch, floor, reference, optimizer, images, labels)
        assert loss == pytest.approx(expected, rel=1e-6)
        for mine, param in zip(grads, reference.parameters(), strict=True):
            np.testing.assert_allclose(mine, param.grad.numpy(), rtol=1e-4, atol=1e-7)
        assert_same_weights(floor, reference, settled, LR, rtol=1e-5, atol=1e-7)


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 9, 8, 2))  # (C, H, W, N)
    columns = rng.normal(size=im2col(x, KERNEL).shape)
    assert np.vdot(im2col(x, KERNEL), columns) == pytest.approx(np.vdot(x, col2im(columns, x.shape, KERNEL)))


def test_the_lenet_workload_times_the_floor(data_root, monkeypatch):
    from benchmarks import lenet
    from benchmarks.common import Settings

    monkeypatch.setenv("DLTOOL_DATA", str(data_root))
    assert lenet.cases(Settings(tiny=True))["numpy"]() > 0
