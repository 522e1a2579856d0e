"""Files and folders written and read safely: atomic writes that never follow a link, appends that
refuse to, reads and appends that refuse a FIFO or device instead of blocking on it, and one rule,
`claim_folder`, for every folder aecli writes: never another run's, and locked against a second writer.

Light on purpose (no torch): the sweep's launching process, the report and the MNIST
download use it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Optional, TextIO

from aecli.errors import ConfigError

LOCK_FILE = ".aecli.lock"  # held (flock) by the process writing the folder; names it for a second writer


NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows
NON_BLOCKING = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for its other end


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
    ~/.bashrc` raises OSError instead of growing the file it points to) or to open anything but a
    regular file (a FIFO planted as aecli.log would block the run forever)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NO_FOLLOW | NON_BLOCKING, 0o644)
    except OSError as err:
        if err.errno == errno.ENXIO:  # a FIFO nobody reads: opening it would have blocked
            raise NotRegularFile(path, "FIFO (named pipe)") from None
        raise
    return os.fdopen(_regular(fd, path), "a", newline="")


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading in binary, if it is a regular file (a link to one is followed: the
    user may name one); NotRegularFile (an OSError) for a FIFO, device or socket, which would block
    forever or never end, checked without blocking."""
    fd = os.open(path, os.O_RDONLY | NON_BLOCKING)
    return os.fdopen(_regular(fd, Path(path)), "rb")


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file (see open_regular) of at most `limit` bytes; FileTooLarge (an
    OSError) for a larger one, found without reading more than `limit` + 1 bytes."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(Path(path), limit)
    return data


def _regular(fd: int, path: Path) -> int:
    """`fd`, switched back to blocking, if it is a regular file; else closed, and NotRegularFile."""
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(path, special_kind(mode))
    os.set_blocking(fd, True)
    return fd


class NotRegularFile(OSError):
    """A FIFO, device, socket or folder where aecli reads or appends a file."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(errno.EINVAL, f"a {kind}, not a regular file", str(path))


class FileTooLarge(OSError):
    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(errno.EFBIG, f"larger than the {limit} bytes aecli reads from it", str(path))


# ------------------------------------------------------------ folders and locks
# One rule for every folder aecli writes (a run, a resumed run, a sweep, a sweep's job, a
# reproduction): `claim_folder`, called where the folder is chosen. The folder is new (absent or
# empty) or the very folder being continued, a sweep job's lies inside its sweep folder, a folder
# being continued holds nothing but plain files and folders, and the folder is locked for this
# process. So no run, job or reproduction ever lands on another's files.
_held_locks: dict[Path, list[int]] = {}  # folder -> [fd, depth]: this process's locks (re-entrant)


def claim_folder(
    path: str | Path,
    key: str = "hydra.run.dir",
    resume_of: str | Path | None = None,
    inside: Optional[Path] = None,
    what: Optional[str] = None,
) -> Path:
    """The folder aecli is about to write, created and locked for this process; one sentence naming
    `what` (default `key=path`) when it cannot be: an empty name, a file, a folder that already holds
    something (unless it is `resume_of`, the folder being continued), another folder than `resume_of`,
    a folder not strictly inside `inside` (a sweep job's outside its sweep folder), a link, FIFO, device
    or socket inside a folder being continued, no permission, a name too long, another process writing it."""
    text = os.fspath(path)
    what = what or f"{key}={text}"
    if not text.strip():
        raise ConfigError(f"{key}={text!r} is empty, which would write into the current directory; name a folder")
    folder = Path(text).expanduser()
    try:
        if resume_of is not None and folder.resolve() != Path(resume_of).expanduser().resolve():
            raise ConfigError(
                f"{what} is not {resume_of}, the run being continued: a resumed run writes only into its own "
                f"folder; leave {key} out"
            )
        if inside is not None and (folder.resolve() == inside.resolve() or not is_inside(folder, inside)):
            raise ConfigError(
                f"{what} is not inside the sweep folder {inside}; every job writes into a new folder of its own "
                f"there (hydra.sweep.subdir's default ${{hydra.job.num}})"
            )
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise ConfigError(f"{what} is a file, not a folder; name a new folder")
        if resume_of is None and folder.is_dir() and any(folder.iterdir()):
            resume = "" if inside is not None else f", or continue that run with resume={text}"
            raise ConfigError(
                f"{what} already holds files (another run's?); aecli never writes over them: name a new folder{resume}"
            )
        if resume_of is not None:
            check_plain_tree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lock_folder(folder)
    except OSError as err:
        raise ConfigError(f"{what} cannot be used as a folder to write into: {err.strerror or err}") from None
    return folder


def is_inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links and `..` resolved, is `folder` or lies under it."""
    return path.resolve().is_relative_to(folder.resolve())


_job_claims: dict[Path, Any] = {}  # a sweep job's folder (resolved) -> the job number that claimed it
_job_refusals: dict[Path, str] = {}  # a sweep job's folder (as Hydra named it) -> why it was refused


def claim_job_folder(job_dir: Path, sweep_dir: Path, job: Any) -> Optional[str]:
    """Claim a sweep job's folder as `claim_folder` claims any (new, strictly inside the sweep folder,
    locked); None when it is the job's, else the sentence saying why not (also kept for `job_refusal`).
    Hydra asks twice per job (aecli.config's hydra.output_subdir resolver): the job that claimed a folder
    gets it again; any other job is refused."""
    key = job_dir.resolve()
    if key in _job_claims and _job_claims[key] == job:
        return None
    try:
        claim_folder(job_dir, "hydra.sweep.subdir", inside=sweep_dir, what=f"job {job}'s folder {job_dir}")
    except ConfigError as err:
        _job_refusals[job_dir] = str(err)
        return str(err)
    _job_claims[key] = job
    return None


def job_refusal(job_dir: Path) -> Optional[str]:
    """Why this sweep job's folder was refused to it (nothing was written there), or None."""
    return _job_refusals.get(job_dir)


def release_job_folder(job_dir: Path) -> None:
    """The job has ended: its folder's lock goes back (a sweep of a thousand jobs keeps no thousand locks)."""
    key = job_dir.resolve()
    if _job_claims.pop(key, None) is not None:
        unlock_folder(key)


def holds_lock(folder: Path) -> bool:
    """Whether this process has claimed or locked `folder` (a resolved path)."""
    return folder in _held_locks


def check_plain_tree(folder: Path) -> None:
    """A folder to continue holds only plain files and folders: no symbolic link (aecli never makes
    one, and writing there could reach the file it points to), and no FIFO, device or socket (reading
    or appending one blocks forever or never ends). ConfigError naming the first one found."""
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            entry = Path(root) / name
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ConfigError(
                    f"{entry} is a symbolic link (to {os.readlink(entry)}); aecli never makes links in a run "
                    f"folder and will not write into one that has them: remove it first"
                )
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ConfigError(
                    f"{entry} is a {special_kind(mode)}, not a file; aecli never makes one in a run folder and will "
                    f"not read or append to it (it could block forever): remove it first"
                )


def special_kind(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, in words."""
    if stat.S_ISDIR(mode):
        return "folder"
    kinds = [(stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")]
    kinds += [(stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link")]
    return next((name for test, name in kinds if test(mode)), "special file")


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
