"""An Optuna sweep's report: ``optimization_results.yaml``, the history and importance plots.

``write_report`` runs at the end of a sweep (``dltool.training.optuna_sweep``) and from
``dltool sweep-report dir=DIR``. The plots are drawn with pillow: ``optimization_history.png`` (each
trial's value, pruned trials at their last report, and the best so far) and
``param_importances.png`` (Optuna's default importance evaluator), each also as a table in the
YAML file and on the console.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw, ImageFont
from rich.table import Table

from dltool.training.console import console
from dltool.training.errors import ConfigError

_SIZE, _MARGIN = (720, 420), (80, 30, 30, 50)  # width, height; left, top, right, bottom
_COLORS = {"COMPLETE": (31, 119, 180), "PRUNED": (160, 160, 160), "best": (214, 39, 40)}


def write_report(study: Any, sweep_dir: Path, monitor: str) -> dict[str, Any]:
    """Write the results YAML and both plots into ``sweep_dir``; print the best trial and importances."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    results: dict[str, Any] = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "monitor": monitor,
        "trials": {
            state.name.lower(): n
            for state in TrialState
            if (n := sum(t.state == state for t in trials)) or state.name in ("COMPLETE", "PRUNED", "FAIL")
        },
    }
    if complete:
        best = study.best_trial
        overrides = _job_overrides(sweep_dir, best.number)
        results["best"] = {
            "trial": best.number,
            "value": best.value,
            "params": dict(best.params),
            "command": "dltool train " + " ".join(overrides) if overrides else None,
        }
    importances = _importances(study, len(complete))
    results["importance"] = importances
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "optimization_results.yaml").write_text(
        yaml.safe_dump(results, sort_keys=False, width=10**6)
    )
    plot_history(trials, results["direction"], monitor).save(sweep_dir / "optimization_history.png")
    if importances:
        plot_importances(importances).save(sweep_dir / "param_importances.png")
    _print(results, sweep_dir)
    return results


def _job_overrides(sweep_dir: Path, number: int) -> list[str]:
    """The overrides trial ``number``'s job ran with (its ``.hydra/overrides.yaml``)."""
    for path in sweep_dir.glob(f"{number}_*/.hydra/overrides.yaml"):
        return [str(o) for o in OmegaConf.load(path)]
    return []


def _importances(study: Any, complete: int) -> dict[str, float]:
    """Each parameter's importance for the objective; empty before two complete trials."""
    import optuna

    if complete < 2:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError):  # too few distinct values to tell
        return {}


def _print(results: dict[str, Any], sweep_dir: Path) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in results["trials"].items() if n)
    out = console()
    out.print(f"study {results['study']!r}: {counts}; report in {sweep_dir}")
    best = results.get("best")
    if best:
        out.print(f"best trial {best['trial']}: {results['monitor']} {best['value']:.6g}")
        if best["command"]:
            out.print(best["command"], soft_wrap=True)
    if results["importance"]:
        table = Table(title="parameter importance")
        table.add_column("parameter")
        table.add_column("importance", justify="right")
        for key, value in results["importance"].items():
            table.add_row(key, f"{value:.3f}")
        out.print(table)


# ---------------------------------------------------------------- plots


def plot_history(trials: Sequence[Any], direction: str, monitor: str) -> Image.Image:
    """Each finished trial's value by trial number, pruned ones grey, the best so far as a red line."""
    points = []
    for trial in trials:
        if trial.state.name == "COMPLETE":
            points.append((trial.number, trial.value, "COMPLETE"))
        elif trial.state.name == "PRUNED" and trial.intermediate_values:
            points.append((trial.number, trial.intermediate_values[max(trial.intermediate_values)], "PRUNED"))
    finite = [(x, y, s) for x, y, s in points if math.isfinite(y)]
    ys = [p[1] for p in finite] or [1.0]
    log = min(ys) > 0 and max(ys) / min(ys) > 50
    image, draw = _canvas(
        f"optimization history: {monitor} ({direction}{', log scale' if log else ''})", _SIZE
    )
    _legend(draw)
    if not finite:
        return image
    xs = [p[0] for p in finite]
    axes = _Axes(draw, (min(xs) - 0.5, max(xs) + 0.5), (min(ys), max(ys)), log)
    axes.frame("trial")
    best, line = None, []
    for x, y, state in finite:
        axes.dot(x, y, _COLORS[state])
        if state == "COMPLETE" and (best is None or (y < best if direction == "minimize" else y > best)):
            best = y
        if best is not None:
            line.append((x, best))
    axes.steps(line, _COLORS["best"])
    return image


def plot_importances(importances: dict[str, float]) -> Image.Image:
    """A horizontal bar for each parameter's importance, the most important on top."""
    row, top = 36, _MARGIN[1]
    image, draw = _canvas("parameter importance", (_SIZE[0], top + 20 + row * len(importances)))
    font, width = _font(), _SIZE[0] - 200 - 70
    for i, (key, value) in enumerate(importances.items()):
        y = top + 10 + i * row
        draw.text((10, y + row / 4), key[:28], fill="black", font=font)
        draw.rectangle((200, y + 4, 200 + max(1, value * width), y + row - 4), fill=_COLORS["COMPLETE"])
        draw.text((206 + value * width, y + row / 4), f"{value:.3f}", fill="black", font=font)
    return image


def _canvas(title: str, size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((_MARGIN[0], 8), title, fill="black", font=_font())
    return image, draw


def _legend(draw: ImageDraw.ImageDraw) -> None:
    x = _SIZE[0] - 300
    for label, color in (("complete", "COMPLETE"), ("pruned", "PRUNED"), ("best so far", "best")):
        draw.ellipse((x, 11, x + 8, 19), fill=_COLORS[color])
        draw.text((x + 12, 8), label, fill="black", font=_font())
        x += 90


def _font() -> Any:
    return ImageFont.load_default(size=13)


class _Axes:
    """Data coordinates to pixels inside the margins (``log``: a logarithmic y axis)."""

    def __init__(
        self, draw: ImageDraw.ImageDraw, xlim: tuple[float, float], ylim: tuple[float, float], log: bool
    ):
        self.draw, self.xlim, self.log = draw, xlim, log
        low, high = (math.log10(v) for v in ylim) if log else ylim
        pad = (high - low) * 0.05 or 0.5
        self.ylim = (low - pad, high + pad)

    def point(self, x: float, y: float) -> tuple[float, float]:
        left, top, right, bottom = _MARGIN
        y = math.log10(y) if self.log else y
        u = (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0])
        v = (y - self.ylim[0]) / (self.ylim[1] - self.ylim[0])
        return left + u * (_SIZE[0] - left - right), _SIZE[1] - bottom - v * (_SIZE[1] - top - bottom)

    def frame(self, xlabel: str) -> None:
        left, top, right, bottom = _MARGIN
        font, draw = _font(), self.draw
        draw.rectangle((left, top, _SIZE[0] - right, _SIZE[1] - bottom), outline="black")
        for i in range(5):
            value = self.ylim[0] + (self.ylim[1] - self.ylim[0]) * (i + 0.5) / 5
            shown = 10**value if self.log else value
            _, y = self.point(self.xlim[0], shown)
            draw.line((left - 4, y, left, y), fill="black")
            draw.text((4, y - 7), f"{shown:.3g}", fill="black", font=font)
        first, last = math.ceil(self.xlim[0]), math.floor(self.xlim[1])
        step = max(1, math.ceil((last - first + 1) / 10))
        for number in range(first, last + 1, step):
            x, _ = self.point(number, 10 ** self.ylim[0] if self.log else self.ylim[0])
            draw.line((x, _SIZE[1] - bottom, x, _SIZE[1] - bottom + 4), fill="black")
            draw.text((x - 4, _SIZE[1] - bottom + 6), str(number), fill="black", font=font)
        draw.text((_SIZE[0] / 2, _SIZE[1] - 18), xlabel, fill="black", font=font)

    def dot(self, x: float, y: float, color: tuple[int, int, int]) -> None:
        u, v = self.point(x, y)
        self.draw.ellipse((u - 4, v - 4, u + 4, v + 4), fill=color)

    def steps(self, points: list[tuple[float, float]], color: tuple[int, int, int]) -> None:
        """The best-so-far line: flat to the next trial, then a step to its value."""
        pixels = []
        for x, y in points:
            u, v = self.point(x, y)
            if pixels:
                pixels.append((u, pixels[-1][1]))
            pixels.append((u, v))
        if len(pixels) > 1:
            self.draw.line(pixels, fill=color, width=2)


# ---------------------------------------------------------------- dltool sweep-report


def report(cfg: DictConfig) -> dict[str, Any]:
    """Write the report of the study in ``cfg.dir`` (``dltool sweep-report dir=...``) again.

    Raises:
        ConfigError: no study database in ``dir``, a storage that cannot be opened, or no study to pick.
    """
    import optuna

    sweep_dir = Path(cfg.dir)
    database = sweep_dir / "optuna.db"
    if cfg.storage is None and not database.is_file():
        raise ConfigError(f"dir: {database} does not exist (give a sweep directory, or storage=URL)")
    storage = cfg.storage or f"sqlite:///{database.resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as ex:
        raise ConfigError(f"storage: cannot open {storage!r}: {str(ex).splitlines()[0]}") from None
    name = cfg.study or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise ConfigError(f"study: choose one of the storage's studies ({', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=name, storage=storage)
    return write_report(study, sweep_dir, str(study.user_attrs.get("monitor", "value")))
