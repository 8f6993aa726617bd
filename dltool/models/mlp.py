"""A multilayer perceptron for flattened inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dltool.engine import Tensor, nn


class MLP(nn.Module):
    """Flatten, then ``Linear-ReLU-Dropout`` per hidden size, then a ``Linear`` classifier.

    Args:
        input_shape: the shape of one sample, e.g. ``(1, 28, 28)``.
        num_classes: outputs (logits) of the last layer.
        hidden_sizes: the width of each hidden layer.
        dropout: the drop probability after each hidden layer.

    Example:
        >>> import dltool.engine as torch
        >>> MLP((1, 28, 28), 10, hidden_sizes=(256,))(torch.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_sizes: Sequence[int] = (256,),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
