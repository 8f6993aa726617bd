"""Metric loggers for a run directory: TensorBoard event files and a CSV mirror.

Each logger is built by the trainer from the ``logger`` config group as
``partial(run_dir=..., purge_step=...)``: on a resumed run, ``purge_step`` is the first step
after the checkpoint, and whatever an earlier process logged from there on is dropped, so the
curves continue without duplicate steps.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dltool.training.files import write_text_atomically


@contextlib.contextmanager
def _torch_hidden() -> Iterator[None]:
    """Make ``import torch`` fail for a while, unless torch is imported already.

    tensorboardX's package imports PyTorch whenever it is installed, only to accept torch tensors,
    and these loggers hand it plain floats: a one-epoch ``dltool train`` took 3.7-3.8 s with that
    import and 1.9-2.0 s without it (peak RSS 311 against 193 MiB).
    """
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # None: the import raises ImportError
    try:
        yield
    finally:
        del sys.modules["torch"]


with _torch_hidden():
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.api_pb2 import HParamInfo
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.summary import histogram as histogram_summary
    from tensorboardX.summary import hparams as hparams_summary
    from tensorboardX.summary import text as text_summary


_HISTOGRAM_BINS = 64
_DIFFERS = b"\x38\x01"  # HParamInfo.differs (field 7, varint) = true


class TensorBoardLogger:
    """Scalars, pictures and hyperparameters in one event file in ``run_dir`` (not in a sub-run).

    Events are written synchronously, so ``flush()`` puts everything logged so far on disk
    (``SummaryWriter.flush`` leaves events queued for its writer thread).

    Args:
        images: whether the trainer should draw pictures for it (a validation epoch's confusion
            matrix and mistakes: about 12 ms an epoch for 10 classes).
        histograms: every how many steps the trainer logs histograms of each parameter's
            weights and gradients (0: never).
    """

    def __init__(
        self, run_dir: str | Path, purge_step: int | None = None, images: bool = True, histograms: int = 0
    ) -> None:
        if not isinstance(histograms, int) or histograms < 0:
            raise ValueError(f"histograms must be a step count >= 0 (0: off), got {histograms!r}")
        self.images, self.histograms = images, histograms
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        # NOTE: the suffix keeps a quickly resumed run from reusing (truncating) the previous
        # file's name, which has only a seconds timestamp, and sorts files in time order.
        self._events = EventsWriter(os.path.join(run_dir, "events"), filename_suffix=f".{time.time_ns()}")
        if purge_step is not None:
            # TensorBoard's reader hides earlier files' events at steps >= purge_step after this.
            self._write(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))

    def _write(self, event: Event) -> None:
        event.wall_time = time.time()
        self._events.write_event(event)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        values = [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in metrics.items()]
        self._write(Event(step=step, summary=Summary(value=values)))

    def log_images(self, images: Mapping[str, Image.Image], step: int) -> None:
        """Pictures for TensorBoard's Images tab, one per tag, stored as PNG in the event file."""
        values = [Summary.Value(tag=tag, image=_png_summary(image)) for tag, image in images.items()]
        self._write(Event(step=step, summary=Summary(value=values)))

    def log_histograms(self, arrays: Mapping[str, np.ndarray], step: int) -> None:
        """One histogram per tag (TensorBoard's Histograms and Distributions tabs)."""
        values = [
            value
            for tag, array in arrays.items()
            for value in histogram_summary(tag, np.asarray(array, dtype=np.float64), _HISTOGRAM_BINS).value
        ]
        self._write(Event(step=step, summary=Summary(value=values)))

    def log_text(self, tag: str, text: str, step: int) -> None:
        """Markdown for TensorBoard's Text tab."""
        self._write(Event(step=step, summary=text_summary(tag, text)))

    def log_hparams(self, hparams: Mapping[str, Any], metric_tags: list[str]) -> None:
        """The run's HParams session: its hyperparameters, and its end. The metrics' values are the
        scalars logged under ``metric_tags``; the columns come from the sweep's shared experiment
        (``log_experiment``), or TensorBoard derives them from all runs."""
        _, session_start, session_end = hparams_summary(dict(hparams), dict.fromkeys(metric_tags, 0.0))
        self._write(Event(summary=session_start))
        self._write(Event(summary=session_end))

    def log_experiment(
        self, hparams: Mapping[str, Any], metric_tags: list[str], varying: Collection[str] = ()
    ) -> None:
        """The HParams experiment (a sweep writes one at its root): the hyperparameter and metric
        columns. TensorBoard lists the ``varying`` hyperparameters first (it sorts by "differs
        between runs", then by name) and shows the first few by default."""
        summary, _, _ = hparams_summary(dict(hparams), dict.fromkeys(metric_tags, 0.0))
        metadata = summary.value[0].metadata.plugin_data
        data = HParamsPluginData.FromString(metadata.content)
        infos = list(data.experiment.hparam_infos)
        del data.experiment.hparam_infos[:]
        for info in infos:
            # NOTE: tensorboardX's proto lacks TensorBoard's field 7, `differs`; written as raw bytes
            raw = info.SerializeToString() + (_DIFFERS if info.name in varying else b"")
            data.experiment.hparam_infos.append(HParamInfo.FromString(raw))
        metadata.content = data.SerializeToString()
        self._write(Event(summary=summary))

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


def _png_summary(image: Image.Image) -> Summary.Image:
    """``image`` as TensorBoard's image record; fast PNG compression (these are small pictures drawn
    each epoch: level 1 took a third of the default's time)."""
    buffer = io.BytesIO()
    rgb = image.convert("RGB")
    rgb.save(buffer, format="PNG", compress_level=1)
    return Summary.Image(
        height=rgb.height, width=rgb.width, colorspace=3, encoded_image_string=buffer.getvalue()
    )


class CSVLogger:
    """The same scalars as rows ``wall_time,step,tag,value`` in ``run_dir/metrics.csv``."""

    FIELDS = ("wall_time", "step", "tag", "value")
    images = False  # numbers only
    histograms = 0

    def __init__(
        self, run_dir: str | Path, purge_step: int | None = None, filename: str = "metrics.csv"
    ) -> None:
        if Path(filename).name != filename:  # NOTE: a checkpoint's config may set it: stay in run_dir
            raise ValueError(f"filename must be a file name in the run directory, got {filename!r}")
        self.path = Path(run_dir) / filename
        if purge_step is not None and self.path.exists():
            self._purge(purge_step)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(self.FIELDS)

    def _purge(self, purge_step: int) -> None:
        with open(self.path, newline="") as f:
            rows = [row for row in csv.reader(f)]
        kept = [rows[0]] + [row for row in rows[1:] if len(row) == 4 and int(row[1]) < purge_step]
        text = io.StringIO(newline="")
        csv.writer(text).writerows(kept)
        write_text_atomically(self.path, text.getvalue())

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = time.time()
        self._csv.writerows([(f"{now:.3f}", step, tag, repr(float(value))) for tag, value in metrics.items()])

    def log_images(self, images: Mapping[str, Image.Image], step: int) -> None:
        """Nothing to add: a CSV holds numbers."""

    def log_text(self, tag: str, text: str, step: int) -> None:
        """Nothing to add: the config is in ``.hydra/``."""

    def log_hparams(self, hparams: Mapping[str, Any], metric_tags: list[str]) -> None:
        """Nothing to add: the config is in ``.hydra/`` and the final metrics in metrics.json."""

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
