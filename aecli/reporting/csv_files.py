"""The one reader of the numeric CSV files a run appends to (metrics.csv, steps.csv).

Those files grow by one flushed row at a time, so a crash or `kill -9` in the middle of an
append leaves the last line cut short (`12,3,0.04` becomes `12,3,` or `12`), and a disk that
lost its tail can garble any line. Every reader of them (resume, the sweep report, the Python
API, the step analyses) goes through `NumericRows`, which streams the file line by line, keeps
every complete well-formed row and drops the others, with a warning naming the file and line
(the first few; the rest are counted): a damaged row costs that row, never the whole read.

    rows = NumericRows(path, ["step", "epoch", "loss"])
    for step, epoch, loss in rows: ...      # floats; rows.problem says what was dropped
    columns, problem = read_columns(path, ["epoch", "val_loss"])   # name -> float64 array
    steps_through(path, epoch)              # the steps.csv rows a resumed run keeps
"""

from __future__ import annotations

import io
import logging
import math
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Optional

import numpy as np

from aecli.folders import NotRegularFile, open_regular

log = logging.getLogger("aecli")

MAX_LINE = 64 * 1024  # aecli's rows are a few dozen characters: a longer line is garbage, skipped unread
INTEGER_COLUMNS = frozenset({"epoch", "step"})  # counters: whole numbers >= 0
WARNED_LINES = 3  # dropped lines warned about one by one; the rest are counted in `problem`
TOO_LONG = "\0 longer than 64 KiB"  # stands for an overlong line (told apart by identity, not text)


class NumericRows:
    """The rows of a numeric CSV file with a header line, as tuples of floats of `columns` (all of
    the header's columns when None), streamed. A row is dropped when its line is cut short (no line
    end: aecli ends every row it writes), has another field count than the header, or has a field
    that is not a number, a counter (`epoch`, `step`) that is not a whole number >= 0, or a non-finite
    value outside the `*loss` columns (only a loss can be inf or nan). A missing file has no rows."""

    def __init__(self, path: Path, columns: Optional[Sequence[str]] = None) -> None:
        self.path = Path(path)
        self.names = list(columns) if columns is not None else []  # the columns of each row yielded
        self.line = 0  # the line number last read (1: the header)
        self.dropped = 0
        self.first_dropped: list[str] = []  # "line N: why", the first few
        self.unreadable: Optional[str] = None  # why nothing at all could be read

    @property
    def problem(self) -> Optional[str]:
        """One sentence about what was not read (after iterating), or None when everything was."""
        if self.unreadable is not None:
            return f"{self.path.name}: {self.unreadable}"
        if not self.dropped:
            return None
        more = f"; {self.dropped - len(self.first_dropped)} more" if self.dropped > len(self.first_dropped) else ""
        rows = "row" if self.dropped == 1 else "rows"
        return f"{self.path.name}: dropped {self.dropped} unreadable {rows} ({'; '.join(self.first_dropped)}{more})"

    def __iter__(self) -> Iterator[tuple[float, ...]]:
        try:
            binary = open_regular(self.path)  # a FIFO or device would block or never end
        except FileNotFoundError:
            return
        except OSError as err:
            self._give_up(
                "not a regular file" if isinstance(err, NotRegularFile) else f"cannot be read ({err.strerror})"
            )
            return
        with io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="") as f:
            header = self._next_line(f)
            if header is None or header is TOO_LONG or not header.endswith("\n"):
                self._give_up("empty (no header line)" if header is None else "no complete header line")
                return
            names = header.rstrip("\r\n").split(",")
            self.names = self.names or names
            missing = [c for c in self.names if c not in names]
            if missing:
                self._give_up(f"no {missing[0]!r} column in its header (line 1)")
                return
            index = [names.index(c) for c in self.names]
            while (line := self._next_line(f)) is not None:
                values, why = self._parse(line, names)
                if why is not None:
                    self._drop(why)
                elif values is not None:
                    yield tuple(values[i] for i in index)

    def _next_line(self, f: IO[str]) -> Optional[str]:
        """The next line (with its line end), at most MAX_LINE characters read into memory; a longer
        line is skipped through to its end and returned as TOO_LONG."""
        line = f.readline(MAX_LINE + 1)
        if not line:
            return None
        self.line += 1
        if len(line) <= MAX_LINE or line.endswith("\n"):
            return line
        while (rest := f.readline(MAX_LINE)) and not rest.endswith("\n"):
            pass
        return TOO_LONG

    def _parse(self, line: str, names: list[str]) -> tuple[Optional[list[float]], Optional[str]]:
        """(every field's value, None), (None, why the row is dropped) or (None, None) for a blank line."""
        if line is TOO_LONG:
            return None, "longer than 64 KiB"
        if not line.endswith("\n"):
            return None, "cut short with no line end"
        text = line.rstrip("\r\n")
        if not text.strip():
            return None, None
        fields = text.split(",")
        if len(fields) != len(names):
            return None, f"{len(fields)} field{'s' * (len(fields) != 1)} where the header has {len(names)}"
        values = []
        for name, field in zip(names, fields):
            try:
                value = float(field)
            except ValueError:
                return None, f"{name}={field[:20]!r} is not a number"
            if name in INTEGER_COLUMNS and not (value >= 0 and value.is_integer()):
                return None, f"{name}={field[:20]!r} is not a whole number >= 0"
            if not math.isfinite(value) and not name.endswith("loss"):
                return None, f"{name}={field[:20]!r} is not finite"
            values.append(value)
        return values, None

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if len(self.first_dropped) < WARNED_LINES:
            self.first_dropped.append(f"line {self.line}: {why}")
            log.warning("%s: line %d is left out: %s", self.path, self.line, why)

    def _give_up(self, why: str) -> None:
        self.unreadable = why
        log.warning("%s is not read: %s", self.path, why)


def read_columns(path: Path, columns: Optional[Sequence[str]] = None) -> tuple[dict[str, np.ndarray], Optional[str]]:
    """`columns` (all of the header's when None) of a numeric CSV file as float64 arrays, the
    unreadable rows left out, and the one-sentence problem (None when every row was read).
    A missing file gives empty columns (none at all when `columns` is None)."""
    rows = NumericRows(path, columns)
    values: list[array[float]] = []
    for row in rows:
        if not values:
            values = [array("d") for _ in row]
        for column, value in zip(values, row):
            column.append(value)
    if not values:
        values = [array("d") for _ in rows.names]
    return {name: np.asarray(column, dtype=np.float64) for name, column in zip(rows.names, values)}, rows.problem


def steps_through(path: Path, through_epoch: int) -> Iterator[tuple[int, int, float]]:
    """(step, epoch, loss) rows of a steps.csv that a run resumed from the checkpoint of epoch
    `through_epoch` keeps: steps 1, 2, 3, ... in epoch order up to that epoch. Where the numbering
    breaks (a row dropped as unreadable, or rows out of order) it stops, with a warning: rows after
    a gap would give the resumed run's steps numbers that do not count its steps."""
    rows = NumericRows(path, ["step", "epoch", "loss"])
    kept, last_epoch = 0, 0
    for step, epoch, loss in rows:
        if epoch > through_epoch:  # logged after the checkpoint: the resumed run takes these steps again
            return
        if step != kept + 1 or epoch < last_epoch:
            log.warning(
                "%s: line %d and the rows after it are left out: step %d of epoch %d does not follow step %d",
                path,
                rows.line,
                step,
                epoch,
                kept,
            )
            return
        kept, last_epoch = kept + 1, int(epoch)
        yield kept, last_epoch, loss
