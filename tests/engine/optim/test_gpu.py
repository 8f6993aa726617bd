"""Optimizers and checkpoints on cupy arrays (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from tests.engine.optim.training import data, initial_weights, loss_fn, train, weights

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not dl.cuda.is_available(), reason="needs cupy and a GPU")]

OPTIMIZERS = [
    lambda p: dl.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda p: dl.optim.Adam(p, lr=0.01, amsgrad=True),
    lambda p: dl.optim.AdamW(p, lr=0.01),
    lambda p: dl.optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    lambda p: dl.optim.Adagrad(p, lr=0.1, lr_decay=0.01),
    lambda p: dl.optim.Adadelta(p, weight_decay=0.01),
    lambda p: dl.optim.Adamax(p, lr=0.01),
    lambda p: dl.optim.NAdam(p, lr=0.01, weight_decay=0.01, decoupled_weight_decay=True),
    lambda p: dl.optim.RAdam(p, lr=0.01),
    lambda p: dl.optim.ASGD(p, lr=0.05, t0=3),
    lambda p: dl.optim.Rprop(p, lr=0.01),
]
# Kept on the host until loading moves them to the parameters' device, as in PyTorch.
HOST_STATE = {"step", "mu_product"}


def _params(device):
    return [dl.tensor(a, dtype=dl.float64, device=device, requires_grad=True) for a in initial_weights()]


class _OnDevice:
    """``dltool.engine`` with tensors created on cuda, so the shared training loop runs there."""

    def __getattr__(self, name):
        return getattr(dl, name)

    @staticmethod
    def tensor(data, dtype=None):
        return dl.tensor(data, dtype=dtype, device="cuda")


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_cuda_training_matches_cpu(make, tmp_path):
    cpu, cuda = _params("cpu"), _params("cuda")
    cpu_opt, cuda_opt = make(cpu), make(cuda)
    train(dl, cpu, cpu_opt, 10, "float64")
    train(_OnDevice(), cuda, cuda_opt, 10, "float64")
    for state in cuda_opt.state.values():
        assert all(v.device.type == ("cpu" if k in HOST_STATE else "cuda") for k, v in state.items())
    for a, b in zip(weights(cpu), [p.detach().cpu().numpy() for p in cuda], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)

    dl.save({"params": cuda, "optimizer": cuda_opt.state_dict()}, tmp_path / "gpu.ckpt")
    on_gpu = dl.load(tmp_path / "gpu.ckpt")
    assert on_gpu["params"][0].device.type == "cuda"
    on_cpu = dl.load(tmp_path / "gpu.ckpt", map_location="cpu")
    assert on_cpu["params"][0].device.type == "cpu"
    fresh = make(_params("cuda"))
    fresh.load_state_dict(on_cpu["optimizer"])  # state follows the parameters to the GPU
    for state in fresh.state.values():
        assert all(v.device.type == ("cpu" if k == "step" else "cuda") for k, v in state.items())


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_cuda_lbfgs_matches_cpu(line_search_fn):
    cpu, cuda = _params("cpu"), _params("cuda")
    runs = []
    for lib, params in ((dl, cpu), (_OnDevice(), cuda)):
        optimizer = dl.optim.LBFGS(params, max_iter=5, history_size=3, line_search_fn=line_search_fn)
        x, y = (lib.tensor(a, dtype=dl.float64) for a in data())

        def closure(optimizer=optimizer, params=params, x=x, y=y):
            optimizer.zero_grad()
            loss = loss_fn(dl, params, x, y)
            loss.backward()
            return loss

        runs.append([optimizer.step(closure).item() for _ in range(3)])
        assert optimizer.state[params[0]]["d"].device.type == params[0].device.type
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-9)
    for a, b in zip(weights(cpu), [p.detach().cpu().numpy() for p in cuda], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
