"""A small convolutional network with BatchNorm and dropout."""

from __future__ import annotations

from collections.abc import Sequence

from dltool.engine import Tensor, nn


class CNN(nn.Module):
    """``Conv3x3-BatchNorm-ReLU-MaxPool`` per entry of ``channels``, then ``Dropout-Linear-ReLU-Dropout-Linear``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: outputs (logits) of the last layer.
        channels: output channels of each convolutional block (each halves the image size).
        hidden_size: width of the hidden fully connected layer.
        dropout: drop probability before each fully connected layer.

    Example:
        >>> import dltool.engine as torch
        >>> CNN((1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden_size: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        in_channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            in_channels, height, width = out_channels, height // 2, width // 2
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_channels * height * width, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
