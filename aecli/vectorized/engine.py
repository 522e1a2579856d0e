"""fit() for K compatible jobs at once, as one stacked model in one process.

The studies' nets are so small that a training step costs Python and kernel-launch overhead, not
arithmetic; stacking K jobs' weights along a leading dimension pays that overhead once for all K.
`stack_key` says which jobs can share a stack (and why a job cannot); `fit_group` trains them and
leaves, for every member, what `fit` would have left for the job alone: metrics rows in its
history, its callbacks called (so its checkpoints resume with a plain run), its plain model and
optimizer holding its weights and state, and its FitResult.

Without randomness a member follows the job alone up to float reordering in the batched kernels;
with dropout or masking noise, see stacked_model.py on how the random streams are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Optional, cast

import torch

from aecli.summary import Status
from aecli.training.state import FitResult, TrainState
from aecli.vectorized.group import EpochSums, Group
from aecli.vectorized.members import Member, TrainRequest
from aecli.vectorized.stacked_model import activation_signature, member_stages, structure
from aecli.vectorized.stacked_optim import unsupported_optimizer
from aecli.vectorized.stacked_terms import unsupported_regularizer

SCHEDULES = (torch.optim.lr_scheduler.ExponentialLR,)  # schedules that change only the lr, once per epoch


def stack_key(request: TrainRequest) -> tuple[Optional[Hashable], str]:
    """(key, reason): requests with equal non-None keys can train as one group; None means this job
    trains alone, and `reason` says why in one short phrase."""
    t, cfg = request.training, request.cfg
    if request.start is not None:
        return None, "resumed runs train alone"
    if cfg.compile:
        return None, "trainer.compile runs train alone"
    stages, why = member_stages(t.model)
    why = why or unsupported_regularizer(t.regularizers) or ""
    optimizer_key, why = (None, why) if why else unsupported_optimizer(t.optimizer)
    if why:
        return None, why
    if t.scheduler is not None and type(t.scheduler) not in SCHEDULES:
        return None, f"lr schedule {type(t.scheduler).__name__} is not stacked"
    params, optimized = list(t.model.parameters()), t.optimizer.param_groups[0]["params"]
    same = len(params) == len(optimized) and all(p is q for p, q in zip(params, optimized))
    if not same or not all(p.requires_grad for p in params):
        return None, "frozen layers (or an optimizer over other parameters) are not stacked"
    ref = params[0]
    if request.train.device != ref.device or request.val.device != ref.device:
        return None, "data on another device than the model is not stacked"
    settings = tuple(cfg[key] for key in ("batch_size", "epochs", "drop_last", "shuffle", "loss"))
    limits = (cfg.limit_train_batches, cfg.limit_val_batches)
    shapes = (tuple(request.train.shape), tuple(request.val.shape), request.train.dtype)
    return (
        structure(stages),
        settings,
        limits,
        shapes,
        t.model.loss_kind,
        str(ref.device),
        ref.dtype,
        optimizer_key,
    ), ""


def bytes_per_member(request: TrainRequest) -> int:
    """What one more member costs a group, roughly: stacked parameters, gradients and optimizer state,
    its data (training set twice: stacked and shuffled; validation set), and the activations of a
    training step and of an evaluation chunk."""
    model, train, val = request.training.model, request.train, request.val
    stages, _ = member_stages(model)
    widths = [s.weight.shape[0] for s in stages]
    params = sum(s.weight.numel() + s.weight.shape[0] for s in stages)
    state = 2 if isinstance(request.training.optimizer, torch.optim.Adam) else 1
    size = train.element_size()
    batch = min(int(request.cfg.batch_size), len(train))
    data = (2 * train.numel() + val.numel()) * size
    activations = (4 * batch + min(len(val), 16384)) * sum(widths) * size
    return (2 + state) * params * size + data + activations


def fit_group(requests: Sequence[TrainRequest], stop_requested: Callable[[], bool] = lambda: False) -> list[FitResult]:
    """fit() for K requests with equal stack keys at once: result i is what fit(requests[i]) would
    return, and each member's history rows, callbacks, plain model and optimizer end as fit leaves them.

    A member whose epoch has a non-finite loss stops alone ("diverged"); a stop request interrupts
    every member after the current step, each with the TrainState fit would capture."""
    keys = [stack_key(r) for r in requests]
    if not requests or any(key is None or key != keys[0][0] for key, _ in keys):
        reasons = "; ".join(reason for key, reason in keys if key is None) or "different stack keys"
        raise ValueError(f"fit_group needs requests with one stack key ({reasons})")
    signature = [activation_signature(member_stages(r.training.model)[0]) for r in requests]
    members = [Member.of(requests[i], i) for i in sorted(range(len(requests)), key=signature.__getitem__)]
    try:
        train(Group(members), int(requests[0].cfg.epochs), stop_requested)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, perhaps inside a step, as fit does
        finish_all(members, Status.interrupted, clean=False)
    by_request = sorted(members, key=lambda m: m.index)
    return [cast(FitResult, m.result) for m in by_request]


def train(group: Group, epochs: int, stop_requested: Callable[[], bool]) -> None:
    """fit's epochs for the whole group: epoch 0, then each epoch's steps and records, until every
    member has ended (completed, diverged, or interrupted by a stop request)."""
    begin(group)
    for epoch in range(1, epochs + 1):
        done = group.run_epoch(stop_requested)
        if done.stopped_at is not None:
            group.write_back()
            group.stopped_states(epoch, done)
            finish_all(group.members, Status.interrupted, clean=True)
            return
        survivors = end_epoch(group, epoch, done, last=epoch == epochs)
        if survivors is None:
            return
        group = survivors
    finish_all(group.members, Status.completed, clean=True)


def finish_all(members: Sequence[Member], status: Status, clean: bool) -> None:
    for member in members:
        if member.result is None:
            member.finish(status, clean)


def begin(group: Group) -> None:
    """Epoch 0 of every member: the untrained model's train (on the scored points) and validation terms."""
    scored = torch.stack([m.scored for m in group.members])
    train_values, val_values = group.evaluate(scored), group.evaluate(group.val)
    for k, member in enumerate(group.members):
        member.training.model.train()  # the mode fit leaves the model in (run_epoch sets it)
        member.record(0, group.member_terms(train_values, k), group.member_terms(val_values, k), member.lr())


def end_epoch(group: Group, epoch: int, done: EpochSums, last: bool) -> Optional[Group]:
    """The epoch's one host sync; members with a non-finite term leave as "diverged"; the others get
    their weights (and, where a callback reads it or the group changes, optimizer state) written
    back, their schedule stepped and their metrics row. Returns the group that goes on (None when
    no member is left)."""
    sums = done.sums.tolist()
    finite = [all(math.isfinite(sums[k][c]) for c in group.terms.member_columns[k]) for k in range(len(group.members))]
    wanted = any(c.needs_optimizer_state(epoch) for m in group.members for c in m.request.callbacks)
    group.write_back(optimizer=last or wanted or not all(finite))  # a smaller group is rebuilt from the plain state
    for k, member in enumerate(group.members):
        if not finite[k]:
            bad = (~torch.isfinite(done.step_losses[k])).nonzero()
            per_epoch = group.batches.per_epoch
            at = member.steps - per_epoch + (int(bad[0]) if len(bad) else per_epoch - 1) + 1
            member.finish(Status.diverged, clean=False, diverged_at_step=at)
    seen = group.batches.seen
    train_terms = [{n: v / seen for n, v in group.member_terms(sums, k).items()} for k in range(len(finite))]
    if not all(finite):
        kept = [k for k, ok in enumerate(finite) if ok]
        if not kept:
            return None
        done = EpochSums(done.sums[kept], done.step_losses[kept], [done.order_states[k] for k in kept])
        train_terms = [train_terms[k] for k in kept]
        group = Group([group.members[k] for k in kept])
    record_epoch(group, epoch, done, train_terms)
    group.optimizer.refresh_lr()
    return group


def record_epoch(group: Group, epoch: int, done: EpochSums, train_terms: list[dict[str, float]]) -> None:
    """fit's end of an epoch for each member: step losses, the epoch's lr, the schedule's step, the
    state to resume from, and the metrics row (validation evaluated for all members at once)."""
    val_values = group.evaluate(group.val)
    for k, member in enumerate(group.members):
        for callback in member.request.callbacks:
            callback.on_step_losses(epoch, done.step_losses[k])
        lr = member.lr()
        if member.training.scheduler is not None:
            # the plain optimizer's own step never ran; tell its schedule the steps did (torch warns otherwise)
            member.training.optimizer._opt_called = True  # type: ignore[attr-defined]
            member.training.scheduler.step()
        per_epoch = member.batches.per_epoch
        member.state = TrainState.capture(epoch, 0, member.steps, per_epoch, member.training.data_order.get_state())
        member.record(epoch, train_terms[k], group.member_terms(val_values, k), lr)
