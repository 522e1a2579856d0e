"""Files and folders written safely: atomic writes that never follow a link, appends that refuse
to, and run folders that are never overwritten and are locked against a second writer.

Light on purpose (no torch): the sweep's launching process, the report and the MNIST
download use it too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from aecli.errors import ConfigError

LOCK_FILE = ".aecli.lock"  # held (flock) by the process writing the folder; names it for a second writer


NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(file)` on a temporary sibling of `path`, fsync it, then rename it into place.

    Every file aecli writes goes through here (or `open_append`): readers see the old version or
    the new one, never half of one, and a link planted at `path` is replaced, never written
    through (a rename replaces the link itself). The temporary name carries the process id, so
    concurrent writers never share one; it is removed again when writing fails (a full disk,
    a second Ctrl-C), so no `.name.<pid>.tmp` is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a dead process's leftover of the same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and not err.filename:  # a write into the file: say which file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def open_append(path: Path) -> TextIO:
    """`path` opened for appending text, refusing to follow a link (a planted `metrics.csv ->
    ~/.bashrc` raises OSError instead of growing the file it points to)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NO_FOLLOW, 0o644)
    return os.fdopen(fd, "a", newline="")


# ------------------------------------------------------------ folders and locks
# A run folder belongs to one writer at a time, and a new run never lands in a folder that holds
# anything: the old checkpoints would be replaced and the old figures left beside new numbers.
_held_locks: dict[Path, list[int]] = {}  # folder -> [fd, depth]: this process's locks (re-entrant)


def prepare_run_folder(path: str | Path, resuming: bool = False, key: str = "hydra.run.dir") -> Path:
    """The folder a run writes into, created and locked for this process; one sentence naming `key`
    when it cannot be: an empty name, a file, a folder that already holds something (unless this
    run continues it: `resuming`), a link inside a folder being resumed, no permission, a name too
    long, or another process writing it."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{key}={text!r} is empty, which would write into the current directory; name a folder")
    folder = Path(text).expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{key}={text} is a file, not a folder; name a new folder")
        if folder.is_dir() and not resuming and any(folder.iterdir()):
            raise ConfigError(
                f"{key}={text} already holds files (another run's?); aecli never writes over them: "
                f"name a new folder, or continue that run with resume={text}"
            )
        if resuming:
            check_no_links(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lock_folder(folder)
    except OSError as err:
        raise ConfigError(f"{key}={text} cannot be used as a run folder: {err.strerror or err}") from None
    return folder


def check_no_links(folder: Path) -> None:
    """A run folder to continue holds no symbolic links: aecli never makes one, and writing there
    could reach the file a planted link points to. ConfigError naming the first link found."""
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            entry = Path(root) / name
            if entry.is_symlink():
                raise ConfigError(
                    f"{entry} is a symbolic link (to {os.readlink(entry)}); aecli never makes links in a run "
                    f"folder and will not write into one that has them: remove it first"
                )


def lock_folder(folder: Path) -> None:
    """Take `folder`'s lock for this process (again, if it already holds it), or raise ConfigError
    naming the process that holds it. The lock is an flock on `.aecli.lock`: the system drops it
    when its holder exits, however it exits, so a killed run never leaves its folder locked."""
    key = folder.resolve()
    if key in _held_locks:
        _held_locks[key][1] += 1
        return
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT | NO_FOLLOW, 0o644)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; folders are still never overwritten
        _held_locks[key] = [fd, 1]
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ConfigError(
            f"{folder} is being written by {holder}; wait for it to end (or stop it) before running there"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"aecli pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode(), 0)
    _held_locks[key] = [fd, 1]


def unlock_folder(folder: Path) -> None:
    """Give back one `lock_folder` of this process; the last one releases the lock."""
    key = folder.resolve()
    held = _held_locks.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _held_locks[key]
        os.close(held[0])  # closing the descriptor releases the flock


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """`folder` locked for this process while the block runs."""
    lock_folder(folder)
    try:
        yield
    finally:
        unlock_folder(folder)


def is_plain_file_name(name: Any) -> bool:
    """A file name with no folder part: what a config value may name inside the run folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )
