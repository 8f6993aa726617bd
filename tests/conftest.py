"""Shared fixtures: a fixed seed for every test, and the dataset root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dltool.engine as dl


@pytest.fixture(autouse=True)
def _seed() -> None:
    dl.manual_seed(0)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets (``$DLTOOL_DATA``, as CI sets it); tests that need them skip without."""
    root = Path(os.environ.get("DLTOOL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"no datasets at {root}; set DLTOOL_DATA")
    return root
