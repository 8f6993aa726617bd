"""The committed PyTorch coverage table is the one the engine gives today."""

from __future__ import annotations

import pytest

from tools.pytorch_coverage import OUTPUT, render

torch = pytest.importorskip("torch")


def test_the_coverage_table_is_current() -> None:
    assert OUTPUT.read_text() == render(), "stale: run python -m tools.pytorch_coverage"


def test_names_are_counted_where_dltool_has_them() -> None:
    text = render()
    assert "`MultiheadAttention`" in text.split("## `torch.nn`")[1].split("**Not yet:**")[0]
