"""``pip install .`` (not editable) into a fresh virtualenv gives a working ``dltool`` that finds
its configs inside the installed package."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, cli_env


@pytest.mark.slow
def test_pip_install_gives_a_working_dltool(tmp_path: Path, data_root: Path) -> None:
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info", "__pycache__"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The test environment's packages (pip, setuptools, numpy, hydra, ...) without their .pth hooks,
    # so nothing is downloaded and an editable dltool installed there stays invisible.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    Path(purelib, "parent_env.pth").write_text("\n".join(sorted(parents)) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(source)],
        check=True,
        capture_output=True,
    )

    env = cli_env(data_root)
    env.pop("PYTHONPATH")
    where = subprocess.run(
        [str(python), "-c", "import dltool, pathlib; print(pathlib.Path(dltool.__file__).parent)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), where
    assert (Path(where) / "conf" / "model" / "mlp.yaml").is_file()

    dltool = str(venv / "bin" / "dltool")
    help_text = subprocess.run(
        [dltool, "train", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "model: cnn, dcgan, gru_lm, lenet, linreg, logreg, lstm_lm, mlp, transformer_lm" in help_text.stdout
    run = subprocess.run(
        [dltool, "train", "debug=fast_dev_run", "hydra.run.dir=runs/installed"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "runs" / "installed" / "metrics.json").is_file()
