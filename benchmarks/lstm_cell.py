"""Workload: a character model whose LSTM runs as an ``LSTMCell`` called in a Python loop.

The shape the recurrent-speed issue names: embedding 64, hidden 256, 35 steps, batch 32, 80
characters, cross-entropy over every position, Adam. Unlike ``char_lstm`` (one fused node per
layer), every timestep is a separate call, as in code that steps a cell by hand (attention,
teacher forcing), so the per-step Python of both frameworks is part of what is timed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import dltool.engine as dl
from benchmarks.common import Settings, timed, torch
from benchmarks.models import copy_weights

TITLE = "LSTMCell loop step, 32 x 35"
VOCAB, EMBEDDING, HIDDEN = 80, 64, 256


def _model(lib: Any) -> Any:
    nn = lib.nn
    return nn.ModuleList([nn.Embedding(VOCAB, EMBEDDING), nn.LSTMCell(EMBEDDING, HIDDEN), nn.Linear(HIDDEN, VOCAB)])


def _step(lib: Any, model: Any, optimizer: Any, inputs: Any, targets: Any) -> None:
    embedding, cell, head = model
    x = embedding(inputs)
    state, outputs = None, []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outputs.append(state[0])
    logits = head(lib.stack(outputs, 1))
    loss = lib.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def cases(settings: Settings) -> dict[str, Callable[[], float]]:
    batch, length = (4, 5) if settings.tiny else (32, 35)
    stream = np.random.default_rng(0).integers(0, VOCAB, (batch, length + 1))
    dl.manual_seed(0)
    model = _model(dl)

    def case(lib: Any, net: Any) -> Callable[[], float]:
        optimizer = lib.optim.Adam(net.parameters(), lr=2e-3)
        inputs, targets = (lib.from_numpy(np.ascontiguousarray(a)) for a in (stream[:, :-1], stream[:, 1:]))
        return lambda: timed(lambda: _step(lib, net, optimizer, inputs, targets))

    result = {"dltool": case(dl, model)}
    if torch is not None:
        twin = _model(torch)
        copy_weights(model, twin, torch)
        result["torch"] = case(torch, twin)
    return result
