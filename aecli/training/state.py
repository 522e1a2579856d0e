"""What training leaves behind and what continuing it needs: one metrics row per epoch, the state
between two optimizer steps (saved in every checkpoint), and what `fit` returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

import torch

from aecli.summary import Status

RECORD_FIELDS = ("epoch", "train_loss", "val_loss", "lr", "seconds")  # the columns every metrics.csv starts with


@dataclass
class EpochRecord:
    """One row of metrics.csv. Epoch 0 is the untrained model, evaluated before any step.

    `train_loss` and `val_loss` are the model's loss, the sum of its own terms (reconstruction; a VAE
    adds kl), each a per-sample average, comparable between runs whatever their regularizers; `terms`
    has each term on its own, train and validation (`train_reconstruction`, `val_reconstruction`,
    e.g. `train_kl`), the regularizers' penalties (e.g. `train_weight_l2`) included: the objective
    the optimizer minimises is the loss plus those penalties."""

    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float  # wall time since training started
    terms: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The metrics.csv row: the five columns, then the terms."""
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "lr": self.lr,
            "seconds": self.seconds,
            **self.terms,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EpochRecord:
        """A row as `row()` writes it (a checkpoint's metrics); the columns past the five are terms."""
        terms = {k: float(v) for k, v in row.items() if k not in RECORD_FIELDS}
        losses = (float(row["train_loss"]), float(row["val_loss"]), float(row["lr"]), float(row["seconds"]))
        return cls(int(row["epoch"]), *losses, terms=terms)


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
    running: Optional[torch.Tensor] = None  # mid-epoch: the epoch's per-sample sum of each loss term so far
    step_losses: Optional[torch.Tensor] = None  # mid-epoch: the epoch's step losses so far
    terms: Optional[list[str]] = None  # mid-epoch: the loss terms `running` holds, in its order

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
        terms: Optional[list[str]] = None,
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
            None if running is None else list(terms or []),
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
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass
class FitResult:
    history: list[EpochRecord]
    steps: int
    seconds: float
    status: Status  # completed, diverged or interrupted
    state: TrainState  # where training stopped; its checkpoint lets a later run continue from there
    weights_match_state: bool  # False after an abort inside a step or a divergence: do not save these weights
    diverged_at_step: Optional[int] = None  # the first step whose loss was not finite
