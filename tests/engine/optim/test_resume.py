"""Train, checkpoint with ``save``, resume in fresh objects: the weights equal an uninterrupted run, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.optim.training import initial_weights, make_params, train, weights

STEPS, SPLIT = 30, 13
RUNS = {
    "sgd-onecycle": (
        lambda p: dl.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda o: dl.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=STEPS),
    ),
    "adam-cosine": (
        lambda p: dl.optim.Adam(p, lr=0.01, amsgrad=True),
        lambda o: dl.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    ),
    "adamw-onecycle": (
        lambda p: dl.optim.AdamW(p, lr=0.01),
        lambda o: dl.optim.lr_scheduler.OneCycleLR(o, max_lr=0.02, total_steps=STEPS, three_phase=True),
    ),
    "rmsprop-sequential": (
        lambda p: dl.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
        lambda o: dl.optim.lr_scheduler.SequentialLR(
            o,
            [dl.optim.lr_scheduler.LinearLR(o, 0.2, total_iters=5), dl.optim.lr_scheduler.StepLR(o, 4)],
            [5],
        ),
    ),
    "adagrad-plateau": (
        lambda p: dl.optim.Adagrad(p, lr=0.1, lr_decay=0.01),
        lambda o: dl.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, threshold=0.1),
    ),
    "adadelta-constant": (
        lambda p: dl.optim.Adadelta(p, weight_decay=1e-3),
        lambda o: dl.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=17),
    ),
    "adamax-polynomial": (
        lambda p: dl.optim.Adamax(p, lr=0.01),
        lambda o: dl.optim.lr_scheduler.PolynomialLR(o, total_iters=20, power=2.0),
    ),
    "nadam-cyclic": (
        lambda p: dl.optim.NAdam(p, lr=0.01, weight_decay=1e-2, decoupled_weight_decay=True),
        lambda o: dl.optim.lr_scheduler.CyclicLR(
            o, 0.001, 0.01, step_size_up=4, mode="exp_range", gamma=0.95
        ),
    ),
    "radam-warm-restarts": (
        lambda p: dl.optim.RAdam(p, lr=0.01, weight_decay=1e-2),
        lambda o: dl.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2),
    ),
    "asgd-chained": (
        lambda p: dl.optim.ASGD(p, lr=0.05, t0=5),
        lambda o: dl.optim.lr_scheduler.ChainedScheduler(
            [dl.optim.lr_scheduler.ConstantLR(o, 0.5, 8), dl.optim.lr_scheduler.ExponentialLR(o, 0.95)]
        ),
    ),
    "rprop-multiplicative": (
        lambda p: dl.optim.Rprop(p, lr=0.01),
        lambda o: dl.optim.lr_scheduler.MultiplicativeLR(o, lambda epoch: 0.97),
    ),
}


def _on_loss(key):
    return (lambda scheduler, loss: scheduler.step(loss)) if key.endswith("plateau") else None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("key", RUNS)
def test_resume_is_bit_identical(key, dtype, tmp_path):
    make_optimizer, make_scheduler = RUNS[key]

    def build(arrays):
        params = make_params(dl, arrays, dtype)
        optimizer = make_optimizer(params)
        return params, optimizer, make_scheduler(optimizer)

    params, optimizer, scheduler = build(initial_weights())
    train(dl, params, optimizer, STEPS, dtype, scheduler, on_loss=_on_loss(key))
    expected = weights(params)

    params, optimizer, scheduler = build(initial_weights())
    train(dl, params, optimizer, SPLIT, dtype, scheduler, on_loss=_on_loss(key))
    checkpoint = {
        "model": {str(i): p for i, p in enumerate(params)},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": SPLIT,
    }
    dl.save(checkpoint, tmp_path / "last.ckpt")
    del params, optimizer, scheduler, checkpoint

    loaded = dl.load(tmp_path / "last.ckpt")
    params, optimizer, scheduler = build([loaded["model"][str(i)].detach().numpy() for i in range(4)])
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    train(dl, params, optimizer, STEPS - SPLIT, dtype, scheduler, start=loaded["step"], on_loss=_on_loss(key))

    for resumed, uninterrupted in zip(weights(params), expected, strict=True):
        assert resumed.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(resumed, uninterrupted)
