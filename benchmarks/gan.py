"""Workload 8: one DCGAN training step as ``task=gan`` takes it, batch 128 of 1x28x28 images.

The step is ``GAN.training_step``'s: a discriminator step on real images and on ``fake.detach()``
(binary cross-entropy on logits), then a generator step with the non-saturating loss (its images
labelled real), each with its own Adam (lr 2e-4, betas (0.5, 0.999)), for ``conf/model/dcgan.yaml``'s
pair (``latent_dim=64``, ``features=32``). The step's reported metrics (``d_x``, ``d_g_z``) are left
out, and the noise is drawn once, so both frameworks do the same arithmetic from the same weights.
An MNIST epoch at batch 128 is 469 such steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, timed, torch
from benchmarks.models import copy_weights
from dltool.models.dcgan import Discriminator, Generator

TITLE = "DCGAN step, batch 128, 1x28x28 (MNIST epoch = 469 steps)"
LATENT_DIM, FEATURES, SIDE = 64, 32, 28


def _adam(lib: Any, module: Any) -> Any:
    return lib.optim.Adam(module.parameters(), lr=2e-4, betas=(0.5, 0.999))


def _step(lib: Any, generator: Any, discriminator: Any, optimizers: tuple, real: Any, noise: Any) -> None:
    optimizer_d, optimizer_g = optimizers
    criterion = lib.nn.functional.binary_cross_entropy_with_logits
    fake = generator(noise)
    real_logits = discriminator(real).reshape(-1)
    fake_logits = discriminator(fake.detach()).reshape(-1)
    loss_d = criterion(real_logits, lib.ones_like(real_logits)) + criterion(
        fake_logits, lib.zeros_like(fake_logits)
    )
    optimizer_d.zero_grad()
    loss_d.backward()
    optimizer_d.step()
    fooled = discriminator(fake).reshape(-1)
    loss_g = criterion(fooled, lib.ones_like(fooled))
    optimizer_g.zero_grad()
    loss_g.backward()
    optimizer_g.step()


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    batch = 8 if settings.tiny else 128
    rng = np.random.default_rng(0)
    images = rng.uniform(-1.0, 1.0, (batch, 1, SIDE, SIDE)).astype(np.float32)
    noise = rng.standard_normal((batch, LATENT_DIM), dtype=np.float32)
    dl.manual_seed(0)
    generator = Generator(LATENT_DIM, 1, FEATURES, SIDE)
    discriminator = Discriminator(1, FEATURES, SIDE)

    def case(lib: Any, pair: tuple) -> Callable[[], float]:
        # NOTE: the models and optimizers live across calls, so a timed step is a later step
        # (Adam's state exists), as in an epoch
        optimizers = (_adam(lib, pair[1]), _adam(lib, pair[0]))
        real, z = lib.from_numpy(images), lib.from_numpy(noise)
        return lambda: timed(lambda: _step(lib, *pair, optimizers, real, z))

    result = {"dltool": case(dl, (generator, discriminator))}
    if torch is not None:
        from benchmarks import torch_twins

        twins = (
            torch_twins.TorchGenerator(LATENT_DIM, 1, FEATURES, SIDE),
            torch_twins.TorchDiscriminator(1, FEATURES, SIDE),
        )
        for model, twin in zip((generator, discriminator), twins, strict=True):
            copy_weights(model, twin, torch)
        result["torch"] = case(torch, twins)
    return result
