"""The harness the 2-rank worker scripts share: run every ``check_*`` function, note the result."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def run_checks(namespace: dict[str, object], backend: str, **init_args: object) -> None:
    """Join a process group on ``backend``, set ``RANK`` and ``SIZE`` in ``namespace`` (the worker's
    globals), call each ``check_*`` in it in order and write ``rank<r>.json`` into argv[1]."""
    import dltool.engine.distributed as dist

    dist.init_process_group(backend, **init_args)
    rank, size = dist.get_rank(), dist.get_world_size()
    namespace["RANK"], namespace["SIZE"] = rank, size
    results = {}
    for name, check in list(namespace.items()):
        if name.startswith("check_") and callable(check):
            try:
                check()
                results[name] = "ok"
            except Exception:  # a failed check is reported, and the other checks still run
                results[name] = traceback.format_exc(limit=-3)
    dist.destroy_process_group()
    Path(sys.argv[1], f"rank{rank}.json").write_text(json.dumps(results))
