"""The ``>>>`` examples in dltool's docstrings run and print what they show.

Each docstring with examples is one test. The examples see their module's names plus the names
of ``from dltool.engine import *`` (except those that would hide a builtin, such as ``float``),
``torch`` (``dltool.engine``), ``nn``, ``F`` and ``np``, as ``docs/api.md`` says; they run in an
empty working directory, and an example that reads ``default_root()`` gets the real datasets
(``$DLTOOL_DATA``) or skips without them.
"""

from __future__ import annotations

import builtins
import doctest
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import dltool
import dltool.engine as torch

NAMESPACE = {
    **{
        name: getattr(torch, name)
        for name in dir(torch)
        if not name.startswith("_") and name not in dir(builtins)
    },
    "torch": torch,
    "nn": torch.nn,
    "F": torch.nn.functional,
    "np": np,
}


def _docstring_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    modules = [
        importlib.import_module(info.name) for info in pkgutil.walk_packages(dltool.__path__, "dltool.")
    ]
    return [test for module in [dltool, *modules] for test in finder.find(module) if test.examples]


@pytest.mark.parametrize("example", _docstring_examples(), ids=lambda example: example.name)
def test_docstring_example(
    example: doctest.DocTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.chdir(tmp_path)
    if any("default_root()" in line.source for line in example.examples):
        monkeypatch.setenv("DLTOOL_DATA", str(request.getfixturevalue("data_root")))
    example.globs = {**NAMESPACE, **example.globs}
    report: list[str] = []
    result = doctest.DocTestRunner().run(example, out=report.append)
    assert result.failed == 0, "".join(report)
