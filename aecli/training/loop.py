"""The training loop: one readable function, tensors on the device, one host sync per epoch.

Data lives in memory as device tensors; each epoch draws a permutation from a seeded
generator and slices batches from it. A step asks the model for its loss terms, adds the
regularizers' penalties, and steps the optimizer: the loop never names a model type or a
term. The running per-term sums stay on the device and are read once per epoch, so the steps
themselves never wait for the host. Everything else that happens per epoch (metrics rows,
checkpoints, the best model, trackers, progress, log lines) is a callback
(aecli/training/callbacks.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Optional, cast

import torch
from torch import nn

from aecli.config import TrainerConfig
from aecli.errors import ConfigError
from aecli.models.base import Autoencoder
from aecli.summary import Status
from aecli.training.regularizers import Regularizer
from aecli.training.state import EpochRecord, FitResult, TrainState


@dataclass
class Training:
    """What `fit` trains and with what: the model, its optimizer and schedule, the regularizer terms,
    the data-order generator, and the metrics rows so far (a resumed run's included)."""

    model: Autoencoder
    optimizer: torch.optim.Optimizer
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler]
    regularizers: Sequence[Regularizer]
    data_order: torch.Generator
    history: list[EpochRecord]


class Callback:
    """Per-epoch work around `fit`; every hook does nothing unless overridden."""

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        """After each epoch (and once for the untrained model, epoch 0): its metrics row, already
        appended to the history, and the state a checkpoint needs."""

    def on_step_losses(self, epoch: int, losses: torch.Tensor) -> None:
        """Once per epoch, before on_epoch_end: every step's per-sample loss (the model's), on the device."""

    def on_fit_end(self, result: FitResult) -> None:
        """Once, however training ended."""

    def needs_optimizer_state(self, epoch: int) -> bool:
        """Whether on_epoch_end of `epoch` reads the optimizer's state (a checkpoint does). A stacked
        group (aecli.vectorized) hands each member its weights after every epoch, its optimizer
        state only after such epochs and the last: copying it costs a tenth of a small net's epoch."""
        return False


def resolve_device(name: str) -> torch.device:
    """auto picks cuda, then mps, then cpu; asking for a missing accelerator is a config error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ConfigError(
            "trainer.device=cuda was asked for but this torch build sees no CUDA GPU; use trainer.device=cpu or auto"
        )
    if name == "mps" and not mps:
        raise ConfigError(
            "trainer.device=mps was asked for but Apple's MPS backend is not available; use trainer.device=cpu or auto"
        )
    return torch.device(name)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (no dropout, BatchNorm running statistics) and no autograd inside the block;
    the model's own mode is restored after, so evaluating never changes the model."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def per_sample(loss: torch.Tensor, batch_size: int, kind: str) -> torch.Tensor:
    """A batch's loss term -> its contribution to a per-sample average (so mse and sse epochs compare)."""
    return loss * batch_size if kind == "mse" else loss


def step_terms(
    model: Autoencoder, x: torch.Tensor, regularizers: Sequence[Regularizer], corrupt: bool = True
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass: the objective to minimise, the model's loss, and every term (the model's
    own, then each regularizer's penalty). The model's loss is the sum of its own terms (a VAE:
    reconstruction + kl); the objective adds the penalties to it, as one sum."""
    x_in = x
    for regularizer in regularizers if corrupt else ():
        x_in = regularizer.corrupt(x_in)
    terms = model(x_in, x).terms
    loss = functools.reduce(operator.add, terms.values())  # one term: itself, no addition
    if not regularizers:  # the common case, kept short: it runs every step
        return loss, loss, terms
    penalties = {r.key: p for r in regularizers if (p := r.penalty(model)) is not None}
    objective = loss + sum(penalties.values()) if penalties else loss
    return objective, loss, {**terms, **penalties}


def model_loss(terms: dict[str, float], regularizers: Sequence[Regularizer]) -> float:
    """The model's loss from a dict of every term: the sum of all but the regularizers' penalties."""
    penalties = {r.key for r in regularizers}
    return sum(v for k, v in terms.items() if k not in penalties)


def evaluate(
    model: Autoencoder, x: torch.Tensor, regularizers: Sequence[Regularizer] = (), chunk: int = 16384
) -> dict[str, float]:
    """Every loss term as a per-sample average over all of `x`, in eval mode (dropout off, no corruption)."""
    kind = model.loss_kind
    sums: dict[str, torch.Tensor] = {}
    with evaluating(model):
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk]
            for name, value in step_terms(model, xb, regularizers, corrupt=False)[2].items():
                sums[name] = sums.get(name, 0) + per_sample(value, len(xb), kind).double()
    return {name: float(total) / max(len(x), 1) for name, total in sums.items()}


@dataclass
class Batches:
    """How an epoch slices the training data: the batch size, the steps per epoch and the points they see."""

    size: int
    per_epoch: int
    seen: int  # points per epoch: what the epoch's per-sample averages divide by

    @classmethod
    def of(cls, n: int, cfg: TrainerConfig) -> Batches:
        size = min(cfg.batch_size, n)
        per_epoch = n // size if cfg.drop_last else math.ceil(n / size)
        if cfg.limit_train_batches is not None:
            per_epoch = min(per_epoch, cfg.limit_train_batches)
        return cls(size, per_epoch, per_epoch * size if cfg.drop_last else min(n, per_epoch * size))

    def evaluated(self, x: torch.Tensor, limit: Optional[int]) -> torch.Tensor:
        """What an evaluation scores of `x`: its first `limit` batches' worth of points
        (trainer.limit_val_batches), or all of it without a limit."""
        return x if limit is None else x[: limit * self.size]


@dataclass
class EpochSteps:
    """What one epoch's optimizer steps leave: the per-term per-sample sums (on the device), each step's
    total loss, the optimizer steps taken in all, and, when a stop request ended the epoch early, the
    state to resume from."""

    names: list[str]
    sums: Optional[torch.Tensor]
    step_losses: torch.Tensor
    steps: int
    stopped: Optional[TrainState] = None


class EpochLog:
    """Appends one metrics row per epoch to the history, the validation terms evaluated then, and
    tells the callbacks; its clock goes on from a resumed history's."""

    def __init__(self, training: Training, val: torch.Tensor, callbacks: Sequence[Callback]) -> None:
        self.training, self.val, self.callbacks = training, val, callbacks
        history = training.history
        self.started = time.perf_counter() - (history[-1].seconds if history else 0.0)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def record(self, epoch: int, train_terms: dict[str, float], lr: float, state: TrainState) -> None:
        regularizers = self.training.regularizers
        val_terms = evaluate(self.training.model, self.val, regularizers)
        terms = {f"train_{k}": v for k, v in train_terms.items()} | {f"val_{k}": v for k, v in val_terms.items()}
        train_loss, val_loss = model_loss(train_terms, regularizers), model_loss(val_terms, regularizers)
        self.training.history.append(EpochRecord(epoch, train_loss, val_loss, lr, self.seconds(), terms))
        for callback in self.callbacks:
            callback.on_epoch_end(self.training.history[-1], state)


def fit(
    training: Training,
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: TrainerConfig,
    callbacks: Sequence[Callback] = (),
    start: Optional[TrainState] = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> FitResult:
    """Train until cfg.epochs, appending one metrics row per epoch to `training.history` (and one
    for the untrained model first) and calling the callbacks.

    `start` (with the history so far) continues from a saved state, also from the middle of an
    epoch, and ends on the same weights and losses as a run that never stopped: the caller restores
    model, optimizer and schedule; `fit` restores the generators and the epoch's position.

    Stops early with status "interrupted" after the step during which `stop_requested()` became
    true (or at once on KeyboardInterrupt), and with status "diverged" at the end of an epoch with
    a non-finite loss (checked once per epoch, so the steps never wait for the host)."""
    batches = Batches.of(len(train), cfg)
    log = EpochLog(training, batches.evaluated(val, cfg.limit_val_batches), callbacks)
    state = begin(training, train, cfg, batches, log, start)
    steps, status, clean, diverged_at_step = state.steps, Status.completed, True, None
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            done = run_epoch(training, train, epoch, state, batches, cfg, stop_requested)
            steps = done.steps
            if done.stopped is not None:
                state, status = done.stopped, Status.interrupted
                break
            sums = done.sums.tolist() if done.sums is not None else [math.nan]  # the epoch's one sync
            if not all(math.isfinite(s) for s in sums):  # history and the last checkpoint keep the last finite epoch
                bad = (~torch.isfinite(done.step_losses)).nonzero()
                diverged_at_step = steps - batches.per_epoch + (int(bad[0]) if len(bad) else batches.per_epoch - 1) + 1
                status, clean = Status.diverged, False
                break
            for callback in callbacks:
                callback.on_step_losses(epoch, done.step_losses)
            lr = float(training.optimizer.param_groups[0]["lr"])  # the epoch's lr, before the schedule steps
            if training.scheduler is not None:
                training.scheduler.step()
            state = TrainState.capture(epoch, 0, steps, batches.per_epoch, training.data_order.get_state())
            log.record(epoch, {k: v / batches.seen for k, v in zip(done.names, sums)}, lr, state)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, perhaps inside a step
        status, clean = Status.interrupted, False
    result = FitResult(training.history, steps, log.seconds(), status, state, clean, diverged_at_step)
    for callback in callbacks:
        callback.on_fit_end(result)
    return result


def begin(
    training: Training,
    train: torch.Tensor,
    cfg: TrainerConfig,
    batches: Batches,
    log: EpochLog,
    start: Optional[TrainState],
) -> TrainState:
    """Where training starts: a fresh run records the untrained model as epoch 0 (its train loss on at
    most `limit_val_batches` batches' worth of points); a resumed one puts the generators back."""
    if start is None:
        scored = batches.evaluated(train, cfg.limit_val_batches)
        state = TrainState.capture(0, 0, 0, batches.per_epoch, training.data_order.get_state())
        lr = float(training.optimizer.param_groups[0]["lr"])
        log.record(0, evaluate(training.model, scored, training.regularizers), lr, state)
        return state
    if start.batch and start.n_batches != batches.per_epoch:
        raise ConfigError(
            f"the checkpoint stopped inside an epoch of {start.n_batches} steps, but this "
            f"config makes epochs of {batches.per_epoch}; resume with the run's own batch settings"
        )
    start.restore_rng(training.data_order)
    return start


def run_epoch(
    training: Training,
    train: torch.Tensor,
    epoch: int,
    state: TrainState,
    batches: Batches,
    cfg: TrainerConfig,
    stop_requested: Callable[[], bool],
) -> EpochSteps:
    """One epoch's optimizer steps (from the middle of it when `state` stopped there), or fewer when a
    stop is requested: each step asks the model and the regularizers for their loss terms, keeps their
    per-sample sums on the device, and steps the optimizer."""
    model, optimizer = training.model, training.optimizer
    model.train()
    order_state = training.data_order.get_state()
    # One gather per epoch, then every batch is a view: no per-step indexing kernel.
    shuffled = (
        train[torch.randperm(len(train), generator=training.data_order).to(train.device)] if cfg.shuffle else train
    )
    mean_loss = model.loss_kind == "mse"  # a batch's mse is a mean: times its size gives its per-sample sum
    done = EpochSteps([], None, torch.empty(batches.per_epoch, device=train.device, dtype=train.dtype), state.steps)
    first = 0
    if state.batch and epoch == state.epoch + 1:  # resuming inside this epoch: a mid-epoch state carries both
        first, done.names, done.sums = state.batch, list(state.terms or []), cast(torch.Tensor, state.running).clone()
        done.step_losses[:first].copy_(cast(torch.Tensor, state.step_losses))
    for b in range(first, batches.per_epoch):
        if stop_requested():
            done.stopped = TrainState.capture(
                epoch - 1, b, done.steps, batches.per_epoch, order_state, done.sums, done.step_losses, done.names
            )
            return done
        x = shuffled[b * batches.size : (b + 1) * batches.size]
        objective, loss, terms = step_terms(model, x, training.regularizers)
        if done.sums is None:
            done.names, done.sums = list(terms), torch.zeros(len(terms), device=train.device, dtype=train.dtype)
        loss = loss.detach()
        values = loss if len(terms) == 1 else torch.stack([t.detach() for t in terms.values()])
        done.sums.add_(values, alpha=len(x) if mean_loss else 1)  # per-sample sums, on the device
        done.step_losses[b] = loss if mean_loss else loss / len(x)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        done.steps += 1
    return done
