"""Every scheduler gives PyTorch's learning rates (and momenta) step for step, and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl

torch = pytest.importorskip("torch")

STEPS = 25


def _sgd(lib):
    params = [lib.zeros(2, requires_grad=True), lib.zeros(3, requires_grad=True)]
    return lib.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.03}], lr=0.1, momentum=0.9)


def _adam(lib):
    return lib.optim.Adam([lib.zeros(2, requires_grad=True)], lr=0.1, betas=(0.9, 0.99))


def _sequential(lib, opt):
    sched = lib.optim.lr_scheduler
    warmup = sched.LinearLR(opt, start_factor=0.1, total_iters=4)
    cosine = sched.CosineAnnealingLR(opt, T_max=6, eta_min=0.01)
    decay = sched.ExponentialLR(opt, gamma=0.8)
    return sched.SequentialLR(opt, schedulers=[warmup, cosine, decay], milestones=[4, 12])


class _Halving:
    """A callable object: LambdaLR saves its attributes (functions and lambdas are not saved)."""

    def __init__(self) -> None:
        self.base = 0.5

    def __call__(self, epoch: int) -> float:
        return self.base ** (epoch // 3)


class _Decay:
    """A callable object for CyclicLR's ``scale_fn``, whose attributes ``state_dict`` keeps."""

    def __init__(self) -> None:
        self.rate = 0.8

    def __call__(self, x: float) -> float:
        return self.rate**x


def _chained(lib, opt):
    sched = lib.optim.lr_scheduler
    warmup = sched.ConstantLR(opt, factor=0.1, total_iters=5)
    return sched.ChainedScheduler([warmup, sched.ExponentialLR(opt, gamma=0.9)], optimizer=opt)


def _sequential_of_chained(lib, opt):
    sched = lib.optim.lr_scheduler
    chained = sched.ChainedScheduler([sched.PolynomialLR(opt, total_iters=8), sched.ConstantLR(opt, 0.5, 3)])
    return sched.SequentialLR(opt, [chained, sched.MultiplicativeLR(opt, lambda e: 0.9)], milestones=[6])


SCHEDULERS = {
    "step": (_sgd, lambda lib, o: lib.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "multistep": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    ),
    "exponential": (_sgd, lambda lib, o: lib.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    "cosine": (_sgd, lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    "linear": (_sgd, lambda lib, o: lib.optim.lr_scheduler.LinearLR(o)),
    "linear-down": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.LinearLR(o, start_factor=0.25, end_factor=0.5, total_iters=8),
    ),
    "lambda": (_sgd, lambda lib, o: lib.optim.lr_scheduler.LambdaLR(o, lambda epoch: 0.95**epoch)),
    "lambda-per-group": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.LambdaLR(o, [lambda e: 1 / (e + 1), _Halving()]),
    ),
    "onecycle": (_sgd, lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=STEPS)),
    "onecycle-adam": (
        _adam,
        lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=STEPS),
    ),
    "onecycle-linear-3phase": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(
            o,
            max_lr=[0.5, 0.2],
            total_steps=STEPS,
            anneal_strategy="linear",
            three_phase=True,
            base_momentum=[0.8, 0.7],
            max_momentum=0.9,
        ),
    ),
    "onecycle-epochs": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.5, epochs=5, steps_per_epoch=5, pct_start=0.4, cycle_momentum=False
        ),
    ),
    "sequential": (_sgd, _sequential),
    "constant": (_sgd, lambda lib, o: lib.optim.lr_scheduler.ConstantLR(o)),
    "constant-half": (_sgd, lambda lib, o: lib.optim.lr_scheduler.ConstantLR(o, factor=0.5, total_iters=7)),
    "polynomial": (_sgd, lambda lib, o: lib.optim.lr_scheduler.PolynomialLR(o, total_iters=12, power=2.5)),
    "multiplicative": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.9 if e % 3 else 1.05),
    ),
    "multiplicative-per-group": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.MultiplicativeLR(o, [lambda e: 0.95, _Halving()]),
    ),
    "cyclic": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.CyclicLR(
            o, 0.01, [0.1, 0.05], step_size_up=3, step_size_down=5
        ),
    ),
    "cyclic-triangular2": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.CyclicLR(
            o,
            [0.01, 0.02],
            0.1,
            step_size_up=4,
            mode="triangular2",
            base_momentum=[0.7, 0.8],
            max_momentum=0.95,
        ),
    ),
    "cyclic-exp-range-adam": (
        _adam,
        lambda lib, o: lib.optim.lr_scheduler.CyclicLR(
            o, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9
        ),
    ),
    "cyclic-scale-fn": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=_Decay()),
    ),
    "cyclic-scale-fn-iterations": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.CyclicLR(
            o, 0.01, 0.1, 2, scale_fn=lambda x: 1 / (1 + x), scale_mode="iterations", cycle_momentum=False
        ),
    ),
    "warm-restarts": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
    ),
    "warm-restarts-fixed": (
        _sgd,
        lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=4),
    ),
    "chained": (_sgd, _chained),
}


def _trace(optimizer, scheduler, steps, start=0):
    """Learning rates, momenta and ``get_last_lr()`` after each of ``steps`` steps."""
    trace = []
    for _ in range(start, start + steps):
        optimizer.step()
        scheduler.step()
        groups = optimizer.param_groups
        trace.append(
            (
                scheduler.get_last_lr(),
                [g["lr"] for g in groups],
                [g.get("momentum", g.get("betas")) for g in groups],
            )
        )
    return trace


def _build(lib, key):
    make_optimizer, make_scheduler = SCHEDULERS[key]
    optimizer = make_optimizer(lib)
    return optimizer, make_scheduler(lib, optimizer)


@pytest.mark.parametrize("key", SCHEDULERS)
def test_schedule_matches_pytorch(key):
    optimizer, scheduler = _build(dl, key)
    torch_optimizer, torch_scheduler = _build(torch, key)
    assert scheduler.get_last_lr() == torch_scheduler.get_last_lr()
    assert _trace(optimizer, scheduler, STEPS) == _trace(torch_optimizer, torch_scheduler, STEPS)


# PyTorch warns that the chain's schedulers step (when SequentialLR starts it) before the optimizer
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_sequential_of_chained_schedulers_matches_pytorch():
    """SequentialLR undoes the initial steps of the schedulers inside a chain too."""
    optimizer, torch_optimizer = _sgd(dl), _sgd(torch)
    scheduler, torch_scheduler = (
        _sequential_of_chained(dl, optimizer),
        _sequential_of_chained(torch, torch_optimizer),
    )
    assert _trace(optimizer, scheduler, STEPS) == _trace(torch_optimizer, torch_scheduler, STEPS)


@pytest.mark.parametrize("key", SCHEDULERS)
def test_state_dict_round_trip_resumes_exactly(key, tmp_path):
    optimizer, scheduler = _build(dl, key)
    expected = _trace(optimizer, scheduler, STEPS)
    optimizer, scheduler = _build(dl, key)
    _trace(optimizer, scheduler, 10)
    dl.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "s.ckpt")
    checkpoint = dl.load(tmp_path / "s.ckpt")
    optimizer, scheduler = _build(dl, key)
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    assert _trace(optimizer, scheduler, STEPS - 10) == expected[10:]


def test_lambda_state_dict_keeps_callable_objects_but_not_functions():
    halving = _Halving()
    scheduler = dl.optim.lr_scheduler.LambdaLR(_sgd(dl), [lambda e: 1.0, halving])
    halving.base = 0.25
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, {"base": 0.25}]
    fresh = _Halving()
    dl.optim.lr_scheduler.LambdaLR(_sgd(dl), [lambda e: 1.0, fresh]).load_state_dict(state)
    assert fresh.base == 0.25
    assert "lr_lambdas" in state  # loading does not consume the caller's dict


PLATEAU = [
    {"patience": 2, "factor": 0.5},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.05, "cooldown": 2, "min_lr": 0.02, "patience": 1},
    {"patience": 0, "factor": 0.5, "min_lr": [0.05, 0.001], "eps": 1e-2, "threshold": 0.01},
    {"mode": "max", "patience": 1, "cooldown": 1},
    {"threshold_mode": "abs", "threshold": 0.02, "patience": 1},
]
METRICS = [1.0, 0.9, 0.95, 0.92, 0.91, 0.9, 0.85, 0.86, 0.87, 0.88, 0.84, 0.84, 0.84, 0.84, 0.84, 0.83,
           0.9, 0.95, 1.0, 1.1, 1.1, 1.09, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5, 0.5, 0.5]  # fmt: skip


@pytest.mark.parametrize("options", PLATEAU)
def test_reduce_on_plateau_matches_pytorch(options):
    def run(lib):
        optimizer = _sgd(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
        trace = []
        for metric in METRICS:
            optimizer.step()
            scheduler.step(lib.tensor(metric) if metric == 0.5 else metric)
            trace.append(
                (
                    scheduler.get_last_lr(),
                    scheduler.best,
                    scheduler.num_bad_epochs,
                    scheduler.cooldown_counter,
                )
            )
        return trace

    trace = run(dl)
    assert trace == run(torch)
    assert trace[-1][0] != trace[0][0]  # the script does reduce


def test_reduce_on_plateau_resumes_exactly(tmp_path):
    def build():
        optimizer = _sgd(dl)
        return optimizer, dl.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1, cooldown=1)

    def run(optimizer, scheduler, metrics):
        for metric in metrics:
            scheduler.step(metric)
        return [g["lr"] for g in optimizer.param_groups], scheduler.state_dict()

    expected = run(*build(), METRICS)
    optimizer, scheduler = build()
    run(optimizer, scheduler, METRICS[:9])
    dl.save([optimizer.state_dict(), scheduler.state_dict()], tmp_path / "p.ckpt")
    optimizer_state, scheduler_state = dl.load(tmp_path / "p.ckpt")
    optimizer, scheduler = build()
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    assert run(optimizer, scheduler, METRICS[9:]) == expected


def test_step_with_epoch_uses_the_closed_form_and_warns():
    results = []
    for lib in (dl, torch):
        optimizer = _sgd(lib)
        scheduler = lib.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.5)
        optimizer.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            scheduler.step(5)
        results.append(scheduler.get_last_lr())
    assert results[0] == results[1] == [0.025, 0.0075]


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda o: dl.optim.lr_scheduler.StepLR(object(), 3), TypeError, "object is not an Optimizer"),
        (lambda o: dl.optim.lr_scheduler.StepLR(o, 3, last_epoch=4), KeyError, "initial_lr"),
        (lambda o: dl.optim.lr_scheduler.LinearLR(o, start_factor=0), ValueError, "Starting multiplicative"),
        (lambda o: dl.optim.lr_scheduler.LinearLR(o, end_factor=2), ValueError, "Ending multiplicative"),
        (lambda o: dl.optim.lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError, "Expected 2 lr_lambdas"),
        (lambda o: dl.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1), ValueError, "total_steps OR"),
        (lambda o: dl.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=0), ValueError, "positive integer"),
        (lambda o: dl.optim.lr_scheduler.OneCycleLR(o, 0.1, 9, pct_start=1.5), ValueError, "pct_start"),
        (lambda o: dl.optim.lr_scheduler.OneCycleLR(o, 0.1, 9, anneal_strategy="x"), ValueError, "anneal"),
        (lambda o: dl.optim.lr_scheduler.OneCycleLR(o, [0.1], 9), ValueError, "max_lr must have the same"),
        (lambda o: dl.optim.lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be"),
        (lambda o: dl.optim.lr_scheduler.ReduceLROnPlateau(o, mode="up"), ValueError, "mode up is unknown"),
        (
            lambda o: dl.optim.lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.1]),
            ValueError,
            "expected 2 min_lrs",
        ),
        (
            lambda o: dl.optim.lr_scheduler.SequentialLR(o, [dl.optim.lr_scheduler.StepLR(o, 2)], [3]),
            ValueError,
            "number of milestones",
        ),
        (
            lambda o: dl.optim.lr_scheduler.SequentialLR(o, [dl.optim.lr_scheduler.StepLR(_sgd(dl), 2)], []),
            ValueError,
            "same optimizer",
        ),
    ],
)
def test_bad_arguments_raise_like_pytorch(make, error, match):
    with pytest.raises(error, match=match):
        make(_sgd(dl))


def test_onecycle_refuses_to_step_past_its_end():
    optimizer = _sgd(dl)
    scheduler = dl.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        scheduler.step()


def test_onecycle_without_momentum_in_the_optimizer():
    optimizer = dl.optim.Adagrad([dl.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="must support momentum"):
        dl.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=5)
    np.testing.assert_allclose(
        dl.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, 5, cycle_momentum=False).get_last_lr(), [0.004]
    )


@pytest.mark.parametrize(
    "options", [{"T_0": 3}, {"T_0": 2, "T_mult": 3, "eta_min": 0.005}], ids=["fixed-period", "growing-period"]
)
def test_warm_restarts_step_to_fractional_epochs_like_pytorch(options):
    """Per-batch annealing with ``step(epoch + i / n)``, mixed with plain steps and jumps back."""
    epochs = [0.25, 0.5, 1.75, 2.0, 2.999, 3.0, 5.5, 8.0, 8.25, 11.0, 26.5, 1.5, None, None, 0, 7.75, None]

    def trace(lib):
        optimizer = _sgd(lib)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, **options)
        result = []
        for epoch in epochs:
            optimizer.step()
            scheduler.step(epoch)
            result.append((scheduler.get_last_lr(), scheduler.last_epoch, scheduler.T_cur, scheduler.T_i))
        return result

    assert trace(dl) == trace(torch)


@pytest.mark.parametrize(
    "make",
    [
        lambda lib, o: lib.optim.lr_scheduler.ConstantLR(o, factor=0.25, total_iters=4),
        lambda lib, o: lib.optim.lr_scheduler.PolynomialLR(o, total_iters=6, power=0.5),
        lambda lib, o: lib.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.5 + e / 20),
    ],
    ids=["constant", "polynomial", "multiplicative"],
)
def test_step_with_epoch_matches_pytorch(make):
    """The closed forms (or ``get_lr`` at the given epoch, where there is none), as in PyTorch."""
    results = []
    for lib in (dl, torch):
        optimizer = _sgd(lib)
        scheduler = make(lib, optimizer)
        trace = []
        for epoch in [2, 5, 3, 9, 4]:
            optimizer.step()
            with pytest.warns(UserWarning, match="epoch parameter"):
                scheduler.step(epoch)
            trace.append(scheduler.get_last_lr())
        results.append(trace)
    assert results[0] == results[1]


def _sched(lib):
    return lib.optim.lr_scheduler


@pytest.mark.parametrize(
    "make",
    [
        lambda lib, o: _sched(lib).ConstantLR(o, factor=1.5),
        lambda lib, o: _sched(lib).ConstantLR(o, factor=-0.1),
        lambda lib, o: _sched(lib).MultiplicativeLR(o, [lambda e: 0.9]),
        lambda lib, o: _sched(lib).MultiplicativeLR(o, 0.9),
        lambda lib, o: _sched(lib).CyclicLR(o, 0.01, 0.1, mode="sawtooth"),
        lambda lib, o: _sched(lib).CyclicLR(o, [0.01], 0.1),
        lambda lib, o: _sched(lib).CyclicLR(o, 0.01, [0.1, 0.2, 0.3]),
        lambda lib, o: _sched(lib).CyclicLR(o, 0.01, 0.1, base_momentum=[0.8]),
        lambda lib, o: _sched(lib).CyclicLR(lib.optim.Adagrad(o.param_groups[0]["params"]), 0.01, 0.1),
        lambda lib, o: _sched(lib).CosineAnnealingWarmRestarts(o, T_0=0),
        lambda lib, o: _sched(lib).CosineAnnealingWarmRestarts(o, T_0=2.5),
        lambda lib, o: _sched(lib).CosineAnnealingWarmRestarts(o, T_0=3, T_mult=0),
        lambda lib, o: _sched(lib).CosineAnnealingWarmRestarts(o, T_0=3, T_mult=1.5),
        lambda lib, o: _sched(lib).CosineAnnealingWarmRestarts(o, T_0=3, eta_min="0"),
        lambda lib, o: _sched(lib).CosineAnnealingWarmRestarts(o, T_0=3).step(-1),
        lambda lib, o: _sched(lib).ChainedScheduler([]),
        lambda lib, o: _sched(lib).ChainedScheduler(
            [_sched(lib).StepLR(o, 2), _sched(lib).ReduceLROnPlateau(o)]
        ),
        lambda lib, o: _sched(lib).ChainedScheduler([_sched(lib).StepLR(o, 2), object()]),
        lambda lib, o: _sched(lib).SequentialLR(
            o, [_sched(lib).StepLR(o, 2), _sched(lib).ReduceLROnPlateau(o)], [2]
        ),
    ],
)
def test_bad_arguments_raise_pytorchs_errors(make):
    errors = []
    for lib in (dl, torch):
        with pytest.raises((TypeError, ValueError)) as info:
            make(lib, _sgd(lib))
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


def test_chained_scheduler_refuses_another_optimizers_scheduler():
    optimizer = _sgd(dl)
    other = dl.optim.lr_scheduler.StepLR(_sgd(dl), 2)
    with pytest.raises(
        ValueError, match="ChainedScheduler expects all schedulers to belong to the same optimizer"
    ):
        dl.optim.lr_scheduler.ChainedScheduler([dl.optim.lr_scheduler.StepLR(optimizer, 2), other])


def test_cyclic_state_dict_keeps_a_callable_objects_attributes():
    decay = _Decay()
    optimizer = _sgd(dl)
    scheduler = dl.optim.lr_scheduler.CyclicLR(optimizer, 0.01, 0.1, scale_fn=decay)
    decay.rate = 0.5
    state = scheduler.state_dict()
    assert state["_scale_fn_custom"] == {"rate": 0.5}
    fresh = _Decay()
    dl.optim.lr_scheduler.CyclicLR(_sgd(dl), 0.01, 0.1, scale_fn=fresh).load_state_dict(state)
    assert fresh.rate == 0.5
    assert state["_scale_fn_custom"] == {"rate": 0.5}  # loading does not consume the caller's dict
    lambda_state = dl.optim.lr_scheduler.CyclicLR(_sgd(dl), 0.01, 0.1, scale_fn=lambda x: 1.0).state_dict()
    assert lambda_state["_scale_fn_custom"] is None
