"""What a run shows in TensorBoard's HParams view, and the experiment a sweep shares.

A run declares as hyperparameters the overrides its command gave (what a sweep varies, so
TensorBoard lists those first: it sorts hyperparameters whose values differ between runs ahead of
the others), then the options of its main config groups. The full config goes to the Text tab.
A sweep writes one experiment summary at its root naming the swept keys first and the metrics to
compare (the monitored metric's best and final value, the test metrics): TensorBoard then shows
the same columns whichever job it reads first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

# The groups whose options a run always declares, in this order, after its overrides.
GROUPS = ("task", "model", "dataset", "optimizer", "scheduler", "loss")
_SKIPPED = ("resume", "trust_checkpoint_code")


def run_hparams(overrides: Sequence[str], choices: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optimizer.lr": 0.01, "model": "lenet", "task": "classification", ...}``: the overrides
    (``key=value``; deletions and Hydra's own keys left out), then the groups' options.

    Example:
        >>> run_hparams(["optimizer.lr=0.01", "+trainer.tag=a", "~loss"], {"model": "mlp", "task": "gan"})
        {'optimizer.lr': 0.01, 'trainer.tag': 'a', 'task': 'gan', 'model': 'mlp'}
    """
    hparams: dict[str, Any] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+")
        if sep and not key.startswith(("~", "hydra.", "hydra/")) and key not in _SKIPPED:
            hparams[key] = _scalar(value)
    for group in GROUPS:
        if group not in hparams and choices.get(group) is not None:
            hparams[group] = str(choices[group])
    return hparams


def sweep_hparams(overrides: Sequence[str], choices: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A sweep's hyperparameters, each with its first value (the swept keys, then the constant
    overrides and the groups), and the swept keys."""
    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    swept = {o.key_or_group: _first(o) for o in parsed if o.is_sweep_override()}
    constant = [o.input_line for o in parsed if not o.is_sweep_override()]
    rest = {k: v for k, v in run_hparams(constant, choices).items() if k not in swept}
    return {**swept, **rest}, list(swept)


def compared_metrics(monitor: str | None, test_metrics: Sequence[str]) -> list[str]:
    """The HParams metric columns: the monitored metric's best and final value, then the test metrics."""
    return ([f"best/{monitor}", monitor] if monitor else []) + list(test_metrics)


def _first(override: Any) -> Any:
    try:
        value = next(iter(override.sweep_iterator()))
    except Exception:  # a range or interval a sweeper plugin samples: its text
        return str(override.value())
    return _scalar(str(value)) if not isinstance(value, (int, float, bool)) else value


def _scalar(text: str) -> Any:
    """An override's value as TensorBoard takes it: a number, a bool, or text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) else text
