"""The allocator tuning: freed large blocks are reused instead of faulting in fresh pages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

# Like a training step: several large temporaries alive at once (55 MiB), then all freed.
# Prints the minor page faults of 10 steps after 5 warm-up steps.
_SCRIPT = textwrap.dedent(
    """
    import resource
    import sys
    import numpy as np
    import dltool.engine

    if sys.argv[1] == "tune":
        dltool.engine.host_memory.tune_malloc()

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def step():
        temporaries = [np.ones(mib * 2**18, dtype=np.float32) for mib in (20, 5, 5, 15, 2, 8)]

    for _ in range(5):
        step()
    before = faults()
    for _ in range(10):
        step()
    print(faults() - before)
    """
)


def _faults(action: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "DLTOOL_MALLOC_TUNING"}
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, action], env=env, capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_large_blocks_are_reused_without_page_faults_once_tuned():
    tuned, imported_only = _faults("tune"), _faults("import")
    pages = 10 * 55 * 2**20 // 4096  # what ten steps of fresh blocks fault in
    assert imported_only > pages // 10, "importing the engine must leave glibc's defaults alone"
    assert tuned < pages // 100


def test_opt_out():
    from dltool.engine.host_memory import tune_malloc

    os.environ["DLTOOL_MALLOC_TUNING"] = "0"
    try:
        assert tune_malloc() is False
    finally:
        del os.environ["DLTOOL_MALLOC_TUNING"]
    assert tune_malloc() is True
