"""The CNN of ``model=cnn`` trained by a hand-written numpy loop: the floor of the CNN benchmark.

The same network as ``benchmarks.models.cnn``: two blocks of Conv2d(3 x 3, padding 1, no bias),
BatchNorm2d in training mode (batch statistics; running statistics updated with momentum 0.1,
the variance unbiased), ReLU and MaxPool2d(2), 1 -> 32 -> 64 channels; then Flatten, Dropout(0.3),
Linear(3136, 128), ReLU, Dropout(0.3), Linear(128, 10); softmax cross-entropy and Adam. The forward
and backward passes are written out for these shapes alone, on the (C, H, W, N) layout of
``benchmarks.numpy_layers``: each convolution is one im2col copy and one matrix product (the
weight's gradient taken as ``(columns @ grad^T)^T``, the orientation OpenBLAS threads well), the
second one's input gradient a product and col2im's nine shifted adds; the classifier works on
(features, N) matrices, so the flattened maps need no copy and dropout's masks are drawn features
first.

It is the floor of an engine built on numpy's kernels, because it skips what an engine must do: no
graph is recorded and no Tensor or gradient bookkeeping happens per op; layouts are chosen once
for these shapes; ReLU runs after pooling (on a quarter of the values, which max-pooling allows);
BatchNorm centres its input in place and keeps it for the backward, whose bias gradient (the sum
of the output's gradient) is taken from the pooled gradient, a quarter of the values. What it
keeps is the arithmetic and the copies (im2col, col2im, pooling masks) that cannot be avoided.
Outside the matrix products it runs on one core, as numpy's elementwise kernels do.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import softmax_cross_entropy
from benchmarks.numpy_layers import AdamFloor, col2im, im2col, pool, unpool

KERNEL = 3
MOMENTUM, BN_EPS = 0.1, 1e-5
DROPOUT = 0.3


def _rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each row of ``a`` (C, L) dotted with the same row of ``b``: one pass, through BLAS."""
    return np.matmul(a[:, None, :], b[:, :, None])[:, 0, 0]


class BatchNorm:
    """BatchNorm2d's training-mode arithmetic on (C, L) maps, with its running statistics.

    Args:
        weight, bias: the affine parameters (C,).
        running_mean, running_var, tracked: the buffers, updated in place by ``forward``.
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        running_mean: np.ndarray,
        running_var: np.ndarray,
        tracked: np.ndarray,
    ) -> None:
        self.weight, self.bias = weight, bias
        self.running_mean, self.running_var, self.tracked = running_mean, running_var, tracked

    def buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The running mean, running variance and batches tracked, as ``state_dict`` orders them."""
        return self.running_mean, self.running_var, self.tracked

    def forward(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalizes ``z`` (C, L) by its batch statistics: the output, and ``z`` centred in place
        with the inverse standard deviations (for the backward)."""
        count = z.shape[1]
        mean = z.sum(axis=1) / count
        z -= mean[:, None]
        var = _rowwise_dot(z, z) / count
        invstd = 1 / np.sqrt(var + BN_EPS)
        self.running_mean *= 1 - MOMENTUM
        self.running_mean += MOMENTUM * mean
        self.running_var *= 1 - MOMENTUM
        self.running_var += MOMENTUM * var * (count / (count - 1))
        self.tracked += 1
        scale = invstd * self.weight
        out = z * scale[:, None]
        out += self.bias[:, None]
        return out, z, invstd

    def backward(
        self, grad: np.ndarray, grad_sum: np.ndarray, centred: np.ndarray, invstd: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gradients of the input, weight and bias, from the output's ``grad`` (C, L) and its
        row sums (which max-pooling's gradient gives for a quarter of the work); the input's
        overwrites ``centred``."""
        count = grad.shape[1]
        dot = _rowwise_dot(centred, grad)
        scale = invstd * self.weight
        centred *= (-dot * invstd * invstd / count * scale)[:, None]
        centred -= (grad_sum / count * scale)[:, None]
        grad *= scale[:, None]
        centred += grad
        return centred, dot * invstd, grad_sum


def _block_forward(x: np.ndarray, weight: np.ndarray, norm: BatchNorm) -> tuple:
    """Conv(3 x 3) of the padded ``x`` (C, H + 2, W + 2, N), BatchNorm, then max-pooling: what the
    backward needs, and the pooled maps (before ReLU, which commutes with max-pooling)."""
    _, h, w, n = x.shape
    columns = im2col(x, KERNEL)
    z = weight.reshape(len(weight), -1) @ columns
    y, centred, invstd = norm.forward(z)
    pooled, corners = pool(y.reshape(len(weight), h - 2, w - 2, n))
    return (columns, centred, invstd, corners), pooled


def _block_backward(
    grad: np.ndarray, pooled: np.ndarray, saved: tuple, weight: np.ndarray, norm: BatchNorm
) -> tuple:
    """The gradients of the columns' product (the conv's output), BatchNorm's weight and bias, and
    the conv's weight, from the pooled maps' ``grad`` (after ReLU's mask)."""
    columns, centred, invstd, corners = saved
    dy = unpool(grad, pooled, corners).reshape(centred.shape)
    dz, grad_weight, grad_bias = norm.backward(dy, grad.sum(axis=(1, 2, 3)), centred, invstd)
    grad_conv = (columns @ dz.T).T.reshape(weight.shape)
    return dz, grad_conv, grad_weight, grad_bias


class NumpyCNN(AdamFloor):
    """``model=cnn`` with Adam (lr 1e-3) on float32 arrays that ``step`` updates in place.

    Args:
        state: PyTorch's ``state_dict`` values in order (conv1 weight; bn1 weight, bias, running mean,
            running var, batches tracked; conv2; bn2; fc1 weight and bias; fc2), as numpy arrays;
            they are updated in place.
        lr: Adam's learning rate.
        rng: draws the dropout masks.
    """

    def __init__(
        self, state: list[np.ndarray], lr: float = 1e-3, rng: np.random.Generator | None = None
    ) -> None:
        c1w, *bn1, c2w = state[:7]
        *bn2, f1w, f1b, f2w, f2b = state[7:]
        super().__init__([c1w, *bn1[:2], c2w, *bn2[:2], f1w, f1b, f2w, f2b], lr)
        self.norms = BatchNorm(*bn1), BatchNorm(*bn2)
        self.rng = np.random.default_rng() if rng is None else rng

    def masks(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Dropout's keep masks for a batch of ``n``: (3136, N) and (128, N), features first."""
        return tuple(self.rng.random((size, n), dtype=np.float32) >= DROPOUT for size in (3136, 128))

    def gradients(
        self, images: np.ndarray, labels: np.ndarray, keep: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[float, list[np.ndarray]]:
        """The mean cross-entropy of a batch of (N, 1, 28, 28) images and its parameter gradients.

        ``keep`` are dropout's masks (as ``masks`` draws them, the default); BatchNorm's running
        statistics are updated as in training mode.
        """
        c1w, _, _, c2w, _, _, f1w, f1b, f2w, f2b = self.params
        norm1, norm2 = self.norms
        n = len(labels)
        keep1, keep2 = self.masks(n) if keep is None else keep
        scale = np.float32(1) / np.float32(1 - DROPOUT)
        noise1, noise2 = keep1 * scale, keep2 * scale

        x = np.zeros((1, 30, 30, n), dtype=np.float32)
        x[0, 1:29, 1:29] = images.reshape(n, 784).T.reshape(28, 28, n)
        saved1, p1 = _block_forward(x, c1w, norm1)  # p1 (32, 14, 14, N)
        a1 = np.zeros((32, 16, 16, n), dtype=np.float32)
        np.maximum(p1, 0, out=a1[:, 1:15, 1:15])
        saved2, p2 = _block_forward(a1, c2w, norm2)  # p2 (64, 7, 7, N)
        flat = np.maximum(p2, 0).reshape(3136, n)  # each image's (C, H, W), as PyTorch flattens it
        flat *= noise1
        h = f1w @ flat
        h += f1b[:, None]
        np.maximum(h, 0, out=h)
        dropped = h * noise2
        logits = f2w @ dropped
        logits += f2b[:, None]

        loss, g3 = softmax_cross_entropy(logits.T, labels)
        g3 = g3.T
        g2 = f2w.T @ g3
        g2 *= noise2
        g2 *= h > 0
        gflat = f1w.T @ g2
        gflat *= noise1
        gp2 = gflat.reshape(p2.shape)
        gp2 *= p2 > 0
        dz2, gc2, gbn2w, gbn2b = _block_backward(gp2, p2, saved2, c2w, norm2)
        ga1 = col2im(c2w.reshape(64, -1).T @ dz2, a1.shape, KERNEL)[:, 1:15, 1:15]
        ga1 *= p1 > 0
        _, gc1, gbn1w, gbn1b = _block_backward(ga1, p1, saved1, c1w, norm1)
        grads = [
            gc1, gbn1w, gbn1b, gc2, gbn2w, gbn2b,
            g2 @ flat.T, g2.sum(axis=1),
            g3 @ dropped.T, g3.sum(axis=1),
        ]  # fmt: skip
        return loss, grads
