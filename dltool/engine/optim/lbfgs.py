"""L-BFGS (Nocedal): a quasi-Newton method with a limited history, and a strong-Wolfe line search.

The parameters are treated as one flat vector. Dot products come back to the host as numpy
scalars of the parameters' dtype, so scalar arithmetic rounds as PyTorch's 0-dim tensors do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from dltool.engine import backend
from dltool.engine.autograd.grad_mode import enable_grad
from dltool.engine.optim.optimizer import Optimizer, add_scaled_, check_hyperparameters
from dltool.engine.tensor import Tensor

# The state entries that ``step`` keeps between calls, in PyTorch's order.
_CARRIED = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")


class LBFGS(Optimizer):
    """L-BFGS with PyTorch's algorithm, arguments, stopping rules and state.

    ``step(closure)`` runs up to ``max_iter`` iterations; ``closure`` re-evaluates the model,
    calls ``backward()`` and returns the loss. Only one parameter group is supported. The state
    lives under the first parameter, as in PyTorch: ``func_evals``, ``n_iter``, the last direction
    ``d`` and step ``t``, the history (``old_dirs``, ``old_stps``, ``ro``, ``al``), ``H_diag``,
    ``prev_flat_grad`` and ``prev_loss``.

    Args:
        lr: the step length (the line search's first trial with ``"strong_wolfe"``).
        max_iter: iterations per ``step``.
        max_eval: closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient entry is this small.
        tolerance_change: stop when the loss or the parameters change less than this.
        history_size: the number of updates kept.
        line_search_fn: ``None`` (fixed steps of ``lr``) or ``"strong_wolfe"``.

    Example:
        >>> model, loss_fn = nn.Linear(3, 1), nn.MSELoss()
        >>> x, y = randn(8, 3), randn(8, 1)
        >>> opt = LBFGS(model.parameters(), history_size=10, line_search_fn="strong_wolfe")
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> loss = opt.step(closure)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        check_hyperparameters(lr=lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr, "max_iter": max_iter, "max_eval": max_eval, "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change, "history_size": history_size,
            "line_search_fn": line_search_fn,
        }  # fmt: skip
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params: list[Tensor] = self.param_groups[0]["params"]

    # ------------------------------------------------------------ the flat parameter vector

    def _gather_flat_grad(self) -> Any:
        xp = backend.array_module(self._params[0]._data)
        return xp.concatenate(
            [
                xp.zeros(p._data.size, p._data.dtype) if p.grad is None else p.grad._data.reshape(-1)
                for p in self._params
            ]
        )

    def _add_grad(self, step_size: Any, update: Any) -> None:
        """``params += step_size * update`` for the flat ``update``."""
        offset = 0
        for param in self._params:
            size = param._data.size
            add_scaled_(param._data, update[offset : offset + size].reshape(param._data.shape), step_size)
            param._version_counter[0] += 1
            offset += size

    def _set_params(self, arrays: list[Any]) -> None:
        for param, array in zip(self._params, arrays, strict=True):
            param._data[...] = array
            param._version_counter[0] += 1

    def _evaluate(self, closure: Callable[[], Any]) -> tuple[Any, float]:
        """Run the closure with grad enabled; returns what it returns, and that as a float."""
        with enable_grad():
            loss = closure()
        return loss, float(loss)

    def _directional_evaluate(
        self, closure: Callable[[], Any], x: list[Any], t: Any, d: Any
    ) -> tuple[float, Any]:
        """The loss and flat gradient at ``x + t * d``; the parameters are left at ``x``."""
        self._add_grad(t, d)
        _, loss = self._evaluate(closure)
        flat_grad = self._gather_flat_grad()
        self._set_params(x)
        return loss, flat_grad

    # ------------------------------------------------------------ stepping

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` L-BFGS iterations; returns the closure's first loss."""
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss, loss = self._evaluate(closure)
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if _host_max_abs(flat_grad) <= self.param_groups[0]["tolerance_grad"]:
            return orig_loss
        carried = self._iterate(closure, state, loss, flat_grad)
        state.update((key, _pack(value)) for key, value in carried.items())
        return orig_loss

    def _iterate(
        self, closure: Callable[[], Any], state: dict[str, Any], loss: float, flat_grad: Any
    ) -> dict[str, Any]:
        """The iterations of one ``step``, from the state it carries over; returns that state."""
        group = self.param_groups[0]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        carried = {key: _unpack(state.get(key)) for key in _CARRIED}
        d, t, prev_flat_grad, prev_loss = (carried[key] for key in ("d", "t", "prev_flat_grad", "prev_loss"))
        history = _History(carried["old_dirs"], carried["old_stps"], carried["ro"], carried["H_diag"])
        current_evals = 1
        for n_iter in range(1, group["max_iter"] + 1):
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, history = -flat_grad, _History([], [], [], 1)
                t = min(1.0, 1.0 / _host(abs(flat_grad).sum())) * group["lr"]
            else:
                history.update(flat_grad - prev_flat_grad, d * t, group["history_size"])
                d, t = history.direction(flat_grad, state, group["history_size"]), group["lr"]
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss
            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:
                break
            last = n_iter == group["max_iter"]
            end, evals = self._move(
                closure, d, _Point(t, loss, flat_grad, gtd), group["max_eval"] - current_evals, last
            )
            t, loss, flat_grad = end.t, end.f, end.g
            current_evals += evals
            state["func_evals"] += evals
            if last or current_evals >= group["max_eval"] or _host_max_abs(flat_grad) <= tolerance_grad:
                break
            if _host_max_abs(d * t) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break
        return {
            "d": d, "t": t, "old_dirs": history.dirs, "old_stps": history.steps, "ro": history.ro,
            "H_diag": history.h_diag, "prev_flat_grad": prev_flat_grad, "prev_loss": prev_loss,
        }  # fmt: skip

    def _move(
        self, closure: Callable[[], Any], d: Any, start: _Point, evals_left: int, last: bool
    ) -> tuple[_Point, int]:
        """Move the parameters along ``d`` from ``start``, by ``start.t`` or as the line search says.

        Returns the point reached (its gradient ``g`` stale after a last fixed step) and the
        number of evaluations made.
        """
        line_search_fn = self.param_groups[0]["line_search_fn"]
        if line_search_fn is None:
            self._add_grad(start.t, d)
            if last:  # NOTE: as in PyTorch, no evaluation after the last iteration
                return start, 0
            _, loss = self._evaluate(closure)
            return start._replace(f=loss, g=self._gather_flat_grad()), 1
        if line_search_fn != "strong_wolfe":
            raise RuntimeError("only 'strong_wolfe' is supported")
        x_init = [p._data.copy() for p in self._params]
        end, evals = _strong_wolfe(
            lambda t: self._directional_evaluate(closure, x_init, t, d), d, start, evals_left
        )
        self._add_grad(end.t, d)
        return end, evals


class _History:
    """The L-BFGS memory: the last gradient changes ``dirs`` (y), steps ``steps`` (s), ``1 / y.s``."""

    def __init__(self, dirs: list[Any], steps: list[Any], ro: list[Any], h_diag: Any) -> None:
        self.dirs, self.steps, self.ro, self.h_diag = dirs, steps, ro, h_diag

    def update(self, y: Any, s: Any, history_size: int) -> None:
        """Remember ``(y, s)`` when the curvature ``y.s`` is positive, forgetting the oldest pair."""
        ys = _dot(y, s)
        if ys > 1e-10:
            if len(self.dirs) == history_size:
                del self.dirs[0], self.steps[0], self.ro[0]
            self.dirs.append(y)
            self.steps.append(s)
            self.ro.append(1.0 / ys)
            self.h_diag = ys / _dot(y, y)

    def direction(self, flat_grad: Any, state: dict[str, Any], history_size: int) -> Any:
        """The two-loop recursion: minus the inverse Hessian estimate times ``flat_grad``."""
        if "al" not in state:
            state["al"] = [None] * history_size
        al = _unpack(state["al"])
        q = -flat_grad
        for i in range(len(self.dirs) - 1, -1, -1):
            al[i] = _dot(self.steps[i], q) * self.ro[i]
            add_scaled_(q, self.dirs[i], -al[i])
        r = q * self.h_diag
        for i in range(len(self.dirs)):
            be_i = _dot(self.dirs[i], r) * self.ro[i]
            add_scaled_(r, self.steps[i], al[i] - be_i)
        state["al"] = _pack(al)
        return r


# ---------------------------------------------------------------- strong-Wolfe line search


class _Point(NamedTuple):
    """A trial step ``t`` with its loss ``f``, flat gradient ``g`` and directional derivative ``gtd``."""

    t: Any
    f: Any
    g: Any
    gtd: Any


def _strong_wolfe(
    evaluate: Callable[[Any], tuple[float, Any]],
    d: Any,
    start: _Point,
    max_ls: int,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
) -> tuple[_Point, int]:
    """A step along ``d`` that satisfies the strong Wolfe conditions (Nocedal & Wright, alg. 3.5).

    ``start`` is the first trial step ``t`` with the loss, gradient and slope at ``t = 0``.
    Returns the step found and the number of evaluations made. As in PyTorch, the bracket's
    ``tolerance_change`` is this default, not the optimizer's.
    """
    f, gtd = start.f, start.gtd

    def probe(step: Any) -> _Point:
        loss, grad = evaluate(step)
        return _Point(step, loss, grad, _dot(grad, d))

    def sufficient_decrease(point: _Point) -> bool:
        return not point.f > f + c1 * point.t * gtd

    def curvature_met(point: _Point) -> bool:
        return abs(point.gtd) <= -c2 * gtd

    origin = start._replace(t=0)
    prev, new = origin, probe(start.t)
    evals, ls_iter, done = 1, 0, False
    bracket: list[_Point]
    while ls_iter < max_ls:  # bracketing: grow the step until an interval holds a good one
        if not sufficient_decrease(new) or (ls_iter > 1 and new.f >= prev.f):
            bracket = [prev, new]
            break
        if curvature_met(new):
            bracket, done = [new], True
            break
        if new.gtd >= 0:
            bracket = [prev, new]
            break
        bounds = (new.t + 0.01 * (new.t - prev.t), new.t * 10)
        prev, new = new, probe(_cubic_interpolate(prev, new, bounds))
        evals += 1
        ls_iter += 1
    if ls_iter >= max_ls:
        bracket = [origin, new]

    low, high = _order(bracket)
    insufficient_progress = False
    d_norm = _host_max_abs(d)
    while not done and ls_iter < max_ls:  # zoom: shrink the interval around a good step
        if abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change:
            break
        step, insufficient_progress = _keep_off_the_ends(
            _cubic_interpolate(bracket[0], bracket[1]), bracket, insufficient_progress
        )
        new = probe(step)
        evals += 1
        ls_iter += 1
        if not sufficient_decrease(new) or new.f >= bracket[low].f:
            bracket[high] = new
            low, high = _order(bracket)
            continue
        if curvature_met(new):
            done = True
        elif new.gtd * (bracket[high].t - bracket[low].t) >= 0:
            bracket[high] = bracket[low]
        bracket[low] = new
    return bracket[low], evals


def _order(bracket: list[_Point]) -> tuple[int, int]:
    """The indices of the lower and the higher loss in ``bracket`` (lower first on a tie)."""
    return (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)


def _keep_off_the_ends(t: Any, bracket: list[_Point], insufficient_progress: bool) -> tuple[Any, bool]:
    """Move a trial step that lies within 10% of the bracket's ends inward, as minFunc does.

    A step that close is accepted once; the next time (or when it is on or past an end) it is
    moved to 10% of the bracket's width from the nearer end.
    """
    hi, lo = max(bracket[0].t, bracket[1].t), min(bracket[0].t, bracket[1].t)
    eps = 0.1 * (hi - lo)
    if not min(hi - t, t - lo) < eps:
        return t, False
    if not (insufficient_progress or t >= hi or t <= lo):
        return t, True
    return (hi - eps if abs(t - hi) < abs(t - lo) else lo + eps), False


def _cubic_interpolate(a: _Point, b: _Point, bounds: tuple[Any, Any] | None = None) -> Any:
    """The minimizer, within ``bounds``, of the cubic through two points with their slopes.

    Without a minimizer (the cubic has no real critical point) it is the bounds' midpoint.
    The bounds default to the interval between the points.
    """
    if bounds is None:
        bounds = (a.t, b.t) if a.t <= b.t else (b.t, a.t)
    d1 = a.gtd + b.gtd - 3 * (a.f - b.f) / (a.t - b.t)
    d2_square = d1**2 - a.gtd * b.gtd
    if not d2_square >= 0:
        return (bounds[0] + bounds[1]) / 2.0
    d2 = np.sqrt(d2_square)
    near, far = (a, b) if a.t <= b.t else (b, a)
    min_pos = far.t - (far.t - near.t) * ((far.gtd + d2 - d1) / (far.gtd - near.gtd + 2 * d2))
    return min(max(min_pos, bounds[0]), bounds[1])


# ---------------------------------------------------------------- scalars and state


def _host(x: Any) -> Any:
    """A 0-dim array (numpy or cupy) as a numpy scalar of its dtype."""
    return backend.move(x, backend.CPU)[()]


def _dot(x: Any, y: Any) -> Any:
    return _host(backend.array_module(x).dot(x, y))


def _host_max_abs(x: Any) -> Any:
    return _host(abs(x).max())


def _pack(value: Any) -> Any:
    """State as PyTorch holds it: arrays and numpy scalars become tensors, lists stay lists."""
    if isinstance(value, list):
        return [_pack(v) for v in value]
    if isinstance(value, np.generic):
        return Tensor._make(np.asarray(value))
    if value is None or isinstance(value, (int, float)):
        return value
    return Tensor._make(value)


def _unpack(value: Any) -> Any:
    """The inverse of ``_pack``: 0-dim tensors become numpy scalars, others their arrays."""
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    if isinstance(value, Tensor):
        return _host(value._data) if value.ndim == 0 else value._data
    return value
