"""The DCGAN pair: shapes and ranges, its initialization, bad sizes, and PyTorch parity of the
forward pass (train and eval mode), the BCE loss, its gradients and the BatchNorm buffers."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.models.dcgan import Discriminator, Generator

torch = pytest.importorskip("torch")
tnn = torch.nn

from benchmarks.torch_twins import TorchDiscriminator, TorchGenerator  # noqa: E402  (needs torch)


def _twin(model: dl.nn.Module, twin: tnn.Module) -> tnn.Module:
    """``twin`` in float64 holding ``model``'s weights and buffers."""
    twin.double()
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()})
    return twin


def _assert_close(actual: dl.Tensor, expected, name: str) -> None:
    np.testing.assert_allclose(
        actual.detach().numpy(), expected.detach().numpy(), rtol=1e-7, atol=1e-10, err_msg=name
    )


def _assert_step_matches(pair: tuple, twins: tuple, z: np.ndarray, target: np.ndarray) -> None:
    """One ``BCEWithLogits(D(G(z)), target)`` forward and backward on both sides, compared."""
    (gen, disc), (tgen, tdisc) = pair, twins
    for model in (*pair, *twins):
        model.zero_grad()
    fake, tfake = gen(dl.tensor(z)), tgen(torch.from_numpy(z))
    logits, tlogits = disc(fake), tdisc(tfake)
    loss = dl.nn.functional.binary_cross_entropy_with_logits(logits, dl.tensor(target))
    tloss = tnn.functional.binary_cross_entropy_with_logits(tlogits, torch.from_numpy(target))
    loss.backward(), tloss.backward()
    _assert_close(fake, tfake, "images")
    _assert_close(logits, tlogits, "logits")
    _assert_close(loss, tloss, "loss")
    for model, twin in zip(pair, twins, strict=True):
        for (key, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
            _assert_close(p.grad, q.grad, key)
        for (key, b), (_, c) in zip(model.named_buffers(), twin.named_buffers(), strict=True):
            _assert_close(b, c, key)


@pytest.mark.parametrize(
    ("latent_dim", "channels", "features", "image_size"), [(64, 1, 64, 28), (16, 3, 8, 32)]
)
def test_forward_loss_and_gradients_match_pytorch(
    latent_dim: int, channels: int, features: int, image_size: int
) -> None:
    gen = Generator(latent_dim, channels, features, image_size).double()
    disc = Discriminator(channels, features, image_size).double()
    twins = (
        _twin(gen, TorchGenerator(latent_dim, channels, features, image_size)),
        _twin(disc, TorchDiscriminator(channels, features, image_size)),
    )
    assert list(gen.state_dict()) == list(twins[0].state_dict())
    assert list(disc.state_dict()) == list(twins[1].state_dict())
    rng = np.random.default_rng(0)
    target = np.array([1.0, 0.0, 1.0, 0.0])
    _assert_step_matches((gen, disc), twins, rng.standard_normal((4, latent_dim)), target)
    # eval mode after the train step, so the running statistics are not the trivial 0 and 1
    for model in (gen, disc, *twins):
        model.eval()
    _assert_step_matches((gen, disc), twins, rng.standard_normal((4, latent_dim)), target)


@pytest.mark.parametrize(("channels", "image_size"), [(1, 28), (3, 32), (1, 8)])
def test_shapes_and_range(channels: int, image_size: int) -> None:
    gen = Generator(latent_dim=8, channels=channels, features=4, image_size=image_size)
    disc = Discriminator(channels=channels, features=4, image_size=image_size)
    images = gen(dl.randn(5, 8) * 50)  # large noise drives the Tanh into saturation
    assert images.shape == (5, channels, image_size, image_size)
    values = images.detach().numpy()
    assert values.min() >= -1.0 and values.max() <= 1.0 and values.std() > 0
    logits = disc(images)
    assert logits.shape == (5,) and logits.dtype == dl.float32


def _values(modules, kinds: tuple, name: str) -> np.ndarray:
    return np.concatenate(
        [getattr(m, name).detach().numpy().ravel() for m in modules if isinstance(m, kinds)]
    )


def test_dcgan_initialization_from_the_default_generator() -> None:
    modules = [*Generator().modules(), *Discriminator().modules()]
    nn = dl.nn
    weights = _values(modules, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d), "weight")
    scales = _values(modules, nn.BatchNorm2d, "weight")
    biases = [m.bias.detach().numpy() for m in modules if getattr(m, "bias", None) is not None]
    assert abs(weights.mean()) < 1e-3 and weights.std() == pytest.approx(0.02, rel=0.01)
    assert scales.mean() == pytest.approx(1.0, abs=0.01) and scales.std() == pytest.approx(0.02, rel=0.2)
    assert len(biases) == 6 and not any(b.any() for b in biases)
    dl.manual_seed(7)
    first = Generator(features=4).state_dict()
    dl.manual_seed(7)
    again = Generator(features=4).state_dict()
    assert all(np.array_equal(first[k].numpy(), again[k].numpy()) for k in first)


@pytest.mark.parametrize("image_size", [30, 0, -4, 2])
def test_an_image_size_that_is_not_a_multiple_of_4_is_a_clear_error(image_size: int) -> None:
    for build in (Generator, Discriminator):
        with pytest.raises(
            ValueError, match=f"image_size must be a positive multiple of 4.*got {image_size}"
        ):
            build(image_size=image_size)
