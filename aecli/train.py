"""The training loop: one readable function, tensors on the device, one host sync per epoch.

Data lives in memory as device tensors; each epoch draws a permutation from a
seeded generator and slices batches from it. The running loss is accumulated
on the device and read once per epoch, so the steps themselves never wait for
the host.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, Optional, cast

import torch
import torch.nn.functional as F
from torch import nn

from aecli.config import ConfigError, TrainerConfig
from aecli.models import MLPAutoencoder
from aecli.regularizers import Regularizer


@dataclass
class EpochRecord:
    """One row of metrics.csv. Epoch 0 is the untrained model, evaluated before any step."""

    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float  # wall time since training started


@dataclass
class TrainState:
    """Where training stands between two optimizer steps: everything besides the model, optimizer
    and schedule that continuing needs to give the very weights an uninterrupted run would.

    Stored in every checkpoint (`to_dict`: tensors, numbers and lists only, so weights_only loads it)."""

    epoch: int  # epochs completed
    batch: int  # steps already taken in epoch `epoch + 1` (0 at an epoch boundary)
    steps: int  # optimizer steps taken in all
    n_batches: int  # steps per epoch; a mid-epoch state only fits a run with the same number
    order_state: torch.Tensor  # the data-order generator just before epoch `epoch + 1` drew its permutation
    rng_state: torch.Tensor  # torch's global CPU generator (dropout, masking noise)
    cuda_rng_states: list[torch.Tensor]
    running: Optional[torch.Tensor] = None  # mid-epoch: the epoch's per-sample loss sum so far
    step_losses: Optional[torch.Tensor] = None  # mid-epoch: the epoch's step losses so far

    @classmethod
    def capture(
        cls,
        epoch: int,
        batch: int,
        steps: int,
        n_batches: int,
        order_state: torch.Tensor,
        running: Optional[torch.Tensor] = None,
        step_losses: Optional[torch.Tensor] = None,
    ) -> TrainState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return cls(
            epoch,
            batch,
            steps,
            n_batches,
            order_state.clone(),
            torch.get_rng_state(),
            cuda,
            None if running is None else running.clone(),
            None if step_losses is None else step_losses[:batch].clone(),
        )

    def restore_rng(self, generator: torch.Generator) -> None:
        """Put the data-order and global generators back where they were when this was captured."""
        generator.set_state(self.order_state.cpu())
        torch.set_rng_state(self.rng_state.cpu())
        if self.cuda_rng_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in self.cuda_rng_states])

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass
class FitResult:
    history: list[EpochRecord]
    steps: int
    seconds: float
    status: str  # "completed", "diverged" or "interrupted"
    state: TrainState  # where training stopped; its checkpoint lets a later run continue from there
    weights_match_state: bool  # False after an abort inside a step or a divergence: do not save these weights
    diverged_at_step: Optional[int] = None  # the first step whose loss was not finite


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


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """mse: mean over every element of the batch; sse: sum over every element."""
    return F.mse_loss(x_hat, x, reduction="mean" if kind == "mse" else "sum")


def per_sample(loss: torch.Tensor, batch_size: int, kind: str) -> torch.Tensor:
    """Batch loss -> its contribution to a per-sample average (so mse and sse epochs compare)."""
    return loss * batch_size if kind == "mse" else loss


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


def evaluate(model: nn.Module, x: torch.Tensor, kind: str, chunk: int = 16384) -> float:
    """Per-sample reconstruction loss over all of `x`, in eval mode (dropout off)."""
    total = torch.zeros((), device=x.device, dtype=torch.float64)
    with evaluating(model):
        for i in range(0, len(x), chunk):
            xb = x[i : i + chunk]
            total += per_sample(reconstruction_loss(model(xb), xb, kind), len(xb), kind).double()
    return float(total) / max(len(x), 1)


def fit(
    model: MLPAutoencoder,
    train: torch.Tensor,
    val: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
    regularizer: Regularizer,
    cfg: TrainerConfig,
    generator: torch.Generator,
    on_epoch: Callable[[EpochRecord, TrainState], None] = lambda record, state: None,
    stop_requested: Callable[[], bool] = lambda: False,
    on_step_losses: Optional[Callable[[int, torch.Tensor], None]] = None,
    resume: Optional[TrainState] = None,
    history: Optional[list[EpochRecord]] = None,
) -> FitResult:
    """Train until cfg.epochs; call `on_epoch` after each (and once for the untrained model) with its
    metrics row and the state a checkpoint needs.

    `history` is the list of metrics rows that `fit` appends each epoch's row to before calling
    `on_epoch` (so a checkpoint written there has them all); a new list when not given.

    `resume` (with the `history` so far) continues from a saved state, also from the middle of an
    epoch, and ends on the same weights and losses as a run that never stopped: the caller restores
    model, optimizer and schedule; `fit` restores the generators and the epoch's position.

    With `on_step_losses`, every step's per-sample loss is kept on the device and handed
    over once per epoch as (epoch, tensor of n_batches losses), before `on_epoch`.

    Stops early with status "interrupted" after the step during which `stop_requested()` became
    true (or at once on KeyboardInterrupt), and with status "diverged" at the end of an epoch with
    a non-finite loss (checked once per epoch, so the steps never wait for the host)."""
    n = len(train)
    batch_size = min(cfg.batch_size, n)
    n_batches = n // batch_size if cfg.drop_last else math.ceil(n / batch_size)
    if cfg.limit_train_batches is not None:
        n_batches = min(n_batches, cfg.limit_train_batches)
    seen = n_batches * batch_size if cfg.drop_last else min(n, n_batches * batch_size)  # points per epoch
    if cfg.limit_val_batches is not None:  # the first batches' worth of points, for every evaluation
        val, limited_train = val[: cfg.limit_val_batches * batch_size], train[: cfg.limit_val_batches * batch_size]
    else:
        limited_train = train
    mean_loss = cfg.loss == "mse"  # a batch's mse is a mean: times its size gives its per-sample sum
    lr = lambda: float(optimizer.param_groups[0]["lr"])  # noqa: E731
    history = history if history is not None else []
    start = time.perf_counter() - (history[-1].seconds if history else 0.0)  # a resumed clock goes on

    def record(epoch: int, train_loss: float, epoch_lr: float, state: TrainState) -> None:
        history.append(
            EpochRecord(epoch, train_loss, evaluate(model, val, cfg.loss), epoch_lr, time.perf_counter() - start)
        )
        on_epoch(history[-1], state)

    if resume is None:
        state = TrainState.capture(0, 0, 0, n_batches, generator.get_state())
        record(0, evaluate(model, limited_train, cfg.loss), lr(), state)
    else:
        if resume.batch and resume.n_batches != n_batches:
            raise ConfigError(
                f"the checkpoint stopped inside an epoch of {resume.n_batches} steps, but this "
                f"config makes epochs of {n_batches}; resume with the run's own batch settings"
            )
        resume.restore_rng(generator)
        state = resume
    steps, status, clean = state.steps, "completed", True
    diverged_at_step: Optional[int] = None
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            model.train()
            order_state = generator.get_state()
            # One gather per epoch, then every batch is a view: no per-step indexing kernel.
            shuffled = train[torch.randperm(n, generator=generator).to(train.device)] if cfg.shuffle else train
            running = torch.zeros((), device=train.device, dtype=train.dtype)
            step_losses = torch.empty(n_batches, device=train.device, dtype=train.dtype)
            first = 0
            if state.batch and epoch == state.epoch + 1:  # resuming inside this epoch
                first = state.batch
                # a mid-epoch state (batch > 0) always carries both
                running.copy_(cast(torch.Tensor, state.running))
                step_losses[:first].copy_(cast(torch.Tensor, state.step_losses))
            for b in range(first, n_batches):
                if stop_requested():
                    state = TrainState.capture(epoch - 1, b, steps, n_batches, order_state, running, step_losses)
                    return FitResult(history, steps, time.perf_counter() - start, "interrupted", state, True)
                x = shuffled[b * batch_size : (b + 1) * batch_size]
                code = model.encode(regularizer.corrupt(x))
                loss = reconstruction_loss(model.decode(code), x, cfg.loss)
                running.add_(loss.detach(), alpha=len(x) if mean_loss else 1)  # per-sample sum, on the device
                step_losses[b] = loss.detach() if mean_loss else loss.detach() / len(x)
                penalty = regularizer.penalty(model, x, code)
                if penalty is not None:
                    loss = loss + penalty
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
            train_loss = float(running) / seen  # the epoch's one sync
            if not math.isfinite(train_loss):  # history and the last checkpoint keep the last finite epoch
                bad = (~torch.isfinite(step_losses)).nonzero()
                first_bad = int(bad[0]) if len(bad) else n_batches - 1
                diverged_at_step = steps - n_batches + first_bad + 1
                status, clean = "diverged", False
                break
            if on_step_losses is not None:
                on_step_losses(epoch, step_losses)
            epoch_lr = lr()
            if scheduler is not None:
                scheduler.step()
            state = TrainState.capture(epoch, 0, steps, n_batches, generator.get_state())
            record(epoch, train_loss, epoch_lr, state)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, perhaps inside a step
        status, clean = "interrupted", False
    return FitResult(history, steps, time.perf_counter() - start, status, state, clean, diverged_at_step)
