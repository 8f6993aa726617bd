"""Checkpoint files: rotation, RNG round trips, clear errors for bad files, and a save killed
mid-write leaving the previous checkpoint loadable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import dltool.engine as dl
from dltool.training.checkpoint import (
    CheckpointWriter,
    capture_rng,
    find_last_checkpoint,
    load_checkpoint,
    load_model_state,
    new_checkpoint,
    restore_rng,
    run_dir_of,
)
from dltool.training.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]


def _checkpoint(epoch: int) -> dict:
    return new_checkpoint(
        config={"trainer": {"epochs": 3}},
        meta={"task": "classification"},
        model={"w": dl.full((2, 2), float(epoch))},
        loop={"epoch": epoch},
    )


def test_writer_keeps_last_best_and_the_last_k_epochs(tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path / "checkpoints", every_n_epochs=2, keep_last_k=2)
    for epoch in range(1, 9):
        writer.save(_checkpoint(epoch), epoch=epoch, improved=epoch in (1, 3))
    names = sorted(p.name for p in writer.directory.iterdir())
    assert names == ["best.ckpt", "epoch-6.ckpt", "epoch-8.ckpt", "last.ckpt"]
    assert load_checkpoint(writer.best)["loop"]["epoch"] == 3
    assert load_checkpoint(writer.last)["loop"]["epoch"] == 8
    writer.save(_checkpoint(9))  # mid-epoch: only last.ckpt
    assert load_checkpoint(writer.last)["loop"]["epoch"] == 9
    assert load_checkpoint(writer.best)["loop"]["epoch"] == 3
    assert run_dir_of(writer.last) == tmp_path and find_last_checkpoint(tmp_path) == writer.last
    assert load_checkpoint(writer.directory / "epoch-6.ckpt")["loop"]["epoch"] == 6


def test_writer_copies_where_hard_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object) -> None:
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    writer = CheckpointWriter(tmp_path / "checkpoints")
    writer.save(_checkpoint(1), epoch=1, improved=True)
    writer.save(_checkpoint(2), epoch=2, improved=False)
    assert load_checkpoint(writer.best)["loop"]["epoch"] == 1
    assert load_checkpoint(writer.last)["loop"]["epoch"] == 2
    assert sorted(p.name for p in writer.directory.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_checkpoint_names_version_and_config(tmp_path: Path) -> None:
    import dltool

    dl.save(_checkpoint(1), tmp_path / "a.ckpt")
    checkpoint = load_checkpoint(tmp_path / "a.ckpt")
    assert checkpoint["dltool_version"] == dltool.__version__
    assert checkpoint["config"] == {"trainer": {"epochs": 3}}


def test_rng_states_round_trip_through_a_file(tmp_path: Path) -> None:
    dl.manual_seed(3), np.random.seed(3), random.seed(3)
    dl.save({"rng": capture_rng()}, tmp_path / "rng.ckpt")
    expected = (dl.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)])
    dl.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng(dl.load(tmp_path / "rng.ckpt")["rng"])
    assert (dl.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)]) == expected


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage", "foreign"])
def test_bad_checkpoint_files_give_one_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "last.ckpt"
    if kind == "truncated":
        dl.save(_checkpoint(1), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "garbage":
        path.write_bytes(os.urandom(1000))
    elif kind == "foreign":
        dl.save({"state_dict": {"w": dl.zeros(2)}}, path)  # a dltool file, but not a checkpoint
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    expected = {
        "missing": "checkpoint not found",
        "truncated": "corrupted",
        "garbage": "corrupted",
        "foreign": "is not a dltool checkpoint",
    }[kind]
    assert expected in message


def test_model_mismatch_names_the_keys(tmp_path: Path) -> None:
    nn = dl.nn
    small, other = nn.Sequential(nn.Linear(4, 3)), nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(
        CheckpointError, match=r"unexpected keys \[2.weight, 2.bias\].*0.weight \(5, 4\) vs \(3, 4\)"
    ):
        load_model_state(small, other.state_dict(), tmp_path / "x.ckpt")
    state = {k: v + 1 for k, v in small.state_dict().items()}
    load_model_state(small, state, tmp_path / "x.ckpt")
    assert dl.equal(small[0].weight.detach(), state["0.weight"])


_KILLED_SAVE = textwrap.dedent("""
    import os, sys, time
    import dltool.engine as dl
    from dltool.training.checkpoint import CheckpointWriter, new_checkpoint
    writer = CheckpointWriter(sys.argv[1])
    writer.save(new_checkpoint(config={}, meta={}, loop={"epoch": 1}, model={"w": dl.zeros(1000, 1000)}))
    real_fsync = os.fsync
    def stall(fd):  # the second save's data is in its temp file, not yet renamed: get killed here
        open(sys.argv[2], "w").close()
        time.sleep(60)
    os.fsync = stall
    writer.save(new_checkpoint(config={}, meta={}, loop={"epoch": 2}, model={"w": dl.ones(1000, 1000)}))
""")


def test_a_save_killed_mid_write_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "writing"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(tmp_path), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the second save never started"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    checkpoint = load_checkpoint(tmp_path / "last.ckpt")
    assert checkpoint["loop"]["epoch"] == 1 and float(checkpoint["model"]["w"].sum()) == 0.0
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the dead write's leftover


def test_a_new_writer_removes_the_temporaries_of_dead_saves_only(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    stale = folder / f".last.ckpt.{dead.pid}.0123456789ab.tmp"
    live = folder / f".last.ckpt.{os.getpid()}.0123456789ab.tmp"
    unrelated = folder / ".notes.tmp"
    for path in (stale, live, unrelated):
        path.write_bytes(b"x" * 100)
    CheckpointWriter(folder)
    assert not stale.exists() and live.exists() and unrelated.exists()


def _as_format_1(checkpoint: dict) -> dict:
    """A format-2 checkpoint of a classifier written back the way format 1 held it."""
    old = dict(checkpoint, format_version=1)
    old["model"] = {key.removeprefix("model."): value for key, value in checkpoint["model"].items()}
    old["optimizer"], old["scheduler"] = old.pop("optimizers")[0], old.pop("schedulers")[0]
    old["config"] = {k: v for k, v in checkpoint["config"].items() if k != "task"}
    old["meta"] = dict(checkpoint["meta"], choices={k: v for k, v in checkpoint["meta"]["choices"].items() if k != "task"})
    sums = checkpoint["loop"]["running"]["sums"]
    running = {"loss_sum": sums["loss"], "score_sum": sums["acc"], "count": checkpoint["loop"]["running"]["count"]}
    old["loop"] = dict(checkpoint["loop"], running=running)
    return old


def test_a_format_1_checkpoint_resumes_as_format_2(fashion, tmp_path: Path) -> None:
    from dltool.training.resume import resume_config
    from dltool.training.trainer import train

    train(fashion("trainer.max_steps=3"), tmp_path / "new", choices={"task": "classification"})
    new = load_checkpoint(tmp_path / "new/checkpoints/last.ckpt")
    path = tmp_path / "old/checkpoints/last.ckpt"
    path.parent.mkdir(parents=True)
    dl.save(_as_format_1(new), path)
    upgraded = load_checkpoint(path)
    assert upgraded["model"].keys() == new["model"].keys() and upgraded["loop"] == new["loop"]
    assert upgraded["config"]["task"]["_target_"] == "dltool.training.tasks.Classification"
    assert upgraded["meta"]["choices"]["task"] == "classification"
    overrides = [f"resume={path}", "trainer.max_steps=null"]
    cfg, resumption = resume_config(fashion(*overrides), path.parent.parent, overrides, ["trainer"])
    assert train(cfg, path.parent.parent, resumption)["steps"] == 8
