"""The per-epoch work of a run, as callbacks chosen by the `callbacks` config group.

conf/callbacks/default.yaml lists them, in the order they run after each epoch:

  metrics_file  one metrics.csv row per epoch
  trackers      the same row to every experiment tracker (logger=...)
  best_model    the lowest-validation-loss epoch's weights, kept in memory for best.pt
  checkpoints   checkpoints/last.pt (and best.pt) every trainer.checkpoint_every epochs and
                where training ends, with everything resume needs
  step_losses   steps.csv, every optimizer step's loss, with trainer.log_steps=true
  progress      a progress bar on a terminal (trainer.progress)
  log_lines     about ten log lines per run where there is no progress bar

Drop one with `~callbacks.progress`. metrics.csv and the checkpoints are what `resume=`, the
sweep report and aecli.load_run read: a run without them cannot be continued or compared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from aecli.reporting.trackers import Trackers
from aecli.run_files import RunFiles
from aecli.training.loop import Callback, Training
from aecli.training.state import EpochRecord, FitResult, TrainState

log = logging.getLogger("aecli")


@dataclass
class RunHandles:
    """What a run's callbacks act on: its files, trackers, the training, the trainer settings, and
    the best epoch so far (set by BestModel, saved by Checkpoints)."""

    files: RunFiles
    trackers: Trackers
    training: Training
    trainer: DictConfig
    title: str
    best: Optional[dict[str, Any]] = None


class RunCallback(Callback):
    """A callback built from config (no settings needed) and then given the run's handles."""

    run: RunHandles

    def setup(self, run: RunHandles) -> None:
        self.run = run


class MetricsFile(RunCallback):
    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        self.run.files.append_metrics(record)


class TrackerUpdates(RunCallback):
    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        self.run.trackers.log_epoch(record)


class BestModel(RunCallback):
    """Keeps a copy of the weights of the epoch with the lowest validation loss (saved with last.pt,
    so a kill between the two checkpoint writes loses nothing)."""

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        best = self.run.best
        if best is None or record.val_loss < best["val_loss"]:
            model = self.run.training.model
            weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.run.best = {"epoch": record.epoch, "val_loss": record.val_loss, "model": weights}


class Checkpoints(RunCallback):
    """last.pt every `every` epochs, and where training ended or was stopped (even mid-epoch): never
    weights from inside a step, never non-finite ones."""

    def __init__(self, every: int = 10) -> None:
        self.every = every

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        if self.needs_optimizer_state(record.epoch):
            self.save(state)

    def needs_optimizer_state(self, epoch: int) -> bool:
        return epoch % self.every == 0 and epoch < self.run.trainer.epochs  # the last: at fit's end

    def on_fit_end(self, result: FitResult) -> None:
        if result.weights_match_state:
            self.save(result.state)

    def save(self, state: TrainState) -> None:
        t = self.run.training
        self.run.files.save_checkpoint(t.model, t.optimizer, t.scheduler, t.history, state, self.run.best)


class StepLosses(RunCallback):
    def on_step_losses(self, epoch: int, losses: torch.Tensor) -> None:
        if self.run.trainer.log_steps:
            self.run.files.append_step_losses(epoch, losses)


class ProgressBar(RunCallback):
    """tqdm on a terminal, silent in logs and CI (trainer.progress=false: never)."""

    def setup(self, run: RunHandles) -> None:
        super().setup(run)
        history = run.training.history
        self.bar = tqdm(
            total=run.trainer.epochs,
            initial=history[-1].epoch if history else 0,
            desc=run.title,
            unit="epoch",
            disable=(not run.trainer.progress) or None,
            leave=False,
        )

    @property
    def shown(self) -> bool:
        return not self.bar.disable

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        if record.epoch > 0:
            self.bar.update(1)
            self.bar.set_postfix(train=f"{record.train_loss:.4g}", val=f"{record.val_loss:.4g}", refresh=False)

    def on_fit_end(self, result: FitResult) -> None:
        self.bar.close()


class LogLines(RunCallback):
    """About ten log lines per run, whatever its length, where no progress bar is shown."""

    def setup(self, run: RunHandles) -> None:
        super().setup(run)
        self.every = max(1, run.trainer.epochs // 10)
        self.quiet = bool(run.trainer.progress) and _terminal()

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        if not self.quiet and record.epoch % self.every == 0:
            t = self.run.trainer
            log.info("epoch %d/%d  train %.5g  val %.5g", record.epoch, t.epochs, record.train_loss, record.val_loss)


def _terminal() -> bool:
    """Whether tqdm draws a bar here (stderr is a terminal), as ProgressBar's disable=None decides."""
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())
