"""One member of a stacked group: the job's own request and what `fit` would keep for it alone
(its batches, its clock, its TrainState, its step count, how it ended), and the side effects
`fit` has for it: metrics rows appended to its history and its callbacks called."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from aecli.config import TrainerConfig
from aecli.summary import Status
from aecli.training.loop import Batches, Callback, Training, model_loss
from aecli.training.state import EpochRecord, FitResult, TrainState


@dataclass
class TrainRequest:
    """Exactly the arguments aecli.training.loop.fit takes, for one job of a group."""

    training: Training  # the plain model (built and seeded), optimizer, schedule, regularizers, data order, history
    train: torch.Tensor
    val: torch.Tensor
    cfg: Any  # the job's TrainerConfig (a DictConfig)
    callbacks: Sequence[Callback] = ()
    start: Optional[TrainState] = None  # None: a fresh run


@dataclass
class Member:
    """A request in the group, with the bookkeeping fit keeps for one job."""

    request: TrainRequest
    index: int  # its place in the requests fit_group was given
    batches: Batches
    val: torch.Tensor  # limited to limit_val_batches' worth, as fit limits it
    scored: torch.Tensor  # the training points epoch 0 is scored on
    started: float
    state: TrainState  # where this member's training stands (fit's `state`)
    steps: int = 0
    result: Optional[FitResult] = None

    @classmethod
    def of(cls, request: TrainRequest, index: int) -> Member:
        cfg: TrainerConfig = request.cfg
        batches = Batches.of(len(request.train), cfg)
        val = batches.evaluated(request.val, cfg.limit_val_batches)
        scored = batches.evaluated(request.train, cfg.limit_val_batches)
        history = request.training.history
        started = time.perf_counter() - (history[-1].seconds if history else 0.0)
        state = TrainState.capture(0, 0, 0, batches.per_epoch, request.training.data_order.get_state())
        return cls(request, index, batches, val, scored, started, state)

    @property
    def training(self) -> Training:
        return self.request.training

    def lr(self) -> float:
        return float(self.training.optimizer.param_groups[0]["lr"])

    def record(self, epoch: int, train_terms: dict[str, float], val_terms: dict[str, float], lr: float) -> None:
        """EpochLog.record for this member: one metrics row in its history, then its callbacks."""
        regularizers = self.training.regularizers
        terms = {f"train_{k}": v for k, v in train_terms.items()} | {f"val_{k}": v for k, v in val_terms.items()}
        train_loss, val_loss = model_loss(train_terms, regularizers), model_loss(val_terms, regularizers)
        seconds = time.perf_counter() - self.started
        self.training.history.append(EpochRecord(epoch, train_loss, val_loss, lr, seconds, terms))
        for callback in self.request.callbacks:
            callback.on_epoch_end(self.training.history[-1], self.state)

    def finish(self, status: Status, clean: bool, diverged_at_step: Optional[int] = None) -> None:
        """How this member's fit ended: its FitResult, and its callbacks' on_fit_end."""
        seconds = time.perf_counter() - self.started
        self.result = FitResult(self.training.history, self.steps, seconds, status, self.state, clean, diverged_at_step)
        for callback in self.request.callbacks:
            callback.on_fit_end(self.result)
