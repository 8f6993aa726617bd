"""Each optimizer, over the options that change its math, trains the same model as PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.optim.training import initial_weights, make_params, train, weights

torch = pytest.importorskip("torch")

STEPS = 50
CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.9), "eps": 1e-3}),  # 1 - beta1 > 0.5: lerp's other branch
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.005, "centered": True, "momentum": 0.5, "alpha": 0.3}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1, "eps": 1e-4, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-3, "maximize": True}),
    ("Adadelta", {"lr": 1.0}),
    ("Adadelta", {"lr": 0.5, "rho": 0.5, "eps": 1e-4}),
    ("Adadelta", {"lr": 1.0, "weight_decay": 0.1, "maximize": True}),
    ("Adamax", {"lr": 0.01}),
    ("Adamax", {"lr": 0.01, "betas": (0.3, 0.5), "eps": 1e-3}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.05, "betas": (0.3, 0.9), "maximize": True}),
    ("RAdam", {"lr": 0.01}),  # the first 5 steps without rectification, then with
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "betas": (0.9, 0.9)}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("ASGD", {"lr": 0.05}),
    ("ASGD", {"lr": 0.05, "t0": 10, "lambd": 1e-3, "alpha": 0.5}),  # averaging starts at step 11
    ("ASGD", {"lr": 0.05, "t0": 5, "weight_decay": 0.1, "maximize": True}),
    ("Rprop", {"lr": 0.01}),
    ("Rprop", {"lr": 0.001, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.01)}),
    ("Rprop", {"lr": 0.01, "maximize": True}),
]
FIRST_ORDER = [
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD", "Rprop",
]  # fmt: skip
TOLERANCES = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 1e-4, "atol": 1e-5}}


def _run(lib, name, options, dtype, groups=False):
    params = make_params(lib, initial_weights(), dtype)
    if groups:  # the biases train at their own learning rate
        spec = [{"params": params[0::2]}, {"params": params[1::2], "lr": options["lr"] / 3}]
    else:
        spec = params
    optimizer = getattr(lib.optim, name)(spec, **options)
    train(lib, params, optimizer, STEPS, dtype, sign=-1.0 if options.get("maximize") else 1.0)
    return params, optimizer


def _assert_same_state_dict(ours, theirs, tolerance):
    assert ours["param_groups"] == theirs["param_groups"]
    assert list(ours["state"]) == list(theirs["state"])
    for index, state in theirs["state"].items():
        assert list(ours["state"][index]) == list(state)
        for key, value in state.items():
            mine = ours["state"][index][key]
            assert isinstance(mine, dl.Tensor) and mine.dtype == np.dtype(str(value.dtype).split(".")[1])
            np.testing.assert_allclose(mine.numpy(), value.numpy(), **tolerance)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,options", CONFIGS, ids=[f"{n}-{'-'.join(o)}" for n, o in CONFIGS])
def test_training_matches_pytorch(name, options, dtype):
    params, optimizer = _run(dl, name, options, dtype)
    torch_params, torch_optimizer = _run(torch, name, options, dtype)
    for mine, theirs in zip(weights(params), weights(torch_params), strict=True):
        assert mine.dtype == theirs.dtype
        np.testing.assert_allclose(mine, theirs, **TOLERANCES[dtype])
    _assert_same_state_dict(optimizer.state_dict(), torch_optimizer.state_dict(), TOLERANCES[dtype])


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_param_groups_match_pytorch(name):
    options = {"lr": 0.05, **({"momentum": 0.9} if name in ("SGD", "RMSprop") else {})}
    params, optimizer = _run(dl, name, options, "float64", groups=True)
    torch_params, torch_optimizer = _run(torch, name, options, "float64", groups=True)
    for mine, theirs in zip(weights(params), weights(torch_params), strict=True):
        np.testing.assert_allclose(mine, theirs, **TOLERANCES["float64"])
    _assert_same_state_dict(optimizer.state_dict(), torch_optimizer.state_dict(), TOLERANCES["float64"])


@pytest.mark.parametrize("name", [*FIRST_ORDER, "LBFGS"])
def test_fresh_state_dict_matches_pytorch(name):
    """Before any step (Adagrad already holds state) and with one parameter lacking a gradient."""
    ours = getattr(dl.optim, name)(make_params(dl, initial_weights(), "float32"))
    theirs = getattr(torch.optim, name)(make_params(torch, initial_weights(), "float32"))
    _assert_same_state_dict(ours.state_dict(), theirs.state_dict(), TOLERANCES["float32"])


BAD_ARGUMENTS = [
    ("Adadelta", {"lr": -1.0}),
    ("Adadelta", {"rho": 1.5}),
    ("Adadelta", {"eps": -1e-6}),
    ("Adadelta", {"weight_decay": -0.1}),
    ("Adamax", {"eps": -1.0}),
    ("Adamax", {"betas": (1.0, 0.9)}),
    ("Adamax", {"weight_decay": -1}),
    ("NAdam", {"lr": -0.1}),
    ("NAdam", {"betas": (0.9, 1.0)}),
    ("NAdam", {"momentum_decay": -1e-3}),
    ("RAdam", {"betas": (-0.1, 0.9)}),
    ("RAdam", {"weight_decay": -1}),
    ("ASGD", {"lr": -0.1}),
    ("ASGD", {"weight_decay": -0.5}),
    ("Rprop", {"lr": -1}),
    ("Rprop", {"etas": (1.2, 0.5)}),
    ("Rprop", {"etas": (0.0, 1.2)}),
    ("LBFGS", {"lr": -1}),
]


@pytest.mark.parametrize("name,options", BAD_ARGUMENTS, ids=[f"{n}-{'-'.join(o)}" for n, o in BAD_ARGUMENTS])
def test_bad_arguments_raise_pytorchs_errors(name, options):
    messages = []
    for lib in (dl, torch):
        with pytest.raises(ValueError) as info:
            getattr(lib.optim, name)(make_params(lib, initial_weights(), "float32"), **options)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
