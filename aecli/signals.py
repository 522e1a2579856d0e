"""Stop requests: how Ctrl-C, SLURM's SIGTERM and a closed terminal's SIGHUP end a run or a sweep.

The first SIGINT, SIGTERM or SIGHUP only *asks* to stop: the flag is set, and the run
stops at its next safe point (after the current optimizer step, between two figures,
between two analyses, before the next job of a sweep), writing a truthful summary.json
("interrupted", with the phase it stopped in) and exiting 130. A second signal aborts
at once (KeyboardInterrupt), still writing the summary on the way out.

One flag serves the whole process, so the jobs of a sweep run one after another by the
basic launcher all see it. Jobs in other processes (joblib, submitit, SLURM) see the
sweep's stop file instead: the launching process writes `<sweep dir>/.aecli-stop` on
the first signal (`on_stop`), and every job watches for it (`watch_file`).

This module imports nothing heavy: the CLI installs the handlers before anything else.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)  # SIGHUP does not exist on Windows
STOP_FILE = ".aecli-stop"  # in a sweep folder: every job of the sweep stops when it appears
WATCH_INTERVAL_S = 0.25

_requested = threading.Event()
_reason: list[str] = []  # the first stop's cause, e.g. "SIGTERM"
_on_stop: list[Callable[[], None]] = []
_previous: dict[int, Any] = {}  # the handlers `install` replaced


class Stopped(BaseException):
    """Raised at a safe point after a stop request. A BaseException, like KeyboardInterrupt, so no
    `except Exception` on the way (a tracker, an analysis) can swallow it."""

    def __init__(self, phase: str) -> None:
        super().__init__(f"stopped by {reason() or 'request'} during {phase}")
        self.phase = phase


def requested() -> bool:
    """Whether a stop was asked for (a signal, the sweep's stop file, or `request`)."""
    return _requested.is_set()


def reason() -> Optional[str]:
    return _reason[0] if _reason else None


def request(cause: str = "request") -> None:
    """Ask to stop, as the first signal does; runs the `on_stop` callbacks once."""
    if _requested.is_set():
        return
    _reason.append(cause)
    _requested.set()
    for callback in list(_on_stop):
        with contextlib.suppress(Exception):  # a full disk must not turn a stop into a crash
            callback()


def check(phase: str) -> None:
    """Raise Stopped(phase) if a stop was asked for: call it at every safe point."""
    if _requested.is_set():
        raise Stopped(phase)


def on_stop(callback: Callable[[], None]) -> None:
    """Call `callback` when the first stop request arrives (at once if one already has)."""
    _on_stop.append(callback)
    if _requested.is_set():
        with contextlib.suppress(Exception):
            callback()


def _handler(signum: int, frame: object) -> None:
    if _requested.is_set():  # the second signal: abort now, wherever we are
        raise KeyboardInterrupt
    request(signal.Signals(signum).name)


def installed() -> bool:
    return bool(_previous)


def install() -> bool:
    """Route SIGINT, SIGTERM and SIGHUP to the stop flag; False where that is impossible (not the
    main thread: signals only reach the main thread) or already done."""
    if installed() or threading.current_thread() is not threading.main_thread():
        return False
    for sig in STOP_SIGNALS:
        _previous[sig] = signal.signal(sig, _handler)
    return True


def wait_for(future: Future[T], poll_s: float, check: Optional[Callable[[], None]] = None) -> T:
    """future.result(), waking every `poll_s` so this thread's signal handlers run meanwhile (a second
    Ctrl-C); `check` is called at each wake while the future is not done (e.g. a stop request raised there)."""
    while True:
        if check is not None and not future.done():
            check()
        try:
            return future.result(timeout=poll_s)
        except TimeoutError:
            continue


def ignore() -> None:
    """Ignore SIGINT, SIGTERM and SIGHUP: a worker process whose launching process decides when to
    stop (a Ctrl-C reaches every process of the terminal's group)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def uninstall() -> None:
    """Put the handlers `install` replaced back, and forget every request and callback."""
    for sig, old in _previous.items():
        signal.signal(sig, old)
    _previous.clear()
    reset()


def reset() -> None:
    _requested.clear()
    _reason.clear()
    _on_stop.clear()


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for the block unless someone outside it (the CLI) already has: a run
    started from Python (aecli.run, tests) gets the same stop behaviour, and leaves nothing behind."""
    mine = install()
    try:
        yield
    finally:
        if mine:
            uninstall()


@contextlib.contextmanager
def watch_file(path: Optional[Path]) -> Iterator[None]:
    """While the block runs, a stop request also comes from `path` appearing (a sweep's stop file,
    written by the launching process, seen by jobs in other processes or on other machines)."""
    if path is None:
        yield
        return
    if path.exists():
        request(f"the sweep's stop file {path}")
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_INTERVAL_S):
            if path.exists():
                request(f"the sweep's stop file {path}")
                return

    watcher = threading.Thread(target=watch, name="aecli-stop-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        if path.exists() and not requested():  # it appeared since the watcher last looked
            request(f"the sweep's stop file {path}")
