"""summary.json, typed: how a run ended and what it measured.

`Status` is a text enum, so it is written as plain JSON text ("completed") and compares equal to
it; code names the members instead of spelling the strings. `RunSummary.as_dict` is what
summary.json holds: the fields that have a value, the final value of every loss term
(`final_train_kl`, ...) flattened beside the totals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional


class Status(str, Enum):
    """How a run stands or ended (a sweep job that never began: not_started; a file the report
    could not read: unreadable; a job folder without summary.json: missing)."""

    running = "running"
    completed = "completed"
    diverged = "diverged"
    interrupted = "interrupted"
    failed = "failed"
    not_started = "not_started"
    unreadable = "unreadable"
    missing = "missing"

    def __str__(self) -> str:
        return self.value


@dataclass
class RunSummary:
    """What a run wrote into summary.json, as it went: `running` from the first moment, the truth at the end."""

    status: Status = Status.running
    phase: str = "setup"  # setup, source, data, model, train, figures, analyses: where it is or stopped
    dataset: Optional[str] = None
    model: Optional[str] = None
    fast_dev_run: bool = False
    epochs: Optional[int] = None
    steps: Optional[int] = None
    final_train_loss: Optional[float] = None
    final_val_loss: Optional[float] = None
    best_val_loss: Optional[float] = None
    best_epoch: Optional[int] = None
    final_terms: dict[str, float] = field(default_factory=dict)  # written as final_<train|val>_<term>
    loss: Optional[str] = None
    train_seconds: Optional[float] = None
    wall_seconds: Optional[float] = None
    steps_per_second: Optional[float] = None
    device: Optional[str] = None
    dtype: Optional[str] = None
    parameters: Optional[int] = None
    metrics: Optional[dict[str, float]] = None  # the analyses' numbers
    seed: Optional[int] = None
    torch: Optional[str] = None
    python: Optional[str] = None
    diverged_at_epoch: Optional[int] = None
    diverged_at_step: Optional[int] = None
    resumed_from: Optional[dict[str, Any]] = None
    group_size: Optional[int] = None  # hydra/launcher=vectorized: trained stacked with this many jobs, itself included
    stopped_by: Optional[str] = None  # the signal (or stop file) that interrupted the run
    error: Optional[str] = None  # a failed run's first error line
    tracker_errors: Optional[dict[str, str]] = None

    def as_dict(self) -> dict[str, Any]:
        """summary.json's content: every field with a value, the terms flattened."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "final_terms":
                out.update({f"final_{k}": v for k, v in value.items()})
            elif value is not None:
                out[f.name] = value
        return out

    @property
    def ok(self) -> bool:
        return self.status == Status.completed
