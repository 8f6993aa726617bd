"""What the hand-written numpy floors share: im2col and col2im, 2 x 2 max-pooling, and Adam's loop.

Activations are laid out (C, H, W, N), the batch innermost, so that a convolution's product needs no
transposes and is already the next layer's input, and every copy runs over long contiguous rows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BETAS, EPS = (0.9, 0.999), 1e-8


def im2col(x: np.ndarray, kernel: int) -> np.ndarray:
    """Every ``kernel`` x ``kernel`` window of ``x`` (C, H, W, N) as a column: (C * kernel**2,
    Ho * Wo * N), rows ordered like a PyTorch weight's (c, kh, kw), so ``weight.reshape(out, -1) @
    columns`` is the convolution.

    The batch is the innermost axis, so that the copy's inner loop runs over whole rows of windows
    (Wo * N values) and the product's result is already the next layer's (C, H, W, N) input.
    """
    windows = sliding_window_view(x, (kernel, kernel), axis=(1, 2))  # (C, Ho, Wo, N, kh, kw)
    c, ho, wo, n = windows.shape[:4]
    return np.ascontiguousarray(windows.transpose(0, 4, 5, 1, 2, 3)).reshape(c * kernel * kernel, ho * wo * n)


def col2im(columns: np.ndarray, shape: tuple[int, int, int, int], kernel: int) -> np.ndarray:
    """The gradient of :func:`im2col`: adds each window's column back onto the input (C, H, W, N)."""
    c, h, w, n = shape
    ho, wo = h - kernel + 1, w - kernel + 1
    windows = columns.reshape(c, kernel, kernel, ho, wo, n)
    grad = np.zeros(shape, dtype=columns.dtype)
    for i in range(kernel):
        for j in range(kernel):
            grad[:, i : i + ho, j : j + wo] += windows[:, i, j]
    return grad


def pool(z: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """2 x 2 max-pooling of ``z`` (C, H, W, N), and the four corner views its backward needs."""
    c, h, w, n = z.shape
    blocks = z.reshape(c, h // 2, 2, w // 2, 2, n)
    corners = [blocks[:, :, i, :, j] for i in (0, 1) for j in (0, 1)]  # PyTorch's scan order
    return np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3])), corners


def unpool(grad: np.ndarray, pooled: np.ndarray, corners: list[np.ndarray]) -> np.ndarray:
    """Sends each pooled gradient to the first corner holding the maximum, as PyTorch breaks ties."""
    c, h, w, n = grad.shape
    out = np.empty((c, h, 2, w, 2, n), dtype=grad.dtype)
    taken = np.zeros(grad.shape, dtype=bool)
    for k, corner in enumerate(corners):
        hit = corner == pooled
        hit &= ~taken
        taken |= hit
        np.multiply(grad, hit, out=out[:, :, k // 2, :, k % 2])
    return out.reshape(c, 2 * h, 2 * w, n)


class AdamFloor:
    """A hand-written training loop: Adam on float32 arrays that ``step`` updates in place.

    Subclasses write ``gradients``, the network's forward and backward passes.

    Args:
        params: the trainable parameters, as float32 arrays; they are updated in place.
        lr: Adam's learning rate.
    """

    def __init__(self, params: list[np.ndarray], lr: float = 1e-3) -> None:
        self.params = params
        self.lr = lr
        self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self.steps = 0

    def gradients(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The mean cross-entropy of a batch and the gradients of ``params``."""
        raise NotImplementedError

    def adam(self, grads: list[np.ndarray]) -> None:
        """One Adam step in place, in PyTorch's arithmetic order."""
        self.steps += 1
        beta1, beta2 = BETAS
        step_size = self.lr / (1 - beta1**self.steps)
        root_correction = np.sqrt(1 - beta2**self.steps)
        for param, grad, (mean, square) in zip(self.params, grads, self.moments, strict=True):
            mean += (1 - beta1) * (grad - mean)
            square *= beta2
            square += (1 - beta2) * grad * grad
            denom = np.sqrt(square)
            denom /= root_correction
            denom += EPS
            param -= step_size * (mean / denom)

    def step(self, images: np.ndarray, labels: np.ndarray) -> float:
        """One training step on a batch; returns its loss."""
        loss, grads = self.gradients(images, labels)
        self.adam(grads)
        return loss

    def epoch(self, images: np.ndarray, labels: np.ndarray, order: np.ndarray, batch_size: int) -> float:
        """One pass over ``images`` in ``order``, as ``benchmarks.models.train_epoch`` does; the last loss."""
        loss = 0.0
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = self.step(images[index], labels[index])
        return loss
