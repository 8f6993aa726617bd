"""What the numpy floors' tests share: a training step of a floor beside one of its PyTorch twin,
and the check of the weights that Adam left in both."""

from typing import Any

import numpy as np


def step_both(
    torch: Any,
    floor: Any,
    reference: Any,
    optimizer: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *floor_args: Any,
) -> tuple[float, list[np.ndarray], float]:
    """One Adam step of ``floor`` and of ``reference`` (with ``optimizer``) on the same batch: the
    floor's loss and gradients, and PyTorch's loss (its gradients stay in ``.grad``)."""
    loss, grads = floor.gradients(images, labels, *floor_args)
    optimizer.zero_grad()
    expected = torch.nn.functional.cross_entropy(
        reference(torch.from_numpy(images)), torch.from_numpy(labels)
    )
    expected.backward()
    floor.adam(grads)
    optimizer.step()
    return loss, grads, expected.item()


def assert_same_weights(
    floor: Any, reference: Any, settled: list[np.ndarray], lr: float, **tolerance: float
) -> None:
    """The floor's weights against PyTorch's after a step, each within ``tolerance`` where its
    gradient has always been more than rounding noise (``settled``, narrowed here), within 2 * lr
    elsewhere: Adam's first steps move a weight by about lr * sign(grad), and the sign of a noise
    gradient (a dead unit's) may differ."""
    for mine, param, held in zip(floor.params, reference.parameters(), settled, strict=True):
        held &= np.abs(param.grad.numpy()) > 1e-5
        theirs = param.detach().numpy()
        np.testing.assert_allclose(mine[held], theirs[held], **tolerance)
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=2 * lr)
