"""The ``Optimizer`` base: groups, validation, zero_grad, closures, state_dict and its loading."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import optim

ALL = [
    optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad, optim.Adadelta, optim.Adamax,
    optim.NAdam, optim.RAdam, optim.ASGD, optim.Rprop,
]  # fmt: skip


def _params(dtype=dl.float32):
    return [dl.ones(2, 3, dtype=dtype, requires_grad=True), dl.ones(3, dtype=dtype, requires_grad=True)]


def _loss(params):
    return sum(((p * p) * (i + 1)).sum() for i, p in enumerate(params))


@pytest.mark.parametrize("cls", [*ALL, optim.LBFGS])
def test_negative_learning_rate_is_refused_like_pytorch(cls):
    with pytest.raises(ValueError, match=r"^Invalid learning rate: -0.1$"):
        cls(_params(), lr=-0.1)


@pytest.mark.parametrize(
    "cls,options,match",
    [
        (optim.SGD, {"momentum": -1}, "Invalid momentum value: -1"),
        (optim.SGD, {"weight_decay": -1}, "Invalid weight_decay value: -1"),
        (optim.SGD, {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
        (optim.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov momentum requires"),
        (optim.Adam, {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
        (optim.Adam, {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
        (optim.AdamW, {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
        (optim.Adam, {"weight_decay": float("nan")}, "Invalid weight_decay value: nan"),
        (optim.RMSprop, {"alpha": -0.5}, "Invalid alpha value: -0.5"),
        (optim.Adagrad, {"lr_decay": -1}, "Invalid lr_decay value: -1"),
        (optim.Adagrad, {"initial_accumulator_value": -1}, "Invalid initial_accumulator_value value: -1"),
        (optim.Adam, {"differentiable": True}, "differentiable=True is not supported"),
        (optim.Adadelta, {"rho": 1.5}, "Invalid rho value: 1.5"),
        (optim.NAdam, {"momentum_decay": -1}, "Invalid momentum_decay value: -1"),
        (optim.RAdam, {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
        (optim.Rprop, {"etas": (1.2, 0.5)}, "Invalid eta values: 1.2, 0.5"),
        (optim.Rprop, {"differentiable": True}, "differentiable=True is not supported"),
    ],
)
def test_bad_hyperparameters_are_refused(cls, options, match):
    with pytest.raises(ValueError, match=match):
        cls(_params(), **options)


def test_bad_params_are_refused():
    w = dl.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got Tensor"):
        optim.SGD(w)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {w}}])
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the params is int"):
        optim.SGD([w, 3])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([w * 2])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([{"params": w * 2}])
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}])
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([w, w])
    with pytest.raises(ValueError, match="didn't specify a value of required optimization parameter lr"):

        class Needy(optim.Optimizer):
            pass

        Needy([w], {"lr": optim.optimizer.required})


def test_groups_take_defaults_and_their_own_values():
    a, b = _params()
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["params"][0] is b and opt.param_groups[1]["momentum"] == 0.9
    c = dl.ones(1, requires_grad=True)
    opt.add_param_group({"params": [c], "momentum": 0.0})
    _loss([a, b, c]).backward()
    opt.step()
    np.testing.assert_allclose(c.detach().numpy(), [1 - 0.1 * 6])
    np.testing.assert_allclose(b.detach().numpy(), np.full(3, 1 - 0.5 * 4))
    assert "Parameter Group 2" in repr(opt) and "momentum: 0.0" in repr(opt)


def test_named_parameters_give_param_names():
    a, b = _params()
    opt = optim.Adam([("w", a), ("b", b)])
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [dl.ones(1, requires_grad=True)]})


def test_adagrad_gives_added_groups_their_state():
    a, b = _params()
    opt = optim.Adagrad([a], initial_accumulator_value=0.1)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 0.3})
    assert float(opt.state[b]["sum"][0]) == pytest.approx(0.3)
    _loss([a, b]).backward()
    opt.step()
    assert float(opt.state[b]["step"]) == 1.0


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    params = _params()
    opt = optim.SGD(params, lr=0.1)
    _loss(params).backward()
    grad = params[0].grad
    opt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert all(p.grad is None for p in params)
    else:
        assert params[0].grad is grad and not grad.numpy().any()


@pytest.mark.parametrize("cls", ALL)
def test_step_updates_in_place_without_a_graph_and_skips_params_without_grad(cls):
    a, b = _params()
    opt = cls([a, b], lr=0.1)
    storage, version = a._data, a._version
    (a * a).sum().backward()
    opt.step()
    assert a._data is storage and a._version == version + 1
    assert a.is_leaf and a.grad_fn is None and a.requires_grad
    assert not np.allclose(a.detach().numpy(), 1.0)
    np.testing.assert_array_equal(b.detach().numpy(), 1.0)
    assert b not in opt.state or cls is optim.Adagrad


def test_closure_runs_with_grad_enabled_and_its_loss_is_returned():
    params = _params()
    opt = optim.SGD(params, lr=0.1)

    def closure():
        assert dl.is_grad_enabled()
        opt.zero_grad()
        loss = _loss(params)
        loss.backward()
        return loss

    with dl.no_grad():
        loss = opt.step(closure)
    assert float(loss) == pytest.approx(6 + 6)
    np.testing.assert_allclose(params[0].detach().numpy(), 0.8)


def test_state_dict_packs_params_as_indices_in_group_order():
    a, b, c = (dl.ones(2, requires_grad=True) for _ in range(3))
    opt = optim.SGD([{"params": [c, a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    _loss([a, b, c]).backward()
    opt.step()
    state = opt.state_dict()
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2]]
    assert list(state["param_groups"][0])[-1] == "params"
    assert sorted(state["state"]) == [0, 1, 2]
    assert state["state"][0]["momentum_buffer"] is opt.state[c]["momentum_buffer"]  # live, as in PyTorch


def test_load_state_dict_checks_the_layout():
    opt = optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]})


def test_load_state_dict_copies_and_casts_state_to_the_params():
    source = _params(dl.float32)
    opt = optim.Adam(source, lr=0.1)
    _loss(source).backward()
    opt.step()
    state = opt.state_dict()
    target = _params(dl.float64)
    fresh = optim.Adam(target, lr=0.5)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 0.1 and fresh.param_groups[0]["params"][0] is target[0]
    loaded = fresh.state[target[0]]
    assert loaded["exp_avg"].dtype == dl.float64 and loaded["step"].dtype == dl.float32
    assert loaded["exp_avg"]._data is not state["state"][0]["exp_avg"]._data
    np.testing.assert_allclose(loaded["exp_avg_sq"].numpy(), state["state"][0]["exp_avg_sq"].numpy())
    _loss(target).backward()
    fresh.step()
    assert float(state["state"][0]["step"]) == 1.0  # stepping the loaded optimizer leaves the source alone
    assert float(loaded["step"]) == 2.0
