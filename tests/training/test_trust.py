"""A checkpoint's stored config may only name dltool's components: crafted files run no code.

Each crafted checkpoint names a callable that would leave a mark (a file in ``tmp_path``) if
Hydra ever called it; every command that reads a checkpoint must refuse it before that happens.
With ``trust_checkpoint_code=true`` the same file does leave the mark, which shows the tests
reach the instantiation they guard.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import dltool.engine as dl
from dltool.training.checkpoint import new_checkpoint
from dltool.training.errors import CheckpointError
from dltool.training.evaluation import evaluate_checkpoint
from dltool.training.predict import predict
from dltool.training.resume import resume_config
from dltool.training.trainer import train
from dltool.training.trust import is_component
from tests.training.conftest import compose_config

GROUPS = ["model", "dataset", "optimizer", "scheduler", "loss", "trainer", "logger", "experiment", "debug"]


def _compose(name: str, *overrides: str) -> Any:
    GlobalHydra.instance().clear()
    with initialize_config_module("dltool.conf", version_base="1.3"):
        return compose(name, overrides=list(overrides))


def _eval(path: Path, *extra: str) -> Any:
    return evaluate_checkpoint(_compose("eval", f"checkpoint={path}", *extra))


def _predict(path: Path, *extra: str) -> Any:
    return predict(_compose("predict", f"checkpoint={path}", "inputs=[x.png]", *extra))


def _resume(path: Path, *extra: str) -> Any:
    overrides = [f"resume={path}", *extra]
    cfg, resumption = resume_config(compose_config(*overrides), path.parent, overrides, GROUPS)
    return train(cfg, path.parent.parent, resumption)


COMMANDS: dict[str, Callable[..., Any]] = {"eval": _eval, "predict": _predict, "resume": _resume}


def _mark_writers(mark: Path) -> dict[str, dict[str, Any]]:
    """Configs of callables that each write ``mark`` when called."""
    source = mark.with_name("source.txt")
    source.write_text("data")
    return {
        "open": {"_target_": "builtins.open", "file": str(mark), "mode": "w"},
        "copyfile": {"_target_": "shutil.copyfile", "src": str(source), "dst": str(mark)},
        "savetxt": {"_target_": "numpy.savetxt", "fname": str(mark), "X": [[1.0]]},
        "os.system": {"_target_": "os.system", "_args_": [f"touch {mark}"]},
        "subprocess": {"_target_": "subprocess.run", "args": ["touch", str(mark)]},
        "partial": {"_target_": "builtins.open", "_partial_": True, "file": str(mark), "mode": "w"},
        # inside the dltool package, but a function that writes files, not a component
        "dltool.engine.save": {"_target_": "dltool.engine.save", "obj": 1, "f": str(mark)},
        "through a dltool module": {
            "_target_": "dltool.engine.backend.os.system",
            "_args_": [f"touch {mark}"],
        },
    }


def _placements(writer: dict[str, Any]) -> dict[str, Callable[[dict[str, Any]], None]]:
    """Ways to put ``writer`` into a stored config, each a function that edits it in place."""

    def transform_list(config: dict[str, Any]) -> None:
        config["dataset"]["transform"]["transforms"].insert(0, writer)

    def nested_argument(config: dict[str, Any]) -> None:
        config["model"]["hidden_sizes"] = writer

    def positional_argument(config: dict[str, Any]) -> None:
        config["model"]["_args_"] = [{"deep": [writer]}]

    def interpolation(config: dict[str, Any]) -> None:
        config["dataset"]["name"] = writer["_target_"]
        config["model"] = {**writer, "_target_": "${dataset.name}"}

    def task_part(config: dict[str, Any]) -> None:
        config["task"]["model"] = writer  # in place of the ${model} reference

    def referenced(config: dict[str, Any]) -> None:
        config["elsewhere"] = writer  # a node the task refers to is checked where it is
        config["task"]["model"] = "${elsewhere}"

    return {
        "model": lambda config: config.update(model=writer),
        "task": lambda config: config.update(task=writer),
        "task part": task_part,
        "referenced node": referenced,
        "transform list": transform_list,
        "nested argument": nested_argument,
        "positional argument": positional_argument,
        "interpolation": interpolation,
    }


@pytest.fixture
def stored(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DLTOOL_DATA", str(data_root))
    return OmegaConf.to_container(compose_config("trainer.epochs=1"))


def _write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": "classification", "classes": [str(i) for i in range(10)], "input_shape": [1, 28, 28]}
    dl.save(new_checkpoint(config=config, meta=meta, model={}), path)
    return path


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "target", ["open", "copyfile", "savetxt", "os.system", "subprocess", "partial", "dltool.engine.save",
               "through a dltool module"]
)  # fmt: skip
def test_a_crafted_model_target_is_refused_by_every_command(
    command: str, target: str, stored: dict[str, Any], tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    config = copy.deepcopy(stored)
    config["model"] = _mark_writers(mark)[target]
    path = _write(tmp_path, config)
    with pytest.raises(CheckpointError, match=r"config key model\._target_ names .* refusing to run it"):
        COMMANDS[command](path)
    assert not mark.exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "place",
    ["transform list", "nested argument", "positional argument", "interpolation", "task", "task part",
     "referenced node"],
)  # fmt: skip
def test_targets_anywhere_in_the_config_are_checked(
    command: str, place: str, stored: dict[str, Any], tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    config = copy.deepcopy(stored)
    _placements(_mark_writers(mark)["open"])[place](config)
    path = _write(tmp_path, config)
    with pytest.raises(CheckpointError, match="'builtins.open'"):
        COMMANDS[command](path)
    assert not mark.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_the_same_file_runs_its_code_only_when_the_user_trusts_it(
    command: str, stored: dict[str, Any], tmp_path: Path
) -> None:
    mark = tmp_path / "mark"
    config = copy.deepcopy(stored)
    config["model"] = _mark_writers(mark)["copyfile"]
    path = _write(tmp_path, config)
    with pytest.raises(Exception, match="nn.Module"):  # a path is no model, but copyfile() ran
        COMMANDS[command](path, "trust_checkpoint_code=true")
    assert mark.exists()


def test_a_checkpoint_cannot_trust_itself(stored: dict[str, Any], tmp_path: Path) -> None:
    config = copy.deepcopy(stored)
    config["model"] = _mark_writers(tmp_path / "mark")["open"]
    config["trust_checkpoint_code"] = True
    path = _write(tmp_path, config)
    with pytest.raises(CheckpointError, match="refusing to run it"):
        _resume(path)


def test_a_target_the_user_types_on_resume_is_trusted(stored: dict[str, Any], tmp_path: Path) -> None:
    config = copy.deepcopy(stored)
    config["model"]["_target_"] = "builtins.open"
    path = _write(tmp_path, config)
    overrides = [f"resume={path}", "model._target_=tests.training.test_trust.TinyNet"]
    cfg, _ = resume_config(compose_config(*overrides), path.parent, overrides, GROUPS)
    assert cfg.model._target_ == "tests.training.test_trust.TinyNet"


class TinyNet(dl.nn.Module):
    """A user's own model, named on the command line."""


def test_components_are_dltool_classes_of_the_known_kinds() -> None:
    for name in (
        "dltool.models.mlp.MLP",
        "dltool.engine.nn.CrossEntropyLoss",
        "dltool.engine.nn.modules.linear.Linear",
        "dltool.engine.optim.SGD",
        "dltool.engine.optim.lr_scheduler.OneCycleLR",
        "dltool.datasets.FashionMNIST",
        "dltool.datasets.transforms.Normalize",
        "dltool.training.loggers.CSVLogger",
    ):
        assert is_component(name), name
    for name in (
        "builtins.open",
        "dltool.engine.save",
        "dltool.training.checkpoint.CheckpointWriter",
        "dltool.engine.backend.np.ndarray",
        "dltool.no.such.Module",
        "dltoolx.models.MLP",
        "tests.training.test_trust.TinyNet",
    ):
        assert not is_component(name), name


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_checkpoint_without_its_meta_is_one_clear_error(
    command: str, stored: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "bare.ckpt"
    dl.save(new_checkpoint(config=stored, meta={}, model={}), path)
    with pytest.raises(CheckpointError, match="its meta has no 'task'; it was not written by dltool train"):
        COMMANDS[command](path)
