"""The numpy char-LSTM floor does PyTorch's arithmetic: same loss, gradients, clipping, Adam updates
and carried state, over two steps from the same weights."""

import numpy as np
import pytest

from benchmarks.numpy_char_lstm import NumpyCharLSTM
from tests.benchmarks.floor_check import assert_same_weights

VOCAB, EMBEDDING, HIDDEN, BATCH, LENGTH = 11, 5, 7, 3, 6
LR = 2e-3
MAX_NORM = 0.05  # under both steps' gradient norms, so clipping acts


def windows(seed: int) -> tuple[np.ndarray, np.ndarray]:
    stream = np.random.default_rng(seed).integers(0, VOCAB, (BATCH, LENGTH + 1))
    return np.ascontiguousarray(stream[:, :-1]), np.ascontiguousarray(stream[:, 1:])


def twins(torch, scale: float = 1.0):
    from benchmarks.torch_twins import TorchRNNLanguageModel

    torch.manual_seed(0)
    reference = TorchRNNLanguageModel(VOCAB, EMBEDDING, HIDDEN, num_layers=2, cell="lstm")
    with torch.no_grad():
        for param in reference.parameters():
            param *= scale
    floor = NumpyCharLSTM(
        [p.detach().numpy().copy() for p in reference.parameters()], lr=LR, max_norm=MAX_NORM
    )
    return reference, floor


def reference_loss(torch, reference, inputs, targets, state):
    logits, state = reference(torch.from_numpy(inputs), state)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.from_numpy(targets).reshape(-1))
    return loss, tuple(s.detach() for s in state)


def test_two_training_steps_match_pytorch():
    torch = pytest.importorskip("torch")

    reference, floor = twins(torch)
    optimizer = torch.optim.Adam(reference.parameters(), lr=LR)
    settled = [np.ones(p.shape, dtype=bool) for p in reference.parameters()]
    state = None
    for seed in (1, 2):  # the second step starts from the carried state and Adam's moments
        inputs, targets = windows(seed)
        loss, grads = floor.gradients(inputs, targets)
        expected, state = reference_loss(torch, reference, inputs, targets, state)
        optimizer.zero_grad()
        expected.backward()
        assert loss == pytest.approx(expected.item(), rel=1e-5)
        for mine, param in zip(grads, reference.parameters(), strict=True):
            theirs = param.grad.numpy()
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())
        total = torch.nn.utils.clip_grad_norm_(reference.parameters(), MAX_NORM).item()
        assert total > MAX_NORM
        assert floor.clip(grads) == pytest.approx(total, rel=1e-5)
        for mine, param in zip(grads, reference.parameters(), strict=True):
            np.testing.assert_allclose(mine, param.grad.numpy(), rtol=1e-4, atol=1e-7)
        floor.adam(grads)
        optimizer.step()
        assert_same_weights(floor, reference, settled, LR, rtol=0, atol=1e-3 * LR)
        for mine, theirs in zip(floor.carried(), state, strict=True):
            np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_saturated_gates_stay_finite():
    """Large weights drive exp past float32's range (exp gives inf, a gate 0 or 1), silently."""
    torch = pytest.importorskip("torch")

    reference, floor = twins(torch, scale=100.0)
    inputs, targets = windows(3)
    loss, grads = floor.gradients(inputs, targets)
    expected, state = reference_loss(torch, reference, inputs, targets, None)
    assert loss == pytest.approx(expected.item(), rel=1e-4)
    assert all(np.isfinite(g).all() for g in grads)
    for mine, theirs in zip(floor.carried(), state, strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_step_updates_the_weights_and_carries_the_state():
    rng = np.random.default_rng(0)
    shapes = [(VOCAB, EMBEDDING), (28, EMBEDDING), (28, HIDDEN), (28,), (28,)]
    shapes += [(28, HIDDEN), (28, HIDDEN), (28,), (28,), (VOCAB, HIDDEN), (VOCAB,)]
    params = [rng.normal(scale=0.3, size=s).astype(np.float32) for s in shapes]
    start = [p.copy() for p in params]
    floor = NumpyCharLSTM(params)
    inputs, targets = windows(4)
    assert np.isfinite(floor.step(inputs, targets))
    assert all(not np.array_equal(p, q) for p, q in zip(floor.params, start, strict=True))
    h, c = floor.carried()
    assert h.shape == c.shape == (2, BATCH, HIDDEN) and np.abs(c).max() > 0


def test_the_char_lstm_workload_times_the_floor():
    from benchmarks import char_lstm
    from benchmarks.common import Settings

    assert char_lstm.cases(Settings(tiny=True))["numpy"]() > 0
    assert "numpy" not in char_lstm.gru.cases(Settings(tiny=True))
