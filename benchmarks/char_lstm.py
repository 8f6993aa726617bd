"""Workload 9: one training step of the character LSTM as ``task=language_model`` takes it.

The default config's model (``RNNLanguageModel(vocab_size=80, embedding_dim=64, hidden_size=256,
num_layers=2, cell="lstm")``, Shakespeare's 80 characters) on a batch of 64 windows of 100 random
tokens: cross-entropy over every position, gradient norm clipped at 1.0, Adam at lr 2e-3. The
recurrent state runs on from one step to the next, detached, as with ``carry_state``. Both
frameworks start from the same weights. An epoch of the Shakespeare corpus's training split is
226 such steps. The LSTM's step is also timed as the hand-written numpy loop of
``benchmarks.numpy_char_lstm`` (the ``numpy`` column: the floor of an engine on numpy's kernels).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, timed, torch
from benchmarks.models import copy_weights
from benchmarks.numpy_char_lstm import NumpyCharLSTM
from dltool.models.language import RNNLanguageModel

TITLE = "char-LSTM step, 64 x 100 (Shakespeare epoch = 226 steps)"
MODEL = {"vocab_size": 80, "embedding_dim": 64, "hidden_size": 256, "num_layers": 2, "cell": "lstm"}


def _step(lib: Any, model: Any, optimizer: Any, inputs: Any, targets: Any, state: Any) -> Any:
    """One step from ``state`` (``(h, c)`` for an LSTM, ``h`` for a GRU); the new state, detached."""
    logits, state = model(inputs, state)
    loss = lib.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return state.detach() if isinstance(state, lib.Tensor) else tuple(s.detach() for s in state)


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    return step_cases(settings, "lstm", floor=lambda params: NumpyCharLSTM(params, lr=2e-3).step)


def step_cases(
    settings: Settings, cell: str, floor: Callable[[list[np.ndarray]], Callable[..., float]] | None = None
) -> dict[str, Callable[[], float]]:
    """The timed step of the language model with ``cell`` ("lstm", "gru") in both frameworks and,
    if given, ``floor``: made from the starting weights (``state_dict`` order), it steps on (inputs,
    targets)."""
    batch, length = (4, 10) if settings.tiny else (64, 100)
    stream = np.random.default_rng(0).integers(0, MODEL["vocab_size"], (batch, length + 1))
    dl.manual_seed(0)
    model = RNNLanguageModel(**{**MODEL, "cell": cell})

    def case(lib: Any, net: Any) -> Callable[[], float]:
        optimizer = lib.optim.Adam(net.parameters(), lr=2e-3)
        inputs, targets = (lib.from_numpy(np.ascontiguousarray(a)) for a in (stream[:, :-1], stream[:, 1:]))
        carried = [None]  # the recurrent state, from one step to the next

        def step() -> None:
            carried[0] = _step(lib, net, optimizer, inputs, targets, carried[0])

        return lambda: timed(step)

    result = {"dltool": case(dl, model)}
    if torch is not None:
        from benchmarks import torch_twins

        twin = torch_twins.TorchRNNLanguageModel(**{**MODEL, "cell": cell})
        copy_weights(model, twin, torch)
        result["torch"] = case(torch, twin)
    if floor is not None:
        step = floor([v.detach().numpy().copy() for v in model.state_dict().values()])
        inputs, targets = np.ascontiguousarray(stream[:, :-1]), np.ascontiguousarray(stream[:, 1:])
        result["numpy"] = lambda: timed(lambda: step(inputs, targets))
    return result


# The same step with a GRU (``model=gru_lm``'s cell) in place of the LSTM: ``char_gru`` in run.py.
gru = SimpleNamespace(TITLE="char-GRU step, 64 x 100", cases=lambda settings: step_cases(settings, "gru"))
