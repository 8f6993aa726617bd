"""LeNet-5 with ReLU and max-pooling (LeCun et al., 1998, with today's usual activations)."""

from __future__ import annotations

from collections.abc import Sequence

from dltool.engine import Tensor, nn


class LeNet5(nn.Module):
    """Two ``Conv-ReLU-MaxPool`` stages (6 and 16 maps of 5x5) and a 120-84-classes head.

    The first convolution pads by 2, so 28x28 digits get the 32x32 geometry of the original.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: outputs (logits) of the last layer.

    Example:
        >>> import dltool.engine as torch
        >>> LeNet5((1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        # each stage: the padded conv keeps the size, the second shrinks it by 4; pools halve it
        flat = 16 * ((height // 2 - 4) // 2) * ((width // 2 - 4) // 2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
