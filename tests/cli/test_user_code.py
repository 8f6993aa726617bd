"""Code the user names runs; code a checkpoint names does not, whichever command reads it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import dltool.engine as dl
from tests.cli.conftest import TINY, cli_env, ok

USER_MODEL = '''
import dltool.engine as torch


class Net(torch.nn.Module):
    """A user's own classifier, in the working directory."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.linear = torch.nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))
'''


def _installed_dltool(cwd: Path, data_root: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as the installed ``dltool`` script runs it: the working directory is not on
    the import path (``-P``), unlike under ``python -m``."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "dltool.cli", *args],
        cwd=cwd,
        env=cli_env(data_root),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.skipif(sys.version_info < (3, 11), reason="python -P is new in 3.11")
def test_a_model_in_the_working_directory(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "mynet.py").write_text(USER_MODEL)
    ok(
        _installed_dltool(
            tmp_path,
            data_root,
            "train",
            *TINY,
            "model._target_=mynet.Net",
            "~model.hidden_sizes",
            "~model.dropout",
            "hydra.run.dir=runs/a",
        )
    )
    config_dir = tmp_path / "myconf" / "model"
    config_dir.mkdir(parents=True)
    (config_dir / "mine.yaml").write_text(
        textwrap.dedent("""\
            # @package _global_
            model:
              _target_: mynet.Net
              input_shape: ${dataset.input_shape}
              num_classes: ${dataset.num_classes}
        """)
    )
    args = ["train", "--config-dir", "myconf", "model=mine", *TINY, "hydra.run.dir=runs/b"]
    ok(_installed_dltool(tmp_path, data_root, *args))
    assert (tmp_path / "runs/b/checkpoints/last.ckpt").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "checkpoint=CKPT"],
        ["predict", "checkpoint=CKPT", "inputs=[x.png]"],
        ["train", "resume=CKPT"],
    ],
    ids=["eval", "predict", "resume"],
)
def test_no_command_runs_code_a_checkpoint_names(
    dltool: Callable, trained_run: Path, tmp_path: Path, args: list[str]
) -> None:
    checkpoint = dl.load(trained_run / "checkpoints" / "best.ckpt")
    mark, source = tmp_path / "mark", tmp_path / "source"
    source.write_text("data")
    checkpoint["config"]["model"] = {"_target_": "shutil.copyfile", "src": str(source), "dst": str(mark)}
    crafted = tmp_path / "crafted" / "checkpoints" / "last.ckpt"
    crafted.parent.mkdir(parents=True)
    dl.save(checkpoint, crafted)
    result = dltool(*(a.replace("CKPT", str(crafted)) for a in args))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "config key model._target_ names 'shutil.copyfile'" in result.stderr
    assert "trust_checkpoint_code=true" in result.stderr
    assert not mark.exists()
