"""The training loop: ``train(cfg, run_dir) -> metrics``.

One epoch is: train steps (logging ``train/loss`` and ``lr`` every N steps), then validation,
the LR schedule, the epoch's metrics to every logger, one summary line, and the checkpoints.
Everything a continuation needs goes into the checkpoint, so a resumed run reproduces an
uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

import dltool.engine as dl
from dltool.training.builders import (
    build,
    build_data,
    build_model,
    build_optimizer,
    build_scheduler,
    check_loss_fits,
    fill_num_classes,
)
from dltool.training.checkpoint import (
    CheckpointWriter,
    capture_rng,
    load_checkpoint,
    load_model_state,
    new_checkpoint,
    refuse_used_run_dir,
    restore_rng,
)
from dltool.training.console import EpochProgress, run_logging
from dltool.training.errors import CheckpointError, ConfigError, Interrupted, TrainingDiverged
from dltool.training.evaluation import Evaluation, evaluate
from dltool.training.metrics import RunningMetrics
from dltool.training.options import TrainerOptions
from dltool.training.pictures import confusion_matrix_image, misclassified_image
from dltool.training.resume import Resumption, restore_optimization
from dltool.training.signals import StopSignal

log = logging.getLogger("dltool")

MISCLASSIFIED_SHOWN = 16  # validation mistakes drawn each epoch


@dataclasses.dataclass
class LoopState:
    """The loop's counters; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps so far
    best: float | None = None  # best value of the monitored metric at an epoch end
    best_epoch: int | None = None
    stale_epochs: int = 0  # epochs since the monitored metric last improved
    first_loss: float | None = None  # the first step's loss, which the divergence guard compares with
    running: dict[str, Any] = dataclasses.field(default_factory=dict)  # this epoch's train sums
    last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # the last epoch's


def train(
    cfg: DictConfig,
    run_dir: str | Path,
    resumption: Resumption | None = None,
    choices: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train as ``cfg`` says, writing checkpoints, logs and metrics.json into ``run_dir``.

    Without a ``resumption``, a ``run_dir`` that already has checkpoints is refused rather than
    overwritten.

    Args:
        cfg: the run's config (for a resumed run, ``resume.resume_config``'s).
        run_dir: where the run's files go.
        resumption: the checkpoint to continue from (``resume.resume_config`` reads it).
        choices: the config groups' options (``model: mlp``), kept in the checkpoints so that a
            resume can tell naming the same option from switching it.

    Returns:
        The metrics.json content: status, the monitored metric's best value and the final metrics.

    Raises:
        DltoolError: bad config, missing data, bad checkpoint, a used run_dir, or a diverged loss.
        Interrupted: SIGINT/SIGTERM arrived; a checkpoint was saved first.
    """
    run_dir = Path(run_dir)
    if resumption is None:
        refuse_used_run_dir(run_dir)
    with run_logging(run_dir / "train.log"):
        try:
            return _Trainer(cfg, run_dir, resumption, dict(choices or {})).fit()
        except (Exception, KeyboardInterrupt) as ex:
            log.debug("run stopped", exc_info=True)
            record_failure(run_dir, ex)
            raise


class _Trainer:
    def __init__(
        self, cfg: DictConfig, run_dir: Path, resumption: Resumption | None, choices: dict[str, Any]
    ) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.options = o = TrainerOptions.from_config(cfg.trainer)
        _seed_everything(o.seed)
        self.data = build_data(cfg, o)
        fill_num_classes(cfg, self.data.classes)
        self._check_monitor()
        self.model = build_model(cfg, o.device)
        self.loss_fn = build("loss", cfg.loss)
        check_loss_fits(self.model, self.loss_fn, self.data, cfg.loss._target_, o.device)
        self.optimizer = build_optimizer(cfg, self.model)
        self.steps_per_epoch = o.num_batches("train", len(self.data.train_loader))
        self.epochs = 1 if o.fast_dev_run else o.epochs
        total = self.epochs * self.steps_per_epoch
        self.total_steps = min(total, o.max_steps) if o.max_steps else total
        self.scheduler, self.interval = build_scheduler(cfg, self.optimizer, self.total_steps)
        self.state = LoopState()
        self.running = RunningMetrics(self.data.task)
        self.writer = CheckpointWriter(run_dir / "checkpoints", o.checkpoint_every_n_epochs, o.keep_last_k)
        self.choices = choices
        if resumption is not None:
            self._restore(resumption)
        # the config is fixed from here on; every checkpoint stores these two trees
        self.config_tree = OmegaConf.to_container(cfg, resolve=False)
        self.resolved_config = OmegaConf.to_container(cfg, resolve=True)
        purge = self.state.step + 1 if resumption is not None else None
        self.loggers = [
            build(f"logger.{name}", node, run_dir=run_dir, purge_step=purge)
            for name, node in (cfg.get("logger") or {}).items()
        ]

    # ------------------------------------------------------------ setup

    def _check_monitor(self) -> None:
        o = self.options
        score = "acc" if self.data.task == "classification" else "mae"
        prefix, _, name = o.monitor.partition("/")
        if prefix not in ("train", "val") or name not in ("loss", score):
            raise ConfigError(
                f"trainer.monitor: {o.monitor!r} is not a metric of this {self.data.task} run "
                f"(choose from val/loss, val/{score}, train/loss, train/{score}; trainer.mode sets the direction)"
            )
        if prefix == "val" and self.data.val is None:
            raise ConfigError(
                f"trainer.monitor: {o.monitor!r} needs a validation split but trainer.val_split is 0"
            )

    def _restore(self, resumption: Resumption) -> None:
        path, checkpoint = resumption.path, resumption.checkpoint
        self.choices = checkpoint["meta"].get("choices") or {}
        load_model_state(self.model, checkpoint["model"], path)
        self.scheduler = restore_optimization(
            resumption,
            self.cfg,
            self.optimizer,
            self.scheduler,
            self.total_steps,
            lambda: build_scheduler(self.cfg, self.optimizer, self.total_steps)[0],
        )
        try:
            self.state = LoopState(**checkpoint["loop"])
            if self.state.running:
                self.running.load_state_dict(self.state.running)
            if checkpoint["loader"] is not None:
                self.data.train_loader.load_state_dict(checkpoint["loader"])
            restore_rng(checkpoint["rng"])
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as ex:
            raise CheckpointError(f"{path}: the loop's state does not fit this run: {ex}") from ex
        log.info(
            f"resumed from {path} at epoch {self.state.epoch + 1}, batch {self.state.batch}, "
            f"step {self.state.step}"
        )

    # ------------------------------------------------------------ loop

    def fit(self) -> dict[str, Any]:
        s = self.state
        log.info(
            f"run {self.run_dir}: {type(self.model).__name__} with {_count(self.model):,} parameters; "
            f"{self._samples('train', self.data.train_loader, self.data.train)} train, "
            f"{self._samples('val', self.data.val_loader, self.data.val)} val, "
            f"{self._samples('test', self.data.test_loader, self.data.test)} test samples"
        )
        try:
            with StopSignal() as stop:
                while s.epoch < self.epochs and not self._max_steps_reached():
                    if not self._train_epoch(stop):
                        break
                    if self._end_epoch() or stop.signum is not None:
                        break
                if s.batch > 0:  # stopped mid-epoch by max_steps (epoch ends save themselves)
                    self._save()
                if stop.signum is not None:
                    self._interrupt(stop.signum)
            return self._finish()
        finally:
            for logger in self.loggers:
                logger.close()

    def _samples(self, split: str, loader: Any, dataset: Any) -> str:
        """How many samples of ``split`` a pass uses, and of how many when a limit cuts it short."""
        if dataset is None:
            return "0"
        used = min(len(dataset), self.options.num_batches(split, len(loader)) * loader.batch_size)
        return f"{used:,}" if used == len(dataset) else f"{used:,} of {len(dataset):,}"

    def _max_steps_reached(self) -> bool:
        return self.options.max_steps is not None and self.state.step >= self.options.max_steps

    def _train_epoch(self, stop: StopSignal) -> bool:
        """Train until the epoch's batches run out (True) or max_steps is reached mid-epoch (False)."""
        s, o = self.state, self.options
        self.model.train()
        self.epoch_start = start = time.perf_counter()
        samples, self.train_speed = 0, 0.0
        with EpochProgress(f"epoch {s.epoch + 1}/{self.epochs}", self.steps_per_epoch) as progress:
            for x, y in self.data.train_loader:
                loss = self._step(x, y)
                s.batch, s.step, samples = s.batch + 1, s.step + 1, samples + len(y)
                if s.step % o.log_every_n_steps == 0:
                    self._log({"train/loss": loss, "lr": self._lr()})
                    log.debug(f"epoch {s.epoch + 1} step {s.step}: train/loss {loss:.4f}")
                self.train_speed = samples / max(time.perf_counter() - start, 1e-9)
                progress.update(s.batch, loss, self.train_speed)
                if stop.signum is not None:
                    self._interrupt(stop.signum)
                if s.batch >= self.steps_per_epoch:
                    break
                if self._max_steps_reached():
                    return False
        self.train_time = time.perf_counter() - start
        return True

    def _step(self, x: dl.Tensor, y: dl.Tensor) -> float:
        x, y = x.to(self.options.device), y.to(self.options.device)
        output = self.model(x)
        loss = self.loss_fn(output, y)
        value = loss.item()
        self._check_divergence(value)
        self.optimizer.zero_grad()
        loss.backward()
        if self.options.grad_clip is not None:
            dl.nn.utils.clip_grad_norm_(self.model.parameters(), self.options.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None and self.interval == "step":
            self.scheduler.step()
        self.running.update(value, output, y)
        return value

    def _check_divergence(self, value: float) -> None:
        """Stop on a NaN or infinite loss, or one ``divergence_factor`` times the first step's."""
        s, factor = self.state, self.options.divergence_factor
        if s.first_loss is None:
            s.first_loss = value
        exploded = factor is not None and s.first_loss > 0 and value > factor * s.first_loss
        if math.isfinite(value) and not exploded:
            return
        why = f"{value:.4g}, over {factor:g} times the first step's {s.first_loss:.4g}" if exploded else value
        raise TrainingDiverged(
            f"loss is {why} at epoch {s.epoch + 1}, step {s.step + 1}; stopped ({self._last_good()}). "
            "Try a lower optimizer.lr or trainer.grad_clip"
            + (" (trainer.divergence_factor sets this guard)" if exploded else "")
        )

    def _end_epoch(self) -> bool:
        """Validate, step the schedule, log, save; True when early stopping says stop."""
        s, o = self.state, self.options
        lr = self._lr()
        metrics = self.running.compute("train")
        validation = None
        if self.data.val_loader is not None:
            pictures = any(logger.images for logger in self.loggers)
            validation = self._evaluate(self.data.val_loader, "val", pictures=pictures)
            metrics.update(validation.metrics)
        epoch_time = time.perf_counter() - self.epoch_start
        metrics.update({"lr": lr, "time/epoch_s": epoch_time, "time/samples_per_s": self.train_speed})
        score = metrics[o.monitor]
        improved = o.better(score, s.best)
        s.epoch, s.batch, s.last_metrics = s.epoch + 1, 0, metrics
        s.best, s.best_epoch = (score, s.epoch) if improved else (s.best, s.best_epoch)
        s.stale_epochs = 0 if improved else s.stale_epochs + 1
        self.running = RunningMetrics(self.data.task)
        if self.scheduler is not None and self.interval == "epoch":
            plateau = isinstance(self.scheduler, dl.optim.lr_scheduler.ReduceLROnPlateau)
            self.scheduler.step(score) if plateau else self.scheduler.step()
        if validation is not None:
            self._log_pictures(validation)
        # NOTE: train/loss is the per-step tag; the epoch's mean goes to train/epoch_loss.
        self._log(
            {("train/epoch_loss" if k == "train/loss" else k): v for k, v in metrics.items() if k != "lr"},
            flush=True,
        )
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("train/", "val/")))
        log.info(
            f"epoch {s.epoch}/{self.epochs}  {shown}  lr {lr:.3g}  {epoch_time:.1f}s  "
            f"{self.train_speed:,.0f} samples/s" + ("  (best)" if improved else "")
        )
        self._save(improved=improved)
        if o.patience is not None and s.stale_epochs >= o.patience:
            log.info(f"early stopping: {o.monitor} has not improved for {o.patience} epochs")
            return True
        return False

    def _evaluate(self, loader: Any, split: str, pictures: bool = False) -> Evaluation:
        """One pass over ``split``; with ``pictures``, a classifier's confusion counts and mistakes too."""
        classes = len(self.data.classes) if pictures and self.data.task == "classification" else None
        return evaluate(
            self.model,
            loader,
            self.loss_fn,
            self.data.task,
            split,
            device=self.options.device,
            num_batches=self.options.num_batches(split, len(loader)),
            num_classes=classes or None,
            keep_misclassified=MISCLASSIFIED_SHOWN,
        )

    def _log_pictures(self, validation: Evaluation) -> None:
        """The validation's confusion matrix and mistakes, for TensorBoard's Images tab."""
        pictures = {}
        if validation.matrix is not None:
            pictures["val/confusion_matrix"] = confusion_matrix_image(validation.matrix, self.data.classes)
        if validation.misclassified is not None:
            pictures["val/misclassified"] = misclassified_image(*validation.misclassified, self.data.classes)
        if pictures:
            for logger in self.loggers:
                logger.log_images(pictures, self.state.step)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log(self, metrics: dict[str, float], flush: bool = False) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, self.state.step)
            if flush:
                logger.flush()

    # ------------------------------------------------------------ checkpoints and the end

    def _save(self, improved: bool = False) -> None:
        """Save last.ckpt (and best/epoch-N at an epoch end, where ``state.batch`` is 0)."""
        if self.options.fast_dev_run:
            return
        s = self.state
        epoch_end = s.batch == 0
        s.running = self.running.state_dict()
        checkpoint = new_checkpoint(
            config=self.config_tree,
            resolved_config=self.resolved_config,
            meta={
                "task": self.data.task,
                "classes": self.data.classes,
                "input_shape": list(self.cfg.dataset.input_shape),
                "choices": self.choices,
                "total_steps": self.total_steps,
            },
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            loop=dataclasses.asdict(s),
            loader=None if epoch_end else self.data.train_loader.state_dict(),
            rng=capture_rng(),
        )
        self.writer.save(checkpoint, epoch=s.epoch if epoch_end else None, improved=improved)

    def _last_good(self) -> str:
        if self.writer.last.exists():
            return f"the last good checkpoint is {self.writer.last}"
        return "no checkpoint was saved yet"

    def _interrupt(self, signum: int) -> None:
        if self.state.batch > 0:
            self._save()
        for logger in self.loggers:
            logger.flush()
        raise Interrupted(signum, None if self.options.fast_dev_run else self.writer.last)

    def _finish(self) -> dict[str, Any]:
        s, o = self.state, self.options
        final = dict(s.last_metrics)
        if s.best is None:  # no epoch ended (max_steps): report the monitored metric as it is now
            current = self.running.compute("train")
            if self.data.val_loader is not None:
                current.update(self._evaluate(self.data.val_loader, "val").metrics)
            final.update(current)
        tested = self.writer.best if self.writer.best.exists() else None
        # the weights in memory are best.ckpt's when the best epoch is the one that just ended
        if tested is not None and not (s.best_epoch == s.epoch and s.batch == 0):
            load_model_state(self.model, load_checkpoint(tested)["model"], tested)
        test = self._evaluate(self.data.test_loader, "test").metrics
        self._log(test, flush=True)
        best = s.best if s.best is not None else final[o.monitor]
        result = {
            "status": "completed",
            "monitor": o.monitor,
            "mode": o.mode,
            "best": best,
            "best_epoch": s.best_epoch,
            "epochs": s.epoch,
            "steps": s.step,
            "test_checkpoint": str(tested.relative_to(self.run_dir)) if tested else "last weights",
            "metrics": {**final, **test},
        }
        hparams = _hparams(self.resolved_config)
        for logger in self.loggers:
            logger.log_hparams(hparams, [o.monitor, *test])
        _write_json(self.run_dir / "metrics.json", result)
        log.info(
            "done: "
            + "  ".join(f"{k} {v:.4f}" for k, v in test.items())
            + f"  (best {o.monitor} {best:.4f}"
            + (f" at epoch {s.best_epoch})" if s.best_epoch else ")")
        )
        return result


def record_failure(run_dir: Path, ex: BaseException) -> None:
    """Note a failed or interrupted run in metrics.json, unless the run already finished before."""
    path = run_dir / "metrics.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("status") == "completed":
            return
    if isinstance(ex, KeyboardInterrupt):
        _write_json(path, {"status": "interrupted"})
    else:
        _write_json(
            path, {"status": "diverged" if isinstance(ex, TrainingDiverged) else "failed", "error": str(ex)}
        )


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _seed_everything(seed: int) -> None:
    dl.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _count(model: dl.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved config's scalars under dotted keys, for TensorBoard's HParams view."""
    flat: dict[str, Any] = {"dataset": config["dataset"].get("name", "")}
    for group in ("model", "optimizer", "scheduler", "loss", "trainer"):
        for key, value in (config.get(group) or {}).items():
            if key == "_target_":
                flat[group] = str(value).rsplit(".", 1)[-1]
            elif not key.startswith("_"):
                flat[f"{group}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat
