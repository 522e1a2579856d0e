"""The members still training, as one stacked model: their weights, optimizer state, loss terms
and data stacked along a leading member dimension, and one epoch of steps for all of them.

A member that diverges leaves: its weights and optimizer state are written back to its plain
model, and the group is rebuilt from the others' plain models and optimizers (which hold exactly
the stacked values after the write-back), so the survivors go on as if it had never been there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from aecli.training.state import TrainState
from aecli.vectorized.members import Member
from aecli.vectorized.stacked_model import WriteBack, backward, build_stack, member_views
from aecli.vectorized.stacked_optim import build_optimizer
from aecli.vectorized.stacked_terms import batch_terms, build_terms, evaluate


@dataclass
class EpochSums:
    """What one epoch's steps leave for every member: per-term per-sample sums [K, T] and step
    losses [K, steps], the data-order states before the epoch's permutations, and the batch a stop
    request ended the epoch at (None: the epoch ran to its end)."""

    sums: torch.Tensor
    step_losses: torch.Tensor
    order_states: list[torch.Tensor]
    stopped_at: Optional[int] = None


class Group:
    """K members' stacked model, optimizer, terms and data."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = list(members)
        trainings = [m.training for m in members]
        self.stack = build_stack([t.model for t in trainings])
        self.write_weights = WriteBack(self.stack, self.stack.flat, member_views(self.stack, self.stack.flat)[0])
        self.optimizer = build_optimizer(self.stack, [t.optimizer for t in trainings])
        has_hidden = any(layer.hidden for layer in self.stack.layers)
        mean = trainings[0].model.loss_kind == "mse"
        self.terms = build_terms([t.regularizers for t in trainings], has_hidden, self.stack.flat, mean)
        self.train = torch.stack([m.request.train for m in members])
        self.val = torch.stack([m.val for m in members])
        self.batches = members[0].batches
        cfg = members[0].request.cfg
        self.shuffle = bool(cfg.shuffle)

    def member_terms(self, values: Sequence[Sequence[float]], k: int) -> dict[str, float]:
        """Member k's own terms, by name, from a row per member of every term."""
        return {self.terms.names[c]: values[k][c] for c in self.terms.member_columns[k]}

    def evaluate(self, x: torch.Tensor) -> list[list[float]]:
        """Each member's terms, per-sample averages over its points in x [K, N, D] (one host sync)."""
        return evaluate(self.stack, self.terms, x).tolist()

    def shuffled(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """This epoch's training data of every member in its own order: each member's data-order
        generator draws its permutation exactly as run_epoch draws it for the job alone."""
        generators = [m.training.data_order for m in self.members]
        states = [g.get_state() for g in generators]
        if not self.shuffle:
            return self.train, states
        n = self.train.shape[1]
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(self.train.device)
        rows = torch.arange(len(generators), device=self.train.device).unsqueeze(1)
        return self.train[rows, orders], states

    def run_epoch(self, stop_requested: Callable[[], bool]) -> EpochSums:
        """One epoch's optimizer steps of every member, or fewer when a stop is requested; the running
        sums stay on the device."""
        data, states = self.shuffled()
        size, per_epoch, k = self.batches.size, self.batches.per_epoch, len(self.members)
        ref = self.stack.flat
        done = EpochSums(
            torch.zeros(k, len(self.terms.names), device=ref.device, dtype=ref.dtype),
            torch.empty(k, per_epoch, device=ref.device, dtype=ref.dtype),
            states,
        )
        mean = self.terms.mean
        for b in range(per_epoch):
            if stop_requested():
                done.stopped_at = b
                return done
            x = data[:, b * size : (b + 1) * size]
            objective, values = batch_terms(self.stack, self.terms, x, training=True)
            values = values.detach()
            done.sums.add_(values, alpha=x.shape[1] if mean else 1)
            done.step_losses[:, b] = values[:, 0] if mean else values[:, 0] / x.shape[1]
            self.optimizer.zero_grad()
            backward(objective)
            self.optimizer.step()
        for member in self.members:
            member.steps += per_epoch
        return done

    def write_back(self, optimizer: bool = True) -> None:
        """Every member's plain model gets the stacked weights, and its optimizer the stacked state
        (unless `optimizer` is False: nothing reads that state this epoch)."""
        self.write_weights()
        if optimizer:
            self.optimizer.write_back()

    def stopped_states(self, epoch: int, done: EpochSums) -> None:
        """Each member's TrainState after a stop request inside `epoch`, as run_epoch captures it."""
        b = done.stopped_at or 0
        for k, member in enumerate(self.members):
            member.steps += b
            columns = self.terms.member_columns[k]
            running = done.sums[k, columns] if b else None
            names = [self.terms.names[c] for c in columns] if b else []
            member.state = TrainState.capture(
                epoch - 1,
                b,
                member.steps,
                self.batches.per_epoch,
                done.order_states[k],
                running,
                done.step_losses[k],
                names,
            )
