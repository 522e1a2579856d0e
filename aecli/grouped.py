"""The train step of a run that may be one member of a vectorized group (`hydra/launcher=vectorized`).

A run calls `train(request)` where it would call `fit`. On its own (a single run, any other
launcher) that is `fit`. Under the vectorized launcher each job runs in a thread of its own and
`train` hands the request to the launcher, which trains every compatible job's request at once
(aecli.vectorized.fit_group) and hands this job's FitResult back; meanwhile the run's folder
stays locked and its summary.json says "running", as in any run's training.

Kept apart from the launcher (hydra_plugins/aecli_vectorized_launcher) so the pipeline needs
nothing from Hydra's plugin machinery.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Optional, Protocol

from aecli.training.loop import fit
from aecli.training.state import FitResult
from aecli.vectorized import TrainRequest


class Slot(Protocol):
    """The launcher's side of one job: takes its request, gives its result."""

    group_size: Optional[int]  # the members it trained with, itself included; None when it trained alone

    def hand_over(self, request: TrainRequest, stop_requested: Callable[[], bool]) -> FitResult: ...

    def pause(self) -> None: ...


_job = threading.local()  # .slot: the launcher's Slot of the job this thread runs


def plain_fit(request: TrainRequest, stop_requested: Callable[[], bool]) -> FitResult:
    """`fit` on one request: a run on its own."""
    r = request
    return fit(r.training, r.train, r.val, r.cfg, r.callbacks, r.start, stop_requested=stop_requested)


def train(request: TrainRequest, stop_requested: Callable[[], bool]) -> FitResult:
    """This run's training: plain `fit`, or its share of its group's when the launcher runs it as a member."""
    slot: Optional[Slot] = getattr(_job, "slot", None)
    return plain_fit(request, stop_requested) if slot is None else slot.hand_over(request, stop_requested)


def group_size() -> Optional[int]:
    """The size of the group this thread's run trained in (None: it trained alone)."""
    slot: Optional[Slot] = getattr(_job, "slot", None)
    return None if slot is None else slot.group_size


def let_others_finish() -> None:
    """A member's figures are on their way to the figure workers: let the launcher finish the next
    members (their analyses send more figures) before this run waits for its own. The launcher
    resumes it later, with its log and Hydra config around it again. A run on its own goes straight on."""
    slot: Optional[Slot] = getattr(_job, "slot", None)
    if slot is not None:
        slot.pause()


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Runs inside the block (a transfer's source run, nested in its job's run) train and pause as a run
    on their own: the job's slot in its group is for the job's own run."""
    slot = getattr(_job, "slot", None)
    bind(None)
    try:
        yield
    finally:
        bind(slot)


def bind(slot: Optional[Slot]) -> None:
    """Make `slot` the hand-over point of the run this thread runs (None: back to plain fit)."""
    _job.slot = slot
