"""The named models: output shapes, parameter counts, and PyTorch parity of the forward pass
(eval and train mode) and of the gradients, with the weights copied into a PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.models.cnn import CNN
from dltool.models.lenet import LeNet5
from dltool.models.linear import LinearRegression, LogisticRegression
from dltool.models.mlp import MLP

torch = pytest.importorskip("torch")
tnn = torch.nn


class _TorchMLP(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = tnn.Sequential(
            tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(), tnn.Dropout(0.2), tnn.Linear(256, 10)
        )

    def forward(self, x):
        return self.layers(x)


class _TorchLeNet(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
            tnn.Conv2d(6, 16, 5),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
        )
        self.classifier = tnn.Sequential(
            tnn.Flatten(),
            tnn.Linear(400, 120),
            tnn.ReLU(),
            tnn.Linear(120, 84),
            tnn.ReLU(),
            tnn.Linear(84, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class _TorchCNN(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(1, 32, 3, padding=1, bias=False),
            tnn.BatchNorm2d(32),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
            tnn.Conv2d(32, 64, 3, padding=1, bias=False),
            tnn.BatchNorm2d(64),
            tnn.ReLU(),
            tnn.MaxPool2d(2),
        )
        self.classifier = tnn.Sequential(
            tnn.Flatten(),
            tnn.Dropout(0.3),
            tnn.Linear(3136, 128),
            tnn.ReLU(),
            tnn.Dropout(0.3),
            tnn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


TWINS = {
    "mlp": (lambda: MLP((1, 28, 28), 10), _TorchMLP, 203_530),
    "lenet": (lambda: LeNet5((1, 28, 28), 10), _TorchLeNet, 61_706),
    "cnn": (lambda: CNN((1, 28, 28), 10), _TorchCNN, 421_738),
}


def _copy_into_torch(model: dl.nn.Module, twin: tnn.Module) -> None:
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()}
    twin.load_state_dict(state)


@pytest.mark.parametrize("name", TWINS)
def test_forward_and_gradients_match_pytorch(name: str) -> None:
    build, build_twin, count = TWINS[name]
    model, twin = build(), build_twin()
    assert sum(p.numel() for p in model.parameters()) == count
    assert list(model.state_dict()) == list(twin.state_dict())
    _copy_into_torch(model, twin)
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    target = np.array([1, 0, 3, 9])
    model.eval(), twin.eval()
    np.testing.assert_allclose(
        model(dl.tensor(x)).detach().numpy(), twin(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )
    if name == "cnn":  # batch statistics in train mode (dropout off, so both sides agree)
        for m in (*model.modules(), *twin.modules()):
            if type(m).__name__ == "Dropout":
                m.p = 0.0
        model.train(), twin.train()
    loss = dl.nn.functional.cross_entropy(model(dl.tensor(x)), dl.tensor(target))
    twin_loss = tnn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(target))
    loss.backward(), twin_loss.backward()
    assert loss.item() == pytest.approx(twin_loss.item(), rel=1e-5)
    for (key, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=key)
    for (key, b), (_, c) in zip(model.named_buffers(), twin.named_buffers(), strict=True):
        np.testing.assert_allclose(
            np.asarray(b.numpy(), dtype=np.float64), c.numpy(), rtol=1e-4, atol=1e-6, err_msg=key
        )


@pytest.mark.parametrize(
    ("model", "shape", "out"),
    [
        (MLP((3, 8, 8), 5, hidden_sizes=(32, 16), dropout=0.0), (2, 3, 8, 8), (2, 5)),
        (LeNet5((3, 32, 32), 7), (2, 3, 32, 32), (2, 7)),
        (CNN((3, 32, 32), 4, channels=(8, 16, 32), hidden_size=20), (2, 3, 32, 32), (2, 4)),
        (LogisticRegression((1, 28, 28), 10), (2, 1, 28, 28), (2, 10)),
        (LinearRegression((8,), 2), (5, 8), (5, 2)),
    ],
)
def test_output_shapes_for_other_inputs(model: dl.nn.Module, shape: tuple, out: tuple) -> None:
    assert tuple(model(dl.randn(*shape)).shape) == out


def test_logistic_regression_is_one_linear_layer() -> None:
    model = LogisticRegression((1, 28, 28), 10)
    assert [k for k, _ in model.named_parameters()] == ["linear.weight", "linear.bias"]
    x = dl.randn(3, 1, 28, 28)
    expected = x.flatten(1) @ model.linear.weight.T + model.linear.bias
    np.testing.assert_allclose(model(x).detach().numpy(), expected.detach().numpy(), rtol=1e-6)
