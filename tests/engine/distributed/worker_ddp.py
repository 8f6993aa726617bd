"""Run by test_ddp.py as 2 MPI ranks: DistributedDataParallel against one process with the whole batch."""

from __future__ import annotations

import copy

import numpy as np
from _checks import run_checks

import dltool.engine as torch
import dltool.engine.distributed as dist
from dltool.engine import nn
from dltool.engine.nn.parallel import DistributedDataParallel as DDP
from dltool.models.cnn import CNN
from dltool.models.mlp import MLP

RANK = SIZE = 0
STEPS, BATCH = 20, 32  # per rank; the reference process takes SIZE * BATCH
SHAPE = (1, 8, 8)


def _data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((STEPS, SIZE * BATCH, *SHAPE)).astype(np.float32)
    return x, rng.integers(0, 10, (STEPS, SIZE * BATCH))


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, set_to_none: bool = True) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for inputs, targets in zip(x, y, strict=True):
        optimizer.zero_grad(set_to_none)
        nn.functional.cross_entropy(model(torch.from_numpy(inputs)), torch.from_numpy(targets)).backward()
        optimizer.step()


def _assert_same_state(model: nn.Module, reference: nn.Module) -> None:
    expected = reference.state_dict()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value.numpy(), expected[name].numpy(), rtol=1e-4, atol=2e-5, err_msg=name)


def _equivalence(build, set_to_none: bool = True, **ddp_options) -> None:
    """DDP on SIZE ranks x BATCH == one process x SIZE * BATCH, on the same samples, for STEPS steps."""
    torch.manual_seed(0)
    model = build()
    reference = copy.deepcopy(model)
    x, y = _data()
    _train(reference, x, y)
    mine = slice(RANK * BATCH, (RANK + 1) * BATCH)
    ddp = DDP(model, **ddp_options)
    _train(ddp, x[:, mine], y[:, mine], set_to_none)
    _assert_same_state(ddp.module, reference)


def check_mlp_matches_one_process_with_the_global_batch() -> None:
    _equivalence(lambda: MLP(SHAPE, 10, hidden_sizes=(32,), dropout=0.0))


def check_mlp_with_many_small_buckets() -> None:
    _equivalence(lambda: MLP(SHAPE, 10, hidden_sizes=(32, 32), dropout=0.0), bucket_cap_mb=0.002)


def check_mlp_with_gradients_as_bucket_views() -> None:
    _equivalence(lambda: MLP(SHAPE, 10, hidden_sizes=(32,), dropout=0.0), gradient_as_bucket_view=True)


def check_mlp_with_bucket_views_zeroed_in_place_in_small_buckets() -> None:
    _equivalence(
        lambda: MLP(SHAPE, 10, hidden_sizes=(32, 32), dropout=0.0),
        set_to_none=False,
        bucket_cap_mb=0.002,
        gradient_as_bucket_view=True,
    )


def _batchnorm_cnn_equivalence(set_to_none: bool = True, **ddp_options) -> None:
    torch.manual_seed(0)
    reference, x, y = CNN(SHAPE, 10, channels=(4, 8), hidden_size=16, dropout=0.0), *_data()
    model = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(reference))
    _train(reference, x, y)
    mine = slice(RANK * BATCH, (RANK + 1) * BATCH)
    _train(DDP(model, **ddp_options), x[:, mine], y[:, mine], set_to_none)
    _assert_same_state(model, reference)  # weights and the running statistics


def check_batchnorm_cnn_with_sync_batchnorm_matches_one_process() -> None:
    _batchnorm_cnn_equivalence()


def check_batchnorm_cnn_with_bucket_views() -> None:
    _batchnorm_cnn_equivalence(gradient_as_bucket_view=True)
    _batchnorm_cnn_equivalence(set_to_none=False, gradient_as_bucket_view=True)


def check_gradients_are_bucket_views_only_when_asked() -> None:
    for as_view in (False, True):
        model = DDP(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), gradient_as_bucket_view=as_view)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        arrays = []
        for set_to_none in (True, True, False):
            optimizer.zero_grad(set_to_none)
            model(torch.ones(2, 3) * (RANK + 1)).sum().backward()
            arrays.append([param.grad._data for param in model.parameters()])
        flat = model._reducer.buckets[0].flat
        assert all(np.shares_memory(array, flat) == as_view for array in arrays[-1]), as_view
        # a .grad set to None becomes the bucket's view again; a zeroed one is written in place
        assert all((a is b) == as_view for a, b in zip(arrays[0], arrays[1], strict=True)), as_view
        assert all(a is b for a, b in zip(arrays[1], arrays[2], strict=True)), as_view
        # the mean over ranks of the inputs' scale (1, 2) times the batch of 2
        expected = 3 * np.outer(model.module[1].weight.detach().numpy().sum(0), np.ones(3))
        np.testing.assert_allclose(model.module[0].weight.grad.numpy(), expected, rtol=1e-6)


def check_construction_broadcasts_rank_0_state() -> None:
    torch.manual_seed(RANK)
    model = DDP(CNN(SHAPE, 10, channels=(2,), hidden_size=4))
    everything = torch.cat([t.reshape(-1).float() for t in model.state_dict().values()])
    gathered = [torch.zeros_like(everything) for _ in range(SIZE)]
    dist.all_gather(gathered, everything)
    np.testing.assert_array_equal(gathered[0].numpy(), gathered[1].numpy())


def check_broadcast_buffers_before_each_training_forward() -> None:
    model = DDP(CNN(SHAPE, 10, channels=(2,), hidden_size=4))
    norm = model.module.features[1]
    norm.running_mean.fill_(float(RANK))  # ranks drift apart; the forward starts from rank 0's
    model(torch.ones(4, *SHAPE)).sum().backward()
    table = [torch.zeros(2) for _ in range(SIZE)]
    dist.all_gather(table, norm.running_mean)
    np.testing.assert_array_equal(table[0].numpy(), table[1].numpy())


def check_no_sync_accumulates_then_averages() -> None:
    torch.manual_seed(0)
    model = MLP(SHAPE, 10, hidden_sizes=(8,), dropout=0.0)
    reference = copy.deepcopy(model)
    x, y = _data()
    pieces = [(torch.from_numpy(x[i, : 2 * BATCH]), torch.from_numpy(y[i, : 2 * BATCH])) for i in range(2)]
    sum(nn.functional.cross_entropy(reference(a), b) for a, b in pieces).backward()
    mine = slice(RANK * BATCH, (RANK + 1) * BATCH)
    for as_view in (False, True):
        ddp = DDP(copy.deepcopy(model), gradient_as_bucket_view=as_view)
        # the second round accumulates into the bucket views the first one left in .grad
        for _ in range(2):
            ddp.zero_grad(set_to_none=False)
            with ddp.no_sync():
                nn.functional.cross_entropy(ddp(pieces[0][0][mine]), pieces[0][1][mine]).backward()
            grads = [p.grad.clone() for p in ddp.parameters()]
            nn.functional.cross_entropy(ddp(pieces[1][0][mine]), pieces[1][1][mine]).backward()
            pairs = zip(ddp.parameters(), reference.parameters(), grads, strict=True)
            for param, expected, local in pairs:
                np.testing.assert_allclose(param.grad.numpy(), expected.grad.numpy(), rtol=1e-4, atol=1e-6)
                assert not np.allclose(param.grad.numpy(), local.numpy())  # the no_sync step stayed local


def check_unused_parameter_is_a_clear_error() -> None:
    class Partly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    model = DDP(Partly())
    model(torch.ones(2, 3)).sum().backward()
    try:
        model(torch.ones(2, 3))
    except RuntimeError as ex:
        assert "unused.weight" in str(ex) and "used.weight" not in str(ex).replace("unused.weight", ""), ex
    else:
        raise AssertionError("no error")


class _Branches(nn.Module):
    """Two heads; ``forward`` uses the one ``head`` names (control flow that skips parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk, self.left, self.right = nn.Linear(3, 4), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, head: str) -> torch.Tensor:
        return getattr(self, head)(self.trunk(x).relu())


def _branch_grads(heads: list[str], set_to_none: bool, **ddp_options) -> tuple[list, list]:
    """The gradients of one step where rank r takes ``heads[r]``, against one process doing every
    rank's part of the mean (the reference), per parameter."""
    torch.manual_seed(0)
    model = _Branches()
    reference = copy.deepcopy(model)
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((SIZE, 5, 3)).astype(np.float32))
    sum(reference(x[r], heads[r]).square().sum() for r in range(SIZE)).div(SIZE).backward()
    ddp = DDP(model, find_unused_parameters=True, **ddp_options)
    ddp.zero_grad(set_to_none)
    ddp(x[RANK], heads[RANK]).square().sum().backward()
    return [p.grad for p in ddp.module.parameters()], [p.grad for p in reference.parameters()]


def check_find_unused_parameters_averages_what_some_rank_used() -> None:
    # one bucket for all, then one per parameter: buckets of unused parameters start at the forward
    for set_to_none, as_view, cap in ((True, False, None), (False, True, None), (True, False, 1e-5)):
        grads, expected = _branch_grads(
            ["left", "right"], set_to_none, gradient_as_bucket_view=as_view, bucket_cap_mb=cap
        )
        for grad, want in zip(grads, expected, strict=True):
            np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)


def check_find_unused_parameters_leaves_what_no_rank_used() -> None:
    grads, expected = _branch_grads(["left"] * SIZE, set_to_none=True, bucket_cap_mb=1e-5)
    for grad, want in zip(grads, expected, strict=True):
        assert (grad is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(grad.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)
    assert grads[-1] is None  # right.bias


def check_find_unused_parameters_trains_like_one_process_over_steps() -> None:
    _equivalence(lambda: MLP(SHAPE, 10, hidden_sizes=(32,), dropout=0.0), find_unused_parameters=True)


def check_module_attribute_and_state_dict_keys() -> None:
    inner = nn.Linear(3, 2)
    model = DDP(inner)
    assert model.module is inner
    assert sorted(model.state_dict()) == ["module.bias", "module.weight"]
    with torch.no_grad():  # an evaluation forward starts no gradient synchronization
        model(torch.ones(1, 3))
    model(torch.ones(1, 3)).sum().backward()
    np.testing.assert_allclose(inner.weight.grad.numpy(), np.ones((2, 3)))


if __name__ == "__main__":
    run_checks(globals(), "mpi")
