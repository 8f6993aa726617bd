"""LBFGS follows PyTorch's iterations step for step, with and without the strong-Wolfe line search."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.optim.training import BATCH, data, initial_weights, loss_fn, make_params

torch = pytest.importorskip("torch")

ROSENBROCK_START = [np.array([-1.2, 1.0, -0.5]), np.array([[0.3, 0.8], [1.5, -0.7]]), np.array([2.0])]
OPTIONS = [
    {},
    {"line_search_fn": "strong_wolfe"},
    {"lr": 0.1, "history_size": 3, "max_iter": 7},  # the history fills up and forgets
    {"history_size": 2, "line_search_fn": "strong_wolfe", "max_iter": 9, "max_eval": 12},
    {"lr": 3, "tolerance_change": 0.5, "line_search_fn": "strong_wolfe"},  # the search keeps its own
    {"tolerance_grad": 1e-2, "tolerance_change": 1e-4},
]
IDS = ["fixed-step", "strong-wolfe", "short-history", "few-evaluations", "loose-change", "loose-tolerances"]


def _rosenbrock(lib, params):
    """The Rosenbrock function of the first two parameters, flattened; the third gets no gradient."""
    x = lib.cat([params[0].reshape(-1), params[1].reshape(-1)])
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _regression(lib, params, dtype):
    """The parity tests' model on their first mini-batch (bigger ones make PyTorch's matmul threaded)."""
    x, y = (lib.tensor(a[:BATCH], dtype=getattr(lib, dtype)) for a in data())
    return loss_fn(lib, params, x, y)


def _optimize(lib, problem, start, dtype, steps, options, optimizer=None, params=None):
    """``steps`` calls of ``step(closure)``; after each: the loss returned, the weights, the counters."""
    if params is None:
        params = make_params(lib, start, dtype)
        optimizer = lib.optim.LBFGS(params, **options)

    def closure():
        optimizer.zero_grad()
        loss = problem(lib, params)
        loss.backward()
        return loss

    trace = []
    for _ in range(steps):
        loss = optimizer.step(closure)
        state = optimizer.state[params[0]]
        weights = np.concatenate([p.detach().numpy().ravel() for p in params])
        trace.append((loss.item(), weights, state["func_evals"], state["n_iter"]))
    return trace, optimizer, params


def _assert_same_trace(ours, theirs, **tolerance):
    for (loss, weights, evals, n_iter), (t_loss, t_weights, t_evals, t_n_iter) in zip(
        ours, theirs, strict=True
    ):
        assert (evals, n_iter) == (t_evals, t_n_iter)  # the same branches were taken
        np.testing.assert_allclose(loss, t_loss, **tolerance)
        np.testing.assert_allclose(weights, t_weights, **tolerance)


@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_rosenbrock_matches_pytorch_step_for_step(options):
    ours, _, _ = _optimize(dl, _rosenbrock, ROSENBROCK_START, "float64", 5, options)
    theirs, _, _ = _optimize(torch, _rosenbrock, ROSENBROCK_START, "float64", 5, options)
    # NOTE: dot products round differently from MKL's; Rosenbrock's curvature amplifies that a little
    _assert_same_trace(ours, theirs, rtol=1e-6, atol=1e-8)
    assert ours[-1][0] < ours[0][0] / 10  # it does optimize


@pytest.mark.parametrize("options", OPTIONS, ids=IDS)
def test_state_dict_matches_pytorch(options):
    """Keys in PyTorch's order, tensors where PyTorch has tensors, the same values (mid-descent)."""
    _, optimizer, _ = _optimize(dl, _rosenbrock, ROSENBROCK_START, "float64", 2, options)
    _, torch_optimizer, _ = _optimize(torch, _rosenbrock, ROSENBROCK_START, "float64", 2, options)
    _assert_same_state(optimizer.state_dict(), torch_optimizer.state_dict())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS[:4], ids=IDS[:4])
def test_regression_matches_pytorch_step_for_step(options, dtype):
    def problem(lib, params):
        return _regression(lib, params, dtype)

    options = {"max_iter": 5, **options}
    ours, _, _ = _optimize(dl, problem, initial_weights(), dtype, 3, options)
    theirs, _, _ = _optimize(torch, problem, initial_weights(), dtype, 3, options)
    # NOTE: float32 dot products round differently from MKL's, and L-BFGS amplifies it
    tolerance = {"rtol": 1e-9, "atol": 1e-12} if dtype == "float64" else {"rtol": 1e-3, "atol": 1e-4}
    _assert_same_trace(ours, theirs, **tolerance)


def _assert_same_state(ours, theirs):
    """The same keys, values of the same kinds (tensor or number), equal up to rounding."""
    assert ours["param_groups"] == theirs["param_groups"]
    assert list(ours["state"]) == list(theirs["state"]) == [0]
    mine, reference = ours["state"][0], theirs["state"][0]
    assert list(mine) == list(reference)
    for key, value in reference.items():
        for a, b in zip(*(v if isinstance(v, list) else [v] for v in (mine[key], value)), strict=True):
            if isinstance(b, torch.Tensor):
                assert isinstance(a, dl.Tensor) and a.shape == tuple(b.shape), key
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7, atol=1e-12, err_msg=key)
            else:
                assert type(a) is type(b) and a == (b if b is None else pytest.approx(b, rel=1e-7)), key


def test_state_dict_round_trip_resumes_exactly(tmp_path):
    options = {"history_size": 4, "line_search_fn": "strong_wolfe", "max_iter": 5}
    expected, _, _ = _optimize(dl, _rosenbrock, ROSENBROCK_START, "float64", 6, options)
    _, optimizer, params = _optimize(dl, _rosenbrock, ROSENBROCK_START, "float64", 3, options)
    dl.save({"params": params, "optimizer": optimizer.state_dict()}, tmp_path / "lbfgs.ckpt")
    checkpoint = dl.load(tmp_path / "lbfgs.ckpt")
    params = make_params(dl, [p.detach().numpy() for p in checkpoint["params"]], "float64")
    optimizer = dl.optim.LBFGS(params, **options)
    optimizer.load_state_dict(checkpoint["optimizer"])
    resumed, _, _ = _optimize(dl, _rosenbrock, None, "float64", 3, options, optimizer, params)
    for (loss, weights, *counts), (expected_loss, expected_weights, *expected_counts) in zip(
        resumed, expected[3:], strict=True
    ):
        assert loss == expected_loss and counts == expected_counts
        np.testing.assert_array_equal(weights, expected_weights)


def test_stops_at_once_where_the_gradient_vanishes():
    at_minimum = [np.ones(3), np.ones((2, 2)), np.array([2.0])]
    for lib in (dl, torch):
        trace, optimizer, params = _optimize(lib, _rosenbrock, at_minimum, "float64", 1, {})
        assert trace[0][2:] == (1, 0)
        assert list(optimizer.state[params[0]]) == ["func_evals", "n_iter"]
        np.testing.assert_array_equal(trace[0][1], np.concatenate([a.ravel() for a in at_minimum]))


def test_closure_runs_with_grad_enabled_and_params_update_in_place():
    params = make_params(dl, ROSENBROCK_START, "float64")
    optimizer = dl.optim.LBFGS(params, max_iter=3)
    storage, version = params[0]._data, params[0]._version

    def closure():
        assert dl.is_grad_enabled()
        optimizer.zero_grad()
        loss = _rosenbrock(dl, params)
        loss.backward()
        return loss

    with dl.no_grad():
        loss = optimizer.step(closure)
    assert float(loss) == pytest.approx(float(_rosenbrock(dl, make_params(dl, ROSENBROCK_START, "float64"))))
    assert params[0]._data is storage and params[0]._version > version and params[0].is_leaf


def test_parameter_groups_are_refused_like_pytorch():
    messages = []
    for lib in (dl, torch):
        with pytest.raises(ValueError) as info:
            lib.optim.LBFGS(
                [{"params": [lib.ones(2, requires_grad=True)]}, {"params": [lib.ones(1, requires_grad=True)]}]
            )
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_unknown_line_search_is_refused_like_pytorch():
    messages = []
    for lib in (dl, torch):
        params = make_params(lib, ROSENBROCK_START, "float64")
        optimizer = lib.optim.LBFGS(params, line_search_fn="backtracking")
        with pytest.raises(RuntimeError) as info:
            _optimize(lib, _rosenbrock, None, "float64", 1, {}, optimizer, params)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
