"""The training loop: one readable function, tensors on the device, one host sync per epoch.

Data lives in memory as device tensors; each epoch draws a permutation from a
seeded generator and slices batches from it. The running loss is accumulated
on the device and read once per epoch, so the steps themselves never wait for
the host.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from aecli.config import ConfigError, TrainerConfig
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
class FitResult:
    history: list[EpochRecord]
    steps: int
    seconds: float
    status: str  # "completed", "diverged" or "interrupted"
    weights_match_last_epoch: bool  # False after a mid-epoch abort or a divergence


@contextlib.contextmanager
def stop_on_signal() -> Iterator[Callable[[], bool]]:
    """Turn the first SIGINT (Ctrl-C) or SIGTERM (SLURM preemption) into a request to stop after
    the current epoch, so the run ends with a consistent checkpoint; a second Ctrl-C aborts at once.
    Yields a function that says whether a stop was requested."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield requested.is_set
        return

    def handler(signum: int, frame: object) -> None:
        if requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def resolve_device(name: str) -> torch.device:
    """auto picks cuda, then mps, then cpu; asking for a missing accelerator is a config error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ConfigError("trainer.device=cuda was asked for but this torch build sees no CUDA GPU; "
                          "use trainer.device=cpu or auto")
    if name == "mps" and not mps:
        raise ConfigError("trainer.device=mps was asked for but Apple's MPS backend is not available; "
                          "use trainer.device=cpu or auto")
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
    model: nn.Module,
    train: torch.Tensor,
    val: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
    regularizer: Regularizer,
    cfg: TrainerConfig,
    generator: torch.Generator,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    stop_requested: Callable[[], bool] = lambda: False,
    on_step_losses: Optional[Callable[[int, torch.Tensor], None]] = None,
) -> FitResult:
    """Train for cfg.epochs; call `on_epoch` after each (and once for the untrained model).

    With `on_step_losses`, every step's per-sample loss is kept on the device and handed
    over once per epoch as (epoch, tensor of n_batches losses), before `on_epoch`.

    Stops early, with status "interrupted", at the end of an epoch after which `stop_requested()`
    is true, or mid-epoch on KeyboardInterrupt; with status "diverged" on a non-finite loss."""
    n = len(train)
    batch_size = min(cfg.batch_size, n)
    n_batches = n // batch_size if cfg.drop_last else math.ceil(n / batch_size)
    mean_loss = cfg.loss == "mse"  # a batch's mse is a mean: times its size gives its per-sample sum
    lr = lambda: float(optimizer.param_groups[0]["lr"])  # noqa: E731
    start = time.perf_counter()
    history: list[EpochRecord] = []

    def record(epoch: int, train_loss: float, epoch_lr: float) -> None:
        history.append(EpochRecord(epoch, train_loss, evaluate(model, val, cfg.loss), epoch_lr,
                                   time.perf_counter() - start))
        on_epoch(history[-1])

    record(0, evaluate(model, train, cfg.loss), lr())
    steps, status, clean_stop = 0, "completed", True
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            # One gather per epoch, then every batch is a view: no per-step indexing kernel.
            shuffled = train[torch.randperm(n, generator=generator).to(train.device)] if cfg.shuffle else train
            running = torch.zeros((), device=train.device, dtype=train.dtype)
            step_losses = torch.empty(n_batches, device=train.device) if on_step_losses else None
            for b in range(n_batches):
                x = shuffled[b * batch_size : (b + 1) * batch_size]
                code = model.encode(regularizer.corrupt(x))
                loss = reconstruction_loss(model.decode(code), x, cfg.loss)
                running.add_(loss.detach(), alpha=len(x) if mean_loss else 1)  # per-sample sum, on the device
                if step_losses is not None:
                    step_losses[b] = loss.detach() if mean_loss else loss.detach() / len(x)
                penalty = regularizer.penalty(model, x, code)
                if penalty is not None:
                    loss = loss + penalty
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
            train_loss = float(running) / (n_batches * batch_size if cfg.drop_last else n)  # the epoch's one sync
            if not math.isfinite(train_loss):
                status, clean_stop = "diverged", False  # history keeps the last finite epoch
                break
            if on_step_losses is not None:
                on_step_losses(epoch, step_losses)
            epoch_lr = lr()
            if scheduler is not None:
                scheduler.step()
            record(epoch, train_loss, epoch_lr)
            if stop_requested() and epoch < cfg.epochs:
                status = "interrupted"
                break
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, mid-epoch
        status, clean_stop = "interrupted", False
    return FitResult(history, steps, time.perf_counter() - start, status, clean_stop)
