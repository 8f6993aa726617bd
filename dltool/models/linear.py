"""Linear models: softmax (logistic) regression and least-squares regression."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dltool.engine import Tensor, nn


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one ``Linear`` layer on the flattened input.

    It outputs logits; ``CrossEntropyLoss`` applies the softmax.

    Example:
        >>> import dltool.engine as torch
        >>> LogisticRegression((1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.flatten(x))


class LinearRegression(nn.Module):
    """``y = x w^T + b`` on the flattened input, for ``MSELoss``.

    Example:
        >>> import dltool.engine as torch
        >>> LinearRegression((8,), 1)(torch.zeros(4, 8)).shape
        (4, 1)
    """

    def __init__(self, input_shape: Sequence[int], out_features: int = 1) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(math.prod(input_shape), out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.flatten(x))
