"""A generative adversarial network: a generator against a discriminator, updated in turn."""

from __future__ import annotations

import math
from typing import Any

from PIL import Image

import dltool.engine as dl
from dltool.training.errors import ConfigError
from dltool.training.pictures import image_grid
from dltool.training.tasks.base import StepOutput, Task, from_config


class GAN(Task):
    """The DCGAN loop: per batch, one discriminator step on real images and on generated ones
    (``fake.detach()``, so the generator gets no gradient from it), then one generator step
    with the non-saturating loss (the generator's images labelled real).

    Each step reports ``loss_d``, ``loss_g``, ``d_x`` (the discriminator's mean probability
    that a real image is real) and ``d_g_z`` (the same for generated images, before the
    generator's step). After every epoch ``pictures()`` draws a grid from a fixed noise batch,
    kept as a buffer so that the same noise is drawn after a resume.

    Args:
        generator: maps noise ``(N, latent_dim)`` to images in [-1, 1]; it has ``latent_dim``.
        discriminator: maps images to one logit each, ``(N,)`` or ``(N, 1)``.
        samples: the fixed noise batch's size (the grid's image count).
    """

    name = "gan"
    dataset_kinds = ("classification",)  # image datasets; their labels are not used
    automatic_optimization = False
    metric_names = ("loss_d", "loss_g", "d_x", "d_g_z")
    saved_pictures = ("samples",)

    def __init__(self, generator: dl.nn.Module, discriminator: dl.nn.Module, samples: int = 64) -> None:
        super().__init__()
        for what, module in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(module, dl.nn.Module):
                raise TypeError(f"{what}: expected an nn.Module, got {type(module).__name__}")
        latent_dim = getattr(generator, "latent_dim", None)
        if not isinstance(latent_dim, int):
            raise TypeError(f"generator: {type(generator).__name__} has no integer latent_dim attribute")
        self.generator, self.discriminator = generator, discriminator
        self.criterion = dl.nn.BCEWithLogitsLoss()
        self.register_buffer("fixed_noise", dl.randn(samples, latent_dim))

    def configure_optimizers(self) -> list[Any]:
        """``optimizer_d`` and ``optimizer_g`` from the config, scheduled by ``scheduler_d``/``_g``."""
        return [
            from_config("optimizer_d", self.discriminator.parameters(), scheduler="scheduler_d"),
            from_config("optimizer_g", self.generator.parameters(), scheduler="scheduler_g"),
        ]

    def forward(self, noise: dl.Tensor) -> dl.Tensor:
        return self.generator(noise)

    def training_step(self, batch: Any, batch_idx: int) -> StepOutput:
        real = _images(batch)
        optimizer_d, optimizer_g = self.optimizers()
        fake = self.generator(dl.randn(real.shape[0], self.fixed_noise.shape[1], device=real.device))
        real_logits = self._logits(real)
        fake_logits = self._logits(fake.detach())
        loss_d = self.criterion(real_logits, dl.ones_like(real_logits)) + self.criterion(
            fake_logits, dl.zeros_like(fake_logits)
        )
        self.optimizer_step(loss_d, optimizer_d)
        fooled = self._logits(fake)
        loss_g = self.criterion(fooled, dl.ones_like(fooled))
        self.optimizer_step(loss_g, optimizer_g)
        return {
            "loss_d": loss_d,
            "loss_g": loss_g,
            "d_x": real_logits.detach().sigmoid().mean(),
            "d_g_z": fake_logits.sigmoid().mean(),
        }

    def _logits(self, images: dl.Tensor) -> dl.Tensor:
        return self.discriminator(images).reshape(-1)

    @dl.no_grad()
    def sample(self, noise: dl.Tensor) -> dl.Tensor:
        """The generator's images for ``noise``, in eval mode (BatchNorm's running statistics)."""
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(noise)
        finally:
            self.generator.train(was_training)

    def pictures(self) -> dict[str, Image.Image]:
        return {"samples": self.sample_grid(self.sample(self.fixed_noise))}

    @staticmethod
    def sample_grid(images: dl.Tensor, nrow: int | None = None) -> Image.Image:
        """``images`` drawn as one grid, ``nrow`` a row (None: as square as the count allows)."""
        return image_grid(images.numpy(force=True), nrow=nrow or math.ceil(math.sqrt(len(images))))

    def check(self, batch: Any) -> None:
        """Refuse a generator whose images are not the dataset's shape, or a discriminator that
        does not give one logit per image."""
        real = _images(batch)
        fake = self.generator(dl.randn(real.shape[0], self.fixed_noise.shape[1], device=real.device))
        if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
            raise ConfigError(
                f"generator: it makes images of shape {tuple(fake.shape[1:])}, and the dataset's are "
                f"{tuple(real.shape[1:])}"
            )
        logits = self.discriminator(real)
        if logits.numel() != real.shape[0]:
            raise ConfigError(
                f"discriminator: expected one logit per image, got shape {tuple(logits.shape)} "
                f"for {real.shape[0]} images"
            )


def _images(batch: Any) -> dl.Tensor:
    """The images of a batch: the batch itself, or its first element (labels are ignored)."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch
