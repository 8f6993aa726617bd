"""Ordinary PyTorch programs run unchanged on dltool after the import swap, and from the same
weights their losses follow PyTorch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dltool.datasets import MNIST
from tests.compat.harness import copy_weights, load, swap_imports

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> dict[str, np.ndarray]:
    """256 real training images and labels, as uint8 and int64 arrays."""
    dataset = MNIST(str(data_root), train=True)
    return {"images": dataset.data.numpy()[:256].copy(), "labels": dataset.targets.numpy()[:256].copy()}


def _both(name: str, *args: object) -> tuple[object, object, object, object]:
    """Each library's copy of program ``name`` and its ``make_model(*args)``, with PyTorch's weights."""
    theirs, ours = load(name, "torch"), load(name, "dltool")
    torch.manual_seed(0)
    their_model, our_model = theirs.make_model(*args), ours.make_model(*args)
    copy_weights(their_model, our_model)
    return theirs, ours, their_model, our_model


def _same_losses(ours: list[float], theirs: list[float], rtol: float) -> None:
    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-6)


def test_the_swap_rewrites_imports_only() -> None:
    source = (
        "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader\nx = torch.ones(2)\n"
    )
    assert swap_imports(source) == (
        "import dltool.engine as torch\nimport dltool.engine.nn as nn\n"
        "from dltool.engine.utils.data import DataLoader\nx = torch.ones(2)\n"
    )


def test_softmax_regression_from_scratch_and_concise(mnist: dict) -> None:
    theirs, ours, their_model, our_model = _both("softmax_regression")
    _same_losses(ours.train(our_model, mnist), theirs.train(their_model, mnist), rtol=1e-4)
    their_net, our_net = theirs.make_concise_model(), ours.make_concise_model()
    copy_weights(their_net, our_net)
    _same_losses(ours.train_concise(our_net, mnist), theirs.train_concise(their_net, mnist), rtol=1e-4)


def test_lenet(mnist: dict) -> None:
    theirs, ours, their_model, our_model = _both("lenet")
    assert ours.layer_shapes(our_model) == theirs.layer_shapes(their_model)
    _same_losses(ours.train(our_model, mnist), theirs.train(their_model, mnist), rtol=1e-3)


def test_mnist_convnet_with_adadelta_and_step_lr(mnist: dict) -> None:
    theirs, ours, their_model, our_model = _both("mnist_convnet", False)  # dropout off: same numbers
    _same_losses(ours.train(our_model, mnist), theirs.train(their_model, mnist), rtol=1e-3)
    assert ours.train(ours.make_model(), mnist, epochs=1)  # with dropout it runs, from its own init


def test_sixty_minute_blitz(mnist: dict, tmp_path: Path) -> None:
    theirs, ours = load("blitz", "torch"), load("blitz", "dltool")
    assert ours.tensors_tour() == theirs.tensors_tour()
    assert ours.autograd_tour() == theirs.autograd_tour()
    _, _, their_net, our_net = _both("blitz")
    _same_losses(ours.network_tour(our_net, mnist), theirs.network_tour(their_net, mnist), rtol=1e-4)
    _, _, their_net, our_net = _both("blitz")
    data = {key: value[:64] for key, value in mnist.items()}
    _same_losses(
        ours.train(our_net, data, path=tmp_path / "ours.pth"),
        theirs.train(their_net, data, path=tmp_path / "theirs.pth"),
        rtol=1e-3,
    )


@pytest.fixture
def same_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """``randn`` and ``randn_like`` draw the same numbers in both libraries (from two equal numpy
    streams), so programs that sample noise can be compared step for step."""
    import dltool.engine as dl

    for library in (torch, dl):
        rng = np.random.default_rng(7)

        def randn(*size, rng=rng, library=library, **kwargs):
            size = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
            kwargs.pop("device", None)
            return library.tensor(rng.standard_normal(size), dtype=kwargs.pop("dtype", library.float32))

        monkeypatch.setattr(library, "randn", randn)
        monkeypatch.setattr(library, "randn_like", lambda t, randn=randn: randn(*t.shape, dtype=t.dtype))


@pytest.fixture(scope="module")
def shakespeare(data_root: Path) -> str:
    path = data_root / "shakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip(f"no {path}")
    return "\n".join(path.read_text().splitlines()[:120])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "Transformer"])
# PyTorch's own note that its nested-tensor fast path needs batch_first; it changes no numbers
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
def test_word_language_model(shakespeare: str, kind: str) -> None:
    theirs, ours = load("word_language_model", "torch"), load("word_language_model", "dltool")
    ntokens = len({w for line in shakespeare.splitlines() for w in line.split()}) + 1
    torch.manual_seed(0)
    their_model, our_model = theirs.make_model(kind, ntokens), ours.make_model(kind, ntokens)
    copy_weights(their_model, our_model)
    _same_losses(ours.train(our_model, shakespeare), theirs.train(their_model, shakespeare), rtol=1e-3)


def test_time_sequence_prediction_with_lstm_cells_and_lbfgs() -> None:
    theirs, ours, their_model, our_model = _both("time_sequence_prediction")
    data = theirs.sine_waves()
    _same_losses(ours.train(our_model, data), theirs.train(their_model, data), rtol=1e-6)


def test_vae(mnist: dict, same_noise: None) -> None:
    theirs, ours, their_model, our_model = _both("vae")
    _same_losses(ours.train(our_model, mnist), theirs.train(their_model, mnist), rtol=1e-3)


def test_dcgan(mnist: dict, same_noise: None) -> None:
    theirs, ours, their_model, our_model = _both("dcgan")
    data = {key: value[:128] for key, value in mnist.items()}
    _same_losses(ours.train(our_model, data), theirs.train(their_model, data), rtol=1e-3)
