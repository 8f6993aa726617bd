"""A DCGAN generator and discriminator for small single-channel images such as MNIST digits.

Radford et al., 2016, scaled down to two up- and down-sampling stages (7x7 to 28x28), so an
epoch of MNIST trains in minutes on a CPU. The discriminator returns logits, for
``BCEWithLogitsLoss``.
"""

from __future__ import annotations

from dltool.engine import Tensor, nn

_STD = 0.02


def _side(image_size: int) -> int:
    """The side of the smallest feature map: two stride-2 stages divide ``image_size`` by 4."""
    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size must be a positive multiple of 4 (such as 28), got {image_size}")
    return image_size // 4


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialization: weights from ``N(0, 0.02²)`` (BatchNorm scales ``N(1, 0.02²)``), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, _STD)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, _STD)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """Noise to images: ``Linear`` to ``2f`` maps of ``s/4 x s/4``, two ``ConvTranspose2d`` doublings, ``Tanh``.

    Layers followed by BatchNorm have no bias (the norm's shift replaces it).

    Args:
        latent_dim: size of the noise vector ``z``.
        channels: channels of the images made (1 for MNIST).
        features: maps after the first up-sampling (``f``); the projection makes ``2f``.
        image_size: side ``s`` of the square images made; a multiple of 4.

    Raises:
        ValueError: ``image_size`` is not a positive multiple of 4.

    Example:
        >>> import dltool.engine as torch
        >>> Generator()(torch.randn(2, 64)).shape
        (2, 1, 28, 28)
    """

    def __init__(
        self, latent_dim: int = 64, channels: int = 1, features: int = 64, image_size: int = 28
    ) -> None:
        super().__init__()
        side = _side(image_size)
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * features * side * side, bias=False),
            nn.Unflatten(1, (2 * features, side, side)),
            nn.BatchNorm2d(2 * features),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * features, features, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(features),
            nn.ReLU(),
            nn.ConvTranspose2d(features, channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )
        self.apply(_dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        """Images ``(N, channels, s, s)`` in ``[-1, 1]`` from noise ``z`` of shape ``(N, latent_dim)``."""
        return self.net(z)


class Discriminator(nn.Module):
    """Images to one logit each: two stride-2 ``Conv2d`` with ``LeakyReLU(0.2)``, then ``Linear``.

    Args:
        channels: channels of the input images.
        features: maps of the first convolution (``f``); the second makes ``2f``.
        image_size: side ``s`` of the square input images; a multiple of 4.

    Raises:
        ValueError: ``image_size`` is not a positive multiple of 4.

    Example:
        >>> import dltool.engine as torch
        >>> Discriminator()(torch.randn(2, 1, 28, 28)).shape
        (2,)
    """

    def __init__(self, channels: int = 1, features: int = 64, image_size: int = 28) -> None:
        super().__init__()
        side = _side(image_size)
        self.net = nn.Sequential(
            nn.Conv2d(channels, features, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(features, 2 * features, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * features),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * features * side * side, 1),
        )
        self.apply(_dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N,)`` (no sigmoid) for images ``x`` of shape ``(N, channels, s, s)``."""
        return self.net(x).squeeze(1)
