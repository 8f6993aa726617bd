"""``jit.script``: guards on values read into Python, the cache of paths, eager fallbacks, parity."""

from __future__ import annotations

import linecache
import warnings

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import jit
from dltool.engine.utils._structure import leaves
from dltool.models.language import RNNLanguageModel
from dltool.models.mlp import MLP


def _same(a: dl.Tensor, b: dl.Tensor) -> bool:
    return (
        a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.detach().numpy(), b.detach().numpy())
    )


def _counted(fn):
    """``fn`` and the list its Python body appends to on each run (a replay does not run it)."""
    runs: list = []

    def counted(*args, **kwargs):
        runs.append(args)
        return fn(*args, **kwargs)

    counted.__name__ = fn.__name__
    return counted, runs


def _sign_branch(x: dl.Tensor, w: dl.Tensor) -> dl.Tensor:
    y = x @ w
    if y.sum() > 0:
        return y.relu() * 2
    return -y


def test_the_branch_of_the_first_call_replays_and_a_failed_guard_records_the_other_once() -> None:
    fn, runs = _counted(_sign_branch)
    scripted = jit.script(fn)
    w = dl.randn(3, 2)
    positive = dl.ones(4, 3) * w.sum(1).sign()  # rows whose product with w sums above zero
    signs = [1, 1, -1, 1, -1, -1, 1]
    for sign in signs:
        x = positive * sign + dl.randn(4, 3) * 0.01
        assert _same(scripted(x, w), _sign_branch(x, w))
    assert len(runs) == 2 and len(scripted.graphs) == 2  # alternating records no third time
    assert "Guard(%2, read='__bool__', expected=True, index=0)" in str(scripted.graph)
    assert "    Guard(v2, read='__bool__', expected=True, index=0)" in scripted.code


def test_an_item_read_guards_its_exact_value_and_a_loop_follows_its_trip_count() -> None:
    def repeat(x: dl.Tensor, n: dl.Tensor) -> dl.Tensor:
        for _ in range(int(n.item())):
            x = x * 2 + 1
        return x * n.item()

    fn, runs = _counted(repeat)
    scripted = jit.script(fn)
    x = dl.randn(3)
    for count in (2, 3, 2, 0, 3):
        n = dl.tensor(count)
        assert _same(scripted(x, n), repeat(x, n))
    assert len(runs) == 3
    kinds = [node.kind for node in scripted.graphs[-1].nodes]  # the last used: 3 steps
    assert kinds.count("MulScalar") == 4 and kinds.count("Guard") == 2


def test_a_float_read_with_item_guards_its_bits() -> None:
    fn, runs = _counted(lambda x, s: x * s.item())
    scripted = jit.script(fn)
    x = dl.tensor([1.0, -1.0])
    for value in (0.5, 0.5, 0.0, -0.0, 0.0):
        assert _same(scripted(x, dl.tensor(value)), x * value)
    assert len(runs) == 3  # -0.0 is not 0.0: x * -0.0 has other signs


def test_a_branch_on_a_parameter_follows_its_value_at_each_call() -> None:
    model = dl.nn.Linear(2, 1)
    scripted = jit.script(lambda x: model(x) * 2 if model.bias > 0 else model(x) * 3)
    x = dl.ones(4, 2)
    for bias in (1.0, -1.0, 1.0):
        with dl.no_grad():
            model.bias.fill_(bias)
            assert _same(scripted(x), model(x) * (2 if bias > 0 else 3))
    assert len(scripted.graphs) == 2


def test_python_arguments_are_part_of_the_key() -> None:
    def scaled(x: dl.Tensor, factor: float, flip: bool = False) -> dl.Tensor:
        y = x * factor
        return -y if flip else y

    fn, runs = _counted(scaled)
    scripted = jit.script(fn)
    x = dl.randn(4)
    calls = [(2.0, False), (2.0, False), (3.0, False), (2.0, True), (3.0, False), (2, False)]
    for factor, flip in calls:
        assert _same(scripted(x, factor, flip=flip), scaled(x, factor, flip=flip))
    assert len(runs) == 4  # the int 2 is its own key: x * 2 and x * 2.0 may differ in dtype


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda x: x[x > 0].sum(), r"indexing with a tensor \(x\[mask\], x\[index\]\)"),
        (
            lambda x: x[: len(x.nonzero())] * 2,
            r"dltool\.engine\.ops\.index\.nonzero makes a tensor whose shape",
        ),
        (lambda x: x.unique().sum(), r"dltool\.engine\.ops\.select\._unique makes a tensor whose shape"),
        (lambda x: x.reshape(2, 3).argmax(1), r"dltool\.engine\.ops\.reduce\.argmax computes"),
        (lambda x: x + dl.randn(6), r"dltool\.engine\.creation\.randn computes"),
        (lambda x: x * 2 if (x > 5).any() else x, r"dltool\.engine\.ops\.reduce\.any computes"),
        (lambda x: x.detach() + x, r"dltool\.engine\.tensor\.detach computes"),
    ],
    ids=["mask", "nonzero", "unique", "argmax", "randn", "any", "detach"],
)
def test_what_the_graph_cannot_replay_runs_eagerly_after_one_warning(fn, reason) -> None:
    scripted = jit.script(fn)
    dl.manual_seed(0)
    first = dl.arange(6.0) - 2.5
    with pytest.warns(UserWarning, match=rf"jit\.script: <lambda> runs eagerly from now on: {reason}"):
        scripted(first)
    for x in (first, -first, dl.randn(6) * 9):  # other counts of positives, other maxima
        dl.manual_seed(1)
        want = fn(x)
        dl.manual_seed(1)
        assert _same(scripted(x), want)  # and no second warning (warnings are errors here)


def test_in_place_changes_and_training_batchnorm_run_eagerly() -> None:
    def bump(x: dl.Tensor) -> dl.Tensor:
        y = x * 2
        y.add_(1)
        return y * 3

    with pytest.warns(UserWarning, match="cannot record an in-place change of a traced tensor"):
        assert _same(jit.script(bump)(dl.ones(2)), dl.full((2,), 9.0))
    scripted = jit.script(lambda x, y: (x.add_(1), y * 2)[1])
    x = dl.zeros(2)
    with pytest.warns(UserWarning, match="it changes x in place"):
        scripted(x, dl.ones(2))
    scripted(x, dl.ones(2))
    assert _same(x, dl.full((2,), 2.0))  # the second call changed it too
    model = dl.nn.Sequential(dl.nn.Linear(3, 4), dl.nn.BatchNorm1d(4))
    with pytest.warns(UserWarning, match=r"changes 1\.num_batches_tracked, .* in place"):
        jit.script(model)(dl.randn(5, 3))


def test_past_eight_recordings_the_function_runs_eagerly_with_one_warning() -> None:
    fn, runs = _counted(lambda x: x / x.max().item())
    scripted = jit.script(fn)
    for i in range(8):
        scripted(dl.arange(1.0, 4.0) * (i + 1))
    with pytest.warns(UserWarning, match="more than 8 recordings"):
        scripted(dl.ones(3) * 100)
    x = dl.ones(3) * 10
    assert _same(scripted(x), x / 10.0) and len(runs) == 10 and scripted.graphs == []


def test_gradients_flow_through_each_branch_as_in_eager_mode() -> None:
    scripted = jit.script(_sign_branch)
    w = dl.randn(3, 2)
    positive = dl.ones(4, 3) * w.sum(1).sign()
    for sign in (1, -1, 1):
        eager_x, eager_w = (positive * sign).requires_grad_(), w.clone().requires_grad_()
        _sign_branch(eager_x, eager_w).square().sum().backward()
        x, w_ = (positive * sign).requires_grad_(), w.clone().requires_grad_()
        out = scripted(x, w_)
        assert out.grad_fn is not None
        out.square().sum().backward()
        assert _same(x.grad, eager_x.grad) and _same(w_.grad, eager_w.grad)


class _Gate(dl.nn.Module):
    """A module whose forward branches on a tensor value and on a Python attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = MLP((4,), 3, hidden_sizes=(5,), dropout=0.5)
        self.use_skip = True

    def forward(self, x: dl.Tensor) -> dl.Tensor:
        y = self.mlp(x)  # dropout draws its mask before the guard
        if x.mean() > 0:
            y = y + x[:, :3]
        return y * 2 if self.use_skip else y


def test_a_scripted_module_shares_parameters_and_follows_modes_and_branches() -> None:
    model = _Gate()
    scripted = jit.script(model)
    assert isinstance(scripted, jit.ScriptModule) and isinstance(scripted, dl.nn.Module)
    assert list(scripted.state_dict()) == list(model.state_dict())
    optimizer = dl.optim.SGD(model.parameters(), lr=0.1)
    for step in range(8):
        scripted.train(step % 4 != 3)
        x = dl.randn(8, 4) * (1 if step % 2 else -1)
        dl.manual_seed(step)
        out = scripted(x)
        dl.manual_seed(step)
        assert _same(out, model(x))  # dropout's mask from the eager stream, even after a failed guard
        optimizer.zero_grad()
        out.sum().backward()
        optimizer.step()  # the replay reads the new weights
    assert "KeepMask" in str(scripted.graph) and len(scripted.graphs) == 3  # eval: positive only


def test_a_recurrent_model_with_a_zero_initial_state_replays() -> None:
    model = RNNLanguageModel(11, embedding_dim=4, hidden_size=5, num_layers=2).eval()
    scripted = jit.script(model)
    for _ in range(3):
        tokens = dl.randint(0, 11, (3, 6))
        with dl.no_grad():
            got, want = scripted(tokens), model(tokens)
        assert all(_same(g, w) for g, w in zip(leaves(got, dl.Tensor), leaves(want, dl.Tensor), strict=True))
    assert len(scripted.graphs) == 1 and "Full" in str(scripted.graph)


def test_decorator_example_inputs_and_calls_between_scripted_functions() -> None:
    @jit.script
    def inner(x: dl.Tensor) -> dl.Tensor:
        return x.abs() if x.sum() < 0 else x

    outer = jit.script(lambda x: inner(x) * 3, example_inputs=[(dl.ones(2),)])
    assert isinstance(inner, jit.ScriptFunction) and inner.__name__ == "inner"
    assert "Guard" in str(outer.graph)  # the inner function was recorded into the outer graph
    assert _same(outer(-dl.ones(2)), dl.full((2,), 3.0)) and _same(inner(-dl.ones(2)), dl.ones(2))
    assert jit.script(inner) is inner


def test_errors_name_what_is_wrong() -> None:
    with pytest.raises(TypeError, match="expected a function or a Module, got the class MLP"):
        jit.script(MLP)
    with pytest.raises(TypeError, match="expected a function or a Module, got a int"):
        jit.script(3)
    scripted = jit.script(lambda x, options: x)
    with pytest.raises(TypeError, match="argument 'options' is a dict; a scripted function takes tensors"):
        scripted(dl.ones(1), {"a": 1})
    with pytest.raises(RuntimeError, match="records on the first call"):
        _ = scripted.graph


_PARITY_SOURCE = """
def branch(x, w):
    y = x @ w
    if y.sum() > 0:
        return y.relu()
    return -y


def loop(x, n):
    for _ in range(int(n.item())):
        x = torch.tanh(x) * 2.0
    return x
"""


def test_results_match_torch_jit_script() -> None:
    torch = pytest.importorskip("torch")

    # torch.jit.script reads a function's source, so the exec'd source needs a file of its own
    filename = "<jit-script-parity>"
    linecache.cache[filename] = (len(_PARITY_SOURCE), None, _PARITY_SOURCE.splitlines(True), filename)
    namespaces = {}
    for name, lib in (("torch", torch), ("dltool", dl)):
        namespace: dict = {"torch": lib, "__name__": "jit_script_parity"}
        exec(compile(_PARITY_SOURCE, filename, "exec"), namespace)
        with warnings.catch_warnings():  # torch 2.13 deprecates jit.script; it still works
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
            namespaces[name] = {f: lib.jit.script(namespace[f]) for f in ("branch", "loop")}
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    for sign, count in ((1, 2), (-1, 3), (1, 0)):
        x = (np.ones((4, 3)) * np.sign(w.sum(1)) * sign).astype(np.float32)
        for name, args in (("branch", (x, w)), ("loop", (x, np.array(count)))):
            got = namespaces["dltool"][name](*(dl.tensor(a) for a in args)).numpy()
            want = namespaces["torch"][name](*(torch.tensor(a) for a in args)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
