"""``dltool sample`` and ``dltool generate``: draw from a trained GAN or language model."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

import dltool.engine as dl
from dltool.datasets.text import Vocabulary
from dltool.training.console import console
from dltool.training.errors import ConfigError
from dltool.training.saved import load_task, require
from dltool.training.tasks import GAN, LanguageModel

log = logging.getLogger("dltool")


def sample(cfg: DictConfig) -> Path:
    """Write a grid of ``cfg.n`` images from a GAN checkpoint's generator as a PNG.

    Returns:
        The PNG's path (``cfg.output``, or ``<checkpoint stem>.samples.png`` beside it).
    """
    _check_integer("n", cfg.n, 1)
    _check_integer("seed", cfg.seed, 0)
    saved = load_task(cfg.checkpoint, cfg.trust_checkpoint_code, cfg.device)
    gan = require(saved, GAN, "sample")
    generator = dl.Generator().manual_seed(cfg.seed)
    noise = dl.randn(cfg.n, gan.fixed_noise.shape[1], generator=generator).to(gan.fixed_noise.device)
    output = Path(cfg.output) if cfg.output else saved.path.with_name(f"{saved.path.stem}.samples.png")
    gan.sample_grid(gan.sample(noise), cfg.nrow).save(output)
    log.info(f"wrote {output} ({cfg.n} samples)")
    return output


def generate(cfg: DictConfig) -> str:
    """Print ``cfg.prompt`` and ``cfg.length`` tokens a language-model checkpoint samples after it.

    Returns:
        The generated text, without the prompt.
    """
    _check_integer("length", cfg.length, 1)
    _check_integer("seed", cfg.seed, 0)
    if not isinstance(cfg.temperature, (int, float)) or not cfg.temperature > 0:
        raise ConfigError(f"temperature: expected a number > 0, got {cfg.temperature!r}")
    saved = load_task(cfg.checkpoint, cfg.trust_checkpoint_code, cfg.device)
    model = require(saved, LanguageModel, "generate")
    vocabulary = Vocabulary(list(saved.meta["classes"]), saved.config.dataset.get("level", "char"))
    prompt = str(cfg.prompt or "")
    try:
        ids = vocabulary.encode(prompt)
    except ValueError as ex:
        raise ConfigError(f"prompt: {ex}") from ex
    if not ids:
        raise ConfigError("prompt: give at least one token to start from, e.g. prompt='ROMEO:'")
    generator = dl.Generator().manual_seed(cfg.seed)
    text = vocabulary.decode(model.generate(ids, cfg.length, float(cfg.temperature), generator))
    console().print(prompt + text, markup=False, highlight=False)
    return text


def _check_integer(name: str, value: object, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(f"{name}: expected an integer >= {least}, got {value!r}")
