"""Figures drawn in worker processes while the run goes on.

Drawing is most of a small model's sweep time once training is stacked (hydra/launcher=vectorized:
about 0.75 s of figures per nonlinear_2d job against 0.1 s of its share of the training), and
matplotlib holds the GIL, so threads would not help. While a pool is open (`open_pool`: the
vectorized launcher opens one for a sweep, and the sweep report closes it once its comparison
figures are drawn side by side with `draw_all`), a plot function marked `@in_pool` is sent to a
worker process and returns at once; with no pool it draws inline, as always.

A run collects its figures' futures (`run_figures`, around its figures and analyses) and waits for
them before it may say "completed": a figure that fails in a worker fails the run, as it would
inline, naming the phase it was drawn in. A stop request while waiting cancels figures not yet
started and waits for those being drawn (every PNG is written atomically either way), so no worker
writes into a run folder after the run ended. A broken pool (a worker killed) is closed and the
figure drawn inline.

Workers are spawned, never forked from a process with threads and torch; they import matplotlib
and plots.py, not torch, and ignore SIGINT, SIGTERM and SIGHUP: the launching process decides when
a sweep stops, and shuts them down.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import functools
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeVar

from aecli import signals

F = TypeVar("F", bound=Callable[..., None])
T = TypeVar("T")
POLL_S = 0.1  # a run waiting for its figures answers a stop request this often

_pool: list[cf.ProcessPoolExecutor] = []  # the open pool (at most one)
_run = threading.local()  # .pending: the figures of the run this thread runs, while it collects them


@dataclass
class Pending:
    """One figure on its way: where it is drawn, and how to draw it again inline."""

    future: cf.Future[None]
    phase: str
    call: Callable[[], None]


def in_pool(draw: F) -> F:
    """Mark a plot function (arguments picklable, returns None) as one a worker may draw."""

    @functools.wraps(draw)
    def maybe_elsewhere(*args: Any, **kwargs: Any) -> None:
        pending: Optional[list[Pending]] = getattr(_run, "pending", None)
        if not _pool or pending is None:
            return draw(*args, **kwargs)
        # paths as this process sees them now (a job of hydra.job.chdir=true runs in its own folder)
        args = tuple(a.absolute() if isinstance(a, Path) else a for a in args)
        kwargs = {k: v.absolute() if isinstance(v, Path) else v for k, v in kwargs.items()}
        try:  # the worker finds this wrapper by name and, with no pool of its own, draws
            future = _pool[0].submit(functools.partial(maybe_elsewhere, *args, **kwargs))
        except (BrokenProcessPool, RuntimeError):  # broken or shut down: draw it here
            close_pool()
            return draw(*args, **kwargs)
        pending.append(Pending(future, getattr(_run, "phase", "figures"), functools.partial(draw, *args, **kwargs)))
        return None

    return maybe_elsewhere  # type: ignore[return-value]


def _quiet_worker() -> None:
    """A worker's start: stop signals are the launching process's to answer; plots.py imported once."""
    signals.ignore()
    import aecli.reporting.plots  # noqa: F401  (matplotlib's import, before the first figure)


def default_workers() -> int:
    """One worker per core this process may run on."""
    from aecli.memory import cores

    return cores()


@contextlib.contextmanager
def figure_pool(workers: Optional[int] = None, warm: bool = True) -> Iterator[None]:
    """Worker processes drawing the figures of the runs in this block (0 workers: draw inline).
    `warm`: start them now (else at the first figure, e.g. where the config draws none)."""
    opened = open_pool(workers, warm)
    try:
        yield
    finally:
        if opened:
            close_pool()


def open_pool(workers: Optional[int] = None, warm: bool = True) -> bool:
    """Open the pool (`figure_pool`) until `close_pool`, or until this process exits; False (and
    nothing done) with 0 workers or a pool already open."""
    workers = default_workers() if workers is None else workers
    if workers < 1 or _pool:
        return False
    context = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker)
    for _ in range(workers if warm else 0):  # start every worker now (matplotlib's import) while the sweep builds
        pool.submit(int)
    _pool.append(pool)
    return True


@atexit.register
def close_pool() -> None:
    if _pool:
        _pool.pop().shutdown(wait=True, cancel_futures=True)


def draw_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call's result, in order: made by the open pool's workers side by side (the sweep
    report's comparison figures), or here with no pool or a broken one. Each call must be picklable
    (a module-level function and its arguments); an error it raises is raised here."""
    futures: list[Optional[cf.Future[T]]] = []
    for call in calls:
        try:
            futures.append(_pool[0].submit(call) if _pool else None)
        except (BrokenProcessPool, RuntimeError):  # broken or shut down: the rest here
            close_pool()
            futures.append(None)
    results = []
    for call, future in zip(calls, futures):
        try:
            results.append(call() if future is None else signals.wait_for(future, POLL_S))
        except BrokenProcessPool:  # a worker died (killed, out of memory): this one here
            close_pool()
            results.append(call())
    return results


def set_phase(phase: str) -> None:
    """The run phase figures sent from now on belong to (what a failure names)."""
    _run.phase = phase


@contextlib.contextmanager
def run_figures(failed_in: Callable[[str], None]) -> Iterator[None]:
    """Collect the figures a run sends to workers in this block; at its end wait for them all (the
    first failure raised, after `failed_in` is told the phase it was drawn in). Left by an error or
    a stop: cancel the ones not started, wait for the ones being drawn."""
    pending: list[Pending] = []
    _run.pending, _run.phase = pending, "figures"
    try:
        yield
        wait_all(pending, failed_in)
    finally:
        for item in pending:
            item.future.cancel()
        cf.wait([item.future for item in pending])
        _run.pending = None


def wait_all(pending: list[Pending], failed_in: Callable[[str], None]) -> None:
    """Wait for every figure, answering stop requests (in the phase of a figure still drawn)."""
    for item in pending:
        try:  # a stop request takes only figures still to be drawn (signals.Stopped is no Exception)
            signals.wait_for(item.future, POLL_S, check=functools.partial(signals.check, item.phase))
        except BrokenProcessPool:  # a worker died (killed, out of memory): draw it here
            close_pool()
            item.call()
        except Exception:
            failed_in(item.phase)
            raise
