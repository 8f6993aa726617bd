"""LeNet-5 trained by a hand-written numpy loop: the floor of the LeNet benchmark.

The same network as ``benchmarks.models.lenet`` (Conv2d(1, 6, 5, padding=2), ReLU, MaxPool2d(2),
Conv2d(6, 16, 5), ReLU, MaxPool2d(2), Flatten, Linear 400-120-84-10 with ReLUs), softmax
cross-entropy and Adam, with the forward and backward passes written out for these shapes alone.
Each convolution is one im2col copy and one matrix product; activations are laid out (C, H, W, N),
so that the products need no transposes and every copy runs over long contiguous rows; the second
convolution's input gradient goes back through 25 shifted adds.

It is the floor of an engine built on numpy's kernels, because it skips what an engine must do: no
graph is recorded and no Tensor or gradient bookkeeping happens per op; layouts and column orders
are chosen once for these shapes rather than following the user's NCHW tensors; ReLU runs after
pooling (on a quarter of the values, which max-pooling allows) instead of where the model puts it.
What it keeps is the arithmetic and the copies (im2col, col2im, pooling masks) that cannot be
avoided. It makes each column matrix whole: dltool's convolutions make theirs a cache-sized band at
a time, which can put dltool at or just under this floor.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import softmax_cross_entropy
from benchmarks.numpy_layers import AdamFloor, col2im, im2col, pool, unpool

KERNEL = 5


def _conv_pool(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """A 5 x 5 convolution of ``x`` (C, H, W, N) then 2 x 2 max-pooling: the columns (for the weight's
    gradient), the pooled maps and the corners (for the pooling's backward)."""
    _, h, w, n = x.shape
    columns = im2col(x, KERNEL)
    z = weight.reshape(len(weight), -1) @ columns
    z += bias[:, None]
    pooled, corners = pool(z.reshape(len(weight), h - KERNEL + 1, w - KERNEL + 1, n))
    return columns, pooled, corners


class NumpyLeNet(AdamFloor):
    """LeNet-5 with Adam (lr 1e-3) on float32 arrays that ``step`` updates in place.

    Args:
        params: PyTorch's parameters in ``state_dict`` order (conv1 weight and bias, conv2, fc1, fc2,
            fc3), as float32 arrays; they are updated in place.
        lr: Adam's learning rate.
    """

    def gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The mean cross-entropy of a batch of (N, 1, 28, 28) images and its parameter gradients."""
        c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b, f3w, f3b = self.params
        n = len(labels)
        padded = np.zeros((1, 32, 32, n), dtype=np.float32)
        padded[0, 2:30, 2:30] = images.reshape(n, 784).T.reshape(28, 28, n)
        cols1, p1, corners1 = _conv_pool(padded, c1w, c1b)  # cols (25, 784 * N), p1 (6, 14, 14, N)
        a1 = np.maximum(p1, 0)
        cols2, p2, corners2 = _conv_pool(a1, c2w, c2b)  # cols (150, 100 * N), p2 (16, 5, 5, N)
        a2 = np.maximum(p2, 0)
        flat = a2.reshape(400, n).T  # each image's (C, H, W), as PyTorch flattens it
        h1 = np.maximum(flat @ f1w.T + f1b, 0)
        h2 = np.maximum(h1 @ f2w.T + f2b, 0)
        logits = h2 @ f3w.T + f3b

        loss, g3 = softmax_cross_entropy(logits, labels)
        g2 = g3 @ f3w
        g2 *= h2 > 0
        g1 = g2 @ f2w
        g1 *= h1 > 0
        gflat = g1 @ f1w
        gp2 = gflat.T.reshape(16, 5, 5, n) * (p2 > 0)
        gz2 = unpool(gp2, p2, corners2).reshape(16, 100 * n)
        ga1 = col2im(c2w.reshape(16, 150).T @ gz2, a1.shape, KERNEL)
        ga1 *= p1 > 0
        gz1 = unpool(ga1, p1, corners1).reshape(6, 784 * n)
        grads = [
            (cols1 @ gz1.T).T.reshape(c1w.shape), gz1.sum(axis=1),  # this order threads better
            (gz2 @ cols2.T).reshape(c2w.shape), gz2.sum(axis=1),
            g1.T @ flat, g1.sum(axis=0),
            g2.T @ h1, g2.sum(axis=0),
            g3.T @ h2, g3.sum(axis=0),
        ]  # fmt: skip
        return loss, grads
