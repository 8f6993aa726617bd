"""A real ``tensorboard`` serves a finished sweep: runs, scalar tags, images and hparams columns."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import TINY, ok

pytest.importorskip("tensorboard")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_a_finished_sweep(dltool: Callable, tmp_path: Path) -> None:
    ok(dltool("train", "-m", *TINY, "trainer.epochs=1", "optimizer.lr=0.01,0.001", "hydra.sweep.dir=sweep"))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path / "sweep"),
         "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                runs = _get(f"{base}/data/runs")
                if len(runs) >= 3:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve the sweep: {server.stdout.read()}")
            time.sleep(0.5)
        jobs = sorted(run for run in runs if run != ".")
        assert jobs == ["0_lr=0.01", "1_lr=0.001"]
        scalars = _get(f"{base}/data/plugin/scalars/tags")
        assert {"train/loss_step", "lr", "val/acc", "test/acc", "best/val/acc"} <= set(scalars[jobs[0]])
        images = _get(f"{base}/data/plugin/images/tags")
        assert {"val/confusion_matrix", "val/misclassified"} <= set(images[jobs[0]])
        experiment = _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        columns = [info["name"] for info in experiment["hparamInfos"]]
        assert columns[0] == "optimizer.lr"  # the swept key first; then the others by name
        assert {"trainer.epochs", "model", "task"} <= set(columns[1:]) and columns[1:] == sorted(columns[1:])
        assert [m["name"]["tag"] for m in experiment["metricInfos"]][:2] == ["best/val/acc", "val/acc"]
    finally:
        server.terminate()
        server.communicate(timeout=30)  # reaps it and closes its output pipe
