"""Run a PyTorch program twice: as written, and with only its imports pointed at dltool.

A program in ``programs/`` is ordinary PyTorch code (``import torch``, ``import torch.nn as nn``,
``from torch.utils.data import DataLoader``, ...). ``load(name, "dltool")`` reads its source,
rewrites those import lines alone (``import torch`` becomes ``import dltool.engine as torch``)
and runs it as a module; nothing else in the program changes. Each program defines
``make_model()`` and ``train(model, data, ...) -> list of losses``, so a test can start both
copies from the same weights (PyTorch's, copied into dltool's) and compare what they print.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import numpy as np

PROGRAMS = Path(__file__).parent / "programs"

_IMPORT = re.compile(r"^(?P<indent>\s*)import torch(?P<sub>(\.\w+)*)(?: as (?P<alias>\w+))?\s*$")
_FROM = re.compile(r"^(?P<indent>\s*)from torch(?P<sub>(\.\w+)*) import ")


def swap_imports(source: str) -> str:
    """``source`` with every ``torch`` import pointed at ``dltool.engine``, and nothing else changed."""
    lines = []
    for line in source.splitlines():
        if match := _IMPORT.match(line):
            alias = match["alias"] or "torch"  # `import torch.nn` binds `torch`, the package
            module = f"dltool.engine{match['sub']}" if match["alias"] else "dltool.engine"
            line = f"{match['indent']}import {module} as {alias}"
        elif match := _FROM.match(line):
            line = f"{match['indent']}from dltool.engine{match['sub']} import " + line[match.end() :]
        lines.append(line)
    return "\n".join(lines) + "\n"


def load(name: str, library: str) -> types.ModuleType:
    """Program ``name`` as a module running on ``library`` (``"torch"`` or ``"dltool"``)."""
    source = (PROGRAMS / f"{name}.py").read_text()
    if library == "dltool":
        source = swap_imports(source)
    module = types.ModuleType(f"compat_{name}_{library}")
    module.__file__ = str(PROGRAMS / f"{name}.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def copy_weights(source: Any, target: Any) -> None:
    """Load the PyTorch module's state into the dltool one (same keys and shapes)."""
    state = {key: value.detach().numpy().copy() for key, value in source.state_dict().items()}
    target.load_state_dict({key: _tensor_of(target, value) for key, value in state.items()})


def _tensor_of(module: Any, array: np.ndarray) -> Any:
    import dltool.engine as dl

    return dl.from_numpy(array)
