"""The training loop: ``train(cfg, run_dir) -> metrics``.

The loop is the same for every task (``dltool.training.tasks``): one epoch is the task's train
steps (its losses, averaged since the last log, as ``train/<loss>_step`` and ``lr`` at step 0 and
every N steps), then its validation pass, the LR schedules, the epoch's metrics and pictures to
every logger, one summary line, and the checkpoints. Loggers see steps as optimizer-step indices
from 0: an epoch's metrics go at its last step's index.
Everything a continuation needs goes into the checkpoint, so a resumed run reproduces an
uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

import dltool.engine as dl
from dltool.training.builders import (
    build,
    build_data,
    build_optimization,
    build_scheduler,
    build_task,
    building,
    check_task_fits,
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
from dltool.training.compiled import check_compilable, compiled_evaluation, compiled_step
from dltool.training.console import EpochProgress, run_logging
from dltool.training.distributed import Ranks, is_main_process
from dltool.training.errors import CheckpointError, ConfigError, Interrupted, TrainingDiverged
from dltool.training.files import write_text_atomically
from dltool.training.hparams import compared_metrics, run_hparams
from dltool.training.options import TrainerOptions
from dltool.training.optuna_trial import current_trial
from dltool.training.resume import Resumption, restore_optimization
from dltool.training.signals import StopSignal
from dltool.training.tasks import (
    MeanMetrics,
    Optimization,
    Task,
    batch_size,
    optimizations,
    scalar,
    tagged,
    task_name,
    to_device,
)

log = logging.getLogger("dltool")


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
    window: dict[str, Any] = dataclasses.field(default_factory=dict)  # the loss sums since the last log
    last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # the last epoch's


def train(
    cfg: DictConfig,
    run_dir: str | Path,
    resumption: Resumption | None = None,
    choices: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
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
        overrides: the command's overrides (``optimizer.lr=0.01``): the hyperparameters the run
            declares to TensorBoard (a resumed run keeps its first command's).

    Returns:
        The metrics.json content: status, the monitored metric's best value and the final metrics.

    Raises:
        DltoolError: bad config, missing data, bad checkpoint, a used run_dir, or a diverged loss.
        Interrupted: SIGINT/SIGTERM arrived; a checkpoint was saved first.
    """
    run_dir = Path(run_dir)
    if resumption is None:
        refuse_used_run_dir(run_dir)
    main = is_main_process()  # the other ranks of a data-parallel run write and print nothing
    with run_logging(run_dir / "train.log") if main else contextlib.nullcontext():
        try:
            return _Trainer(cfg, run_dir, resumption, dict(choices or {}), list(overrides)).fit()
        except (Exception, KeyboardInterrupt) as ex:
            log.debug("run stopped", exc_info=True)
            if main:
                record_failure(run_dir, ex)
            raise


class _Trainer:
    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        resumption: Resumption | None,
        choices: dict[str, Any],
        overrides: list[str],
    ) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.options = o = TrainerOptions.from_config(cfg.trainer)
        self.ranks = Ranks.join(o.num_processes, o.device)
        _seed_everything(o.seed)
        self.data = build_data(cfg, o)
        self.data.train_loader = self.ranks.train_loader(self.data.train_loader, o.seed)
        fill_num_classes(cfg, self.data.classes)
        self.task = build_task(cfg, self.data.classes, o.device)
        self.task.grad_clip = o.grad_clip
        self.name = task_name(self.task)
        self.validates = self.task.has_validation and self.data.val_loader is not None
        self._check_dataset_kind()
        self._check_monitor()
        check_task_fits(self.task, self.data, o.device)
        self.steps_per_epoch = o.num_batches("train", len(self.data.train_loader))
        self.epochs = 1 if o.fast_dev_run else o.epochs
        total = self.epochs * self.steps_per_epoch
        self.total_steps = min(total, o.max_steps) if o.max_steps else total
        with building(f"task ({cfg.task._target_}).configure_optimizers"):
            requested = self.task.configure_optimizers()
            self.optimizations = optimizations(
                requested, lambda request: build_optimization(cfg, request, self.total_steps)
            )
        self.task.attach_optimizations(self.optimizations)
        if o.compile:
            check_compilable(self.task, o.num_processes)
        self.compiled_step = compiled_step(self.task) if o.compile else None
        self.compiled_evaluation = compiled_evaluation(self.task) if o.compile else None
        self.state = LoopState()
        self.running = MeanMetrics()
        self.window = MeanMetrics()  # the losses since the last per-step log
        self.writer = CheckpointWriter(run_dir / "checkpoints", o.checkpoint_every_n_epochs, o.keep_last_k)
        self.choices, self.overrides = choices, overrides
        # an Optuna sweep's trial, which its pruner may stop; rank 0 reports, every rank follows
        self.trial, self.pruned = current_trial() if self.ranks.is_main else None, False
        self.ranks.wrap(self.task)
        if self.ranks.size > 1:  # each rank its own dropout masks (the weights came from rank 0)
            _seed_everything(o.seed + self.ranks.rank)
        if resumption is not None:
            self._restore(resumption)
        # the config is fixed from here on; every checkpoint stores these two trees
        self.config_tree = OmegaConf.to_container(cfg, resolve=False)
        self.resolved_config = OmegaConf.to_container(cfg, resolve=True)
        purge = self.state.step if resumption is not None else None  # the next step's index
        self.loggers = [
            build(f"logger.{name}", node, run_dir=run_dir, purge_step=purge)
            for name, node in (cfg.get("logger") or {}).items()
            if self.ranks.is_main
        ]
        if resumption is None:
            config = OmegaConf.to_yaml(cfg, resolve=True)
            for logger in self.loggers:
                logger.log_text("config", f"```yaml\n{config}```", 0)

    # ------------------------------------------------------------ setup

    def _check_dataset_kind(self) -> None:
        """Refuse a task on a dataset made for another (a classifier on regression data)."""
        kind, kinds = self.cfg.dataset.get("task"), self.task.dataset_kinds
        if kind and kinds is not None and kind not in kinds:
            raise ConfigError(
                f"dataset {self.cfg.dataset.get('name', '')}: it is a {kind} dataset, and the {self.name} "
                f"task trains on {' or '.join(kinds)} data; add task={kind} or choose another dataset"
            )

    def _check_monitor(self) -> None:
        o, names = self.options, self.task.metric_names
        if o.monitor is None:
            return
        prefix, _, name = o.monitor.partition("/")
        if prefix == "val" and not self.validates:
            why = (
                "trainer.val_split is 0"
                if self.task.has_validation
                else f"the {self.name} task has no validation_step"
            )
            raise ConfigError(f"trainer.monitor: {o.monitor!r} needs a validation split but {why}")
        if prefix not in ("train", "val") or (names is not None and name not in names):
            splits = ("val", "train") if self.validates else ("train",)
            known = ", ".join(f"{split}/{metric}" for split in splits for metric in names or ("loss",))
            raise ConfigError(
                f"trainer.monitor: {o.monitor!r} is not a metric of this {self.name} run "
                f"(choose from {known}; trainer.mode sets the direction)"
            )

    def _restore(self, resumption: Resumption) -> None:
        path, checkpoint = resumption.path, resumption.checkpoint
        self.choices = checkpoint["meta"].get("choices") or {}
        self.overrides = list(checkpoint["meta"].get("overrides") or [])
        load_model_state(self.task, checkpoint["model"], path)
        saved = len(checkpoint.get("optimizers") or [])
        if saved != len(self.optimizations):
            raise CheckpointError(
                f"{path}: it holds {saved} optimizers' state and this run's task has {len(self.optimizations)}"
            )
        for index, optimization in enumerate(self.optimizations):
            optimization.scheduler = restore_optimization(
                resumption,
                self.cfg,
                optimization,
                index,
                self.total_steps,
                functools.partial(self._rebuild_scheduler, optimization),
            )
        try:
            self.state = LoopState(**checkpoint["loop"])
            if not self.ranks.layout_matches(checkpoint):
                self.state.batch, self.state.running, self.state.window = 0, {}, {}
            own = self.ranks.own_state(checkpoint) or dataclasses.asdict(self.state) | checkpoint
            if self.state.running:
                self.running.load_state_dict(own["running"])
            if self.state.window:
                self.window.load_state_dict(own["window"])
            if own["loader"] is not None and self.state.batch:
                self.data.train_loader.load_state_dict(own["loader"])
            restore_rng(own["rng"])
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as ex:
            raise CheckpointError(f"{path}: the loop's state does not fit this run: {ex}") from ex
        log.info(
            f"resumed from {path} at epoch {self.state.epoch + 1}, batch {self.state.batch}, "
            f"step {self.state.step}"
        )

    def _rebuild_scheduler(self, optimization: Optimization) -> Any:
        return build_scheduler(self.cfg, optimization.scheduler_key, optimization.optimizer, self.total_steps)[0]

    # ------------------------------------------------------------ loop

    def fit(self) -> dict[str, Any]:
        s = self.state
        log.info(
            f"run {self.run_dir}: {_describe(self.task)}; "
            f"{self._samples('train', self.data.train_loader, self.data.train)} train, "
            f"{self._samples('val', self.data.val_loader, self.data.val if self.validates else None)} val, "
            f"{self._samples('test', self.data.test_loader, self.data.test if self.validates else None)} test samples"
            f"{self.ranks.describe_batch(self.options.batch_size)}"
        )
        try:
            with StopSignal() as stop:
                while s.epoch < self.epochs and not self._max_steps_reached():
                    if not self._train_epoch(stop):
                        break
                    if self._end_epoch() or self._stopped(stop) is not None:
                        break
                if s.batch > 0:  # stopped mid-epoch by max_steps (epoch ends save themselves)
                    self._save()
                if (signum := self._stopped(stop)) is not None:
                    self._interrupt(signum)
            return self._finish()
        finally:
            for logger in self.loggers:
                logger.close()
            self.ranks.close()

    def _samples(self, split: str, loader: Any, dataset: Any) -> str:
        """How many samples of ``split`` a pass uses, and of how many when a limit cuts it short."""
        if dataset is None:
            return "0"
        ranks = self.ranks.size if split == "train" else 1  # each rank trains on its own batches
        used = min(len(dataset), self.options.num_batches(split, len(loader)) * loader.batch_size * ranks)
        return f"{used:,}" if used == len(dataset) else f"{used:,} of {len(dataset):,}"

    def _stopped(self, stop: StopSignal) -> int | None:
        """The signal that stops the run, agreed by all ranks (one may catch it a step earlier)."""
        return self.ranks.agreed_signal(stop.signum)

    def _max_steps_reached(self) -> bool:
        return self.options.max_steps is not None and self.state.step >= self.options.max_steps

    def _train_epoch(self, stop: StopSignal) -> bool:
        """Train until the epoch's batches run out (True) or max_steps is reached mid-epoch (False)."""
        s, o = self.state, self.options
        self.task.train()
        self.epoch_start = start = time.perf_counter()
        samples, self.train_speed = 0, 0.0
        self.ranks.set_epoch(self.data.train_loader, s.epoch)
        with EpochProgress(f"epoch {s.epoch + 1}/{self.epochs}", self.steps_per_epoch) as progress:
            for batch in self.data.train_loader:
                lr = self._lr()  # the rate this step uses
                values = self._step(batch)
                losses = _losses(values)
                self.window.update(losses, 1)
                if s.step % o.log_every_n_steps == 0:
                    smoothed = {f"train/{key}_step": value for key, value in self.window.compute().items()}
                    self._log({**smoothed, "lr": lr}, step=s.step)
                    self.window = MeanMetrics()
                    log.debug(f"epoch {s.epoch + 1} step {s.step}: " + _shown(smoothed))
                self._log_histograms()
                s.batch, s.step, samples = s.batch + 1, s.step + 1, samples + batch_size(batch)
                self.train_speed = samples * self.ranks.size / max(time.perf_counter() - start, 1e-9)
                progress.update(s.batch, losses, self.train_speed)
                if (signum := self._stopped(stop)) is not None:
                    self._interrupt(signum)
                if s.batch >= self.steps_per_epoch:
                    break
                if self._max_steps_reached():
                    return False
        self.train_time = time.perf_counter() - start
        return True

    def _step(self, batch: Any) -> dict[str, float]:
        """One ``training_step``; with automatic optimization, its ``loss`` minimized one step."""
        batch = to_device(batch, self.options.device)
        self.ranks.before_step()
        if self.compiled_step is not None:  # trainer.compile: forward, backward and update replayed
            values = self.compiled_step(batch, self.state.batch)
            self._check_divergence(values)  # NOTE: after the update, which eager mode skips on divergence
        else:
            values = self._eager_step(batch)
        for optimization in self.optimizations:
            if optimization.scheduler is not None and optimization.interval == "step":
                optimization.scheduler.step()
        self.running.update(values, batch_size(batch))
        return values

    def _eager_step(self, batch: Any) -> dict[str, float]:
        """``training_step``, then (with automatic optimization) ``optimizer_step`` on its loss."""
        output = self.task.training_step(batch, self.state.batch)
        loss = output.get("loss") if isinstance(output, Mapping) else None
        if self.task.automatic_optimization and not (isinstance(loss, dl.Tensor) and loss.requires_grad):
            raise ConfigError(
                f"task ({self.cfg.task._target_}): training_step must return a dict with the 'loss' to "
                f"minimize, a tensor that requires grad (got {type(output).__name__})"
            )
        values = {str(key): scalar(value) for key, value in output.items()}
        self._check_divergence(values)
        if self.task.automatic_optimization:
            self.task.optimizer_step(loss, *self.task.optimizers())
        return values

    def _check_divergence(self, values: dict[str, float]) -> None:
        """Stop on a NaN or infinite value, or a loss ``divergence_factor`` times the first step's."""
        s, factor = self.state, self.options.divergence_factor
        value = values.get("loss")
        if s.first_loss is None and value is not None:
            s.first_loss = value
        exploded = factor is not None and value is not None and s.first_loss > 0 and value > factor * s.first_loss
        bad = next((key for key, v in values.items() if not math.isfinite(v)), None)
        if bad is None and not exploded:
            return
        why = f"loss is {value:.4g}, over {factor:g} times the first step's {s.first_loss:.4g}" if exploded else f"{bad} is {values[bad]}"
        raise TrainingDiverged(
            f"{why} at epoch {s.epoch + 1}, step {s.step + 1}; stopped ({self._last_good()}). "
            "Try a lower optimizer.lr or trainer.grad_clip"
            + (" (trainer.divergence_factor sets this guard)" if exploded else "")
        )

    def _end_epoch(self) -> bool:
        """Validate, step the schedules, log, save; True when early stopping says stop."""
        s, o = self.state, self.options
        lr = self._lr()
        train = self.task.epoch_metrics(self.ranks.reduce_means(self.running).compute())
        metrics = tagged(train, "train")
        if self.validates:
            metrics.update(self._evaluate(self.data.val_loader, "val"))
        epoch_time = time.perf_counter() - self.epoch_start
        metrics.update({"lr": lr, "time/epoch_s": epoch_time, "time/samples_per_s": self.train_speed})
        score = self._monitored(metrics)
        improved = score is not None and o.better(score, s.best)
        s.epoch, s.batch, s.last_metrics = s.epoch + 1, 0, metrics
        s.best, s.best_epoch = (score, s.epoch) if improved else (s.best, s.best_epoch)
        s.stale_epochs = 0 if improved else s.stale_epochs + 1
        self.running = MeanMetrics()
        for optimization in self.optimizations:
            scheduler = optimization.scheduler
            if scheduler is not None and optimization.interval == "epoch":
                plateau = isinstance(scheduler, dl.optim.lr_scheduler.ReduceLROnPlateau)
                scheduler.step(score) if plateau else scheduler.step()
        self._log_pictures()
        self._log({k: v for k, v in metrics.items() if k != "lr"}, flush=True)
        log.info(
            f"epoch {s.epoch}/{self.epochs}  {_shown(metrics, ('train/', 'val/'))}  lr {lr:.3g}  "
            f"{epoch_time:.1f}s  {self.train_speed:,.0f} samples/s" + ("  (best)" if improved else "")
        )
        self._save(improved=improved)
        if self._pruned(score):
            return True
        if o.patience is not None and s.stale_epochs >= o.patience:
            log.info(f"early stopping: {o.monitor} has not improved for {o.patience} epochs")
            return True
        return False

    def _pruned(self, score: float | None) -> bool:
        """Report the epoch's monitored value to the sweep's trial; True when its pruner stops the run."""
        prune = self.trial is not None and score is not None and self.trial.should_prune(score, self.state.epoch)
        if not self.ranks.decided_by_main(prune):
            return False
        if self.trial is not None:
            log.info(f"pruned: trial {self.trial.number}'s {self.options.monitor} lags the other trials'")
        self.pruned = True
        return True

    def _monitored(self, metrics: dict[str, float]) -> float | None:
        monitor = self.options.monitor
        if monitor is None:
            return None
        if monitor not in metrics:
            known = ", ".join(k for k in metrics if k.startswith(("train/", "val/")))
            raise ConfigError(f"trainer.monitor: {monitor!r} is not a metric of this {self.name} run ({known})")
        return metrics[monitor]

    def _evaluate(self, loader: Any, split: str) -> dict[str, float]:
        """The task's validation pass over ``split`` (the batches its limit allows)."""
        if self.ranks.size > 1:
            return self.ranks.evaluate(self.task, loader, split, self.options)
        batches = itertools.islice(loader, self.options.num_batches(split, len(loader)))
        return self.task.evaluate(batches, split, device=self.options.device, step=self.compiled_evaluation)

    def _log_pictures(self) -> None:
        """The task's pictures to the loggers that show them, and those it saves to files."""
        showing = [logger for logger in self.loggers if logger.images]
        saved = self.task.saved_pictures if self.ranks.is_main else ()  # rank 0 alone writes files
        if not showing and not saved:
            return
        pictures = self.task.pictures()
        for logger in showing:
            logger.log_images(pictures, self._last_step())
        for tag in saved:
            if tag in pictures:
                path = self.run_dir / tag / f"epoch-{self.state.epoch}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pictures[tag].save(path)

    def _log_histograms(self) -> None:
        """Each parameter's weights and gradients after this step, for the loggers due to get them."""
        due = [g for g in self.loggers if g.histograms and self.state.step % g.histograms == 0]
        if not due:
            return
        arrays = {}
        for name, parameter in self.task.named_parameters():
            arrays[f"weights/{name}"] = parameter.detach().numpy(force=True)
            if parameter.grad is not None:
                arrays[f"grads/{name}"] = parameter.grad.numpy(force=True)
        for logger in due:
            logger.log_histograms(arrays, self.state.step)

    def _last_step(self) -> int:
        """The index of the last step done: where an epoch's (or the run's) results are logged."""
        return max(self.state.step - 1, 0)

    def _lr(self) -> float:
        return float(self.optimizations[0].optimizer.param_groups[0]["lr"])

    def _log(self, metrics: dict[str, float], flush: bool = False, step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, self._last_step() if step is None else step)
            if flush:
                logger.flush()

    # ------------------------------------------------------------ checkpoints and the end

    def _save(self, improved: bool = False) -> None:
        """Save last.ckpt (and best/epoch-N at an epoch end, where ``state.batch`` is 0)."""
        if self.options.fast_dev_run:
            return
        s = self.state
        epoch_end = s.batch == 0
        s.running, s.window = self.running.state_dict(), self.window.state_dict()
        checkpoint = new_checkpoint(
            config=self.config_tree,
            resolved_config=self.resolved_config,
            meta={
                "task": self.name,
                "classes": self.data.classes,
                "input_shape": list(self.cfg.dataset.get("input_shape") or []),
                "choices": self.choices,
                "overrides": self.overrides,
                "total_steps": self.total_steps,
            },
            model=self.task.state_dict(),
            optimizers=[o.optimizer.state_dict() for o in self.optimizations],
            schedulers=[o.scheduler.state_dict() if o.scheduler is not None else None for o in self.optimizations],
            loop=dataclasses.asdict(s),
            loader=None if epoch_end else self.data.train_loader.state_dict(),
            rng=capture_rng(),
        )
        every_rank = self.ranks.gather(
            {"rng": checkpoint["rng"], "loader": checkpoint["loader"], "running": s.running, "window": s.window}
        )
        if self.ranks.is_main:
            if self.ranks.size > 1:
                checkpoint["distributed"] = {"world_size": self.ranks.size, "ranks": every_rank}
            self.writer.save(checkpoint, epoch=s.epoch if epoch_end else None, improved=improved)
        self.ranks.barrier()  # the other ranks may read best.ckpt next

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
        if not final:  # no epoch ended (max_steps): report the metrics as they are now
            final.update(tagged(self.task.epoch_metrics(self.running.compute()), "train"))
            if self.validates:
                final.update(self._evaluate(self.data.val_loader, "val"))
        tested = self.writer.best if self.writer.best.exists() else None
        # the weights in memory are best.ckpt's when the best epoch is the one that just ended
        if tested is not None and not (s.best_epoch == s.epoch and s.batch == 0):
            load_model_state(self.task, load_checkpoint(tested)["model"], tested)
        test = self._evaluate(self.data.test_loader, "test") if self.validates else {}
        best = s.best if s.best is not None else final.get(o.monitor) if o.monitor else None
        self._log({**test, **({f"best/{o.monitor}": best} if best is not None else {})}, flush=True)
        result = {
            "status": "pruned" if self.pruned else "completed",
            "monitor": o.monitor,
            "mode": o.mode,
            "best": best,
            "best_epoch": s.best_epoch,
            "epochs": s.epoch,
            "steps": s.step,
            "test_checkpoint": str(tested.relative_to(self.run_dir)) if tested else "last weights",
            "metrics": {**final, **test},
        }
        hparams = run_hparams(self.overrides, self.choices)
        for logger in self.loggers:
            logger.log_hparams(hparams, compared_metrics(o.monitor, list(test)))
        if self.ranks.is_main:
            _write_json(self.run_dir / "metrics.json", result)
        log.info(
            "done: "
            + (_shown(test) if test else _shown(final, ("train/", "val/")))
            + (f"  (best {o.monitor} {best:.4f}" if best is not None else "")
            + ((f" at epoch {s.best_epoch})" if s.best_epoch else ")") if best is not None else "")
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
    write_text_atomically(path, json.dumps(obj, indent=2) + "\n")


def _seed_everything(seed: int) -> None:
    dl.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _describe(task: Task) -> str:
    """The task's models and their size: ``MLP with 235,146 parameters``."""
    return f"{task.describe()} with {sum(p.numel() for p in task.parameters()):,} parameters"


def _losses(values: dict[str, float]) -> dict[str, float]:
    """The losses among a step's values (what the progress bar and the per-step curves show)."""
    return {key: value for key, value in values.items() if "loss" in key} or values


def _shown(metrics: Mapping[str, float], prefixes: tuple[str, ...] = ("",)) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(prefixes))
