"""The user's own data: `dataset=file dataset.path=points.csv` (or .npy, .npz).

Rows are samples, columns are values. A .csv file may have a header (detected: a first row that
is not all numbers) and may use `,`, `;` or tabs between values; `columns` picks some columns (the
others may hold anything, e.g. ids), and `label_column` names one that colours the latent plots
instead of being learnt: whole numbers or class names give one colour per class, other numbers a
continuous scale. An .npy/.npz array of shape (n, height, width) is taken as images (flattened
rows, their image shape kept), which `model=conv` needs; rows of a table are images when
`image_shape` says so. The rows are split by a seeded permutation, optionally standardised with
the training rows' mean and deviation, and, for 2-D data, framed for the error map.

Every problem with the file is one sentence naming the file and where: missing, not numeric
(which line and column), NaN, infinite or empty values (how many rows; `drop_nonfinite=true`
drops them), ragged rows, too few rows, an image shape that does not fit. Arrays are read
without pickle: an array of Python objects is refused from its header, before any of it is read.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Optional, Union

import numpy as np
import numpy.lib.format as npy_format

from aecli.data.base import DATA_COPIES, FLOAT32_MAX, Dataset, DataSpec, split
from aecli.errors import ConfigError, first_sentence
from aecli.folders import open_regular
from aecli.memory import check_file_budget, size_text
from aecli.plugins import finite, require

log = logging.getLogger("aecli")

SUFFIXES = (".csv", ".npy", ".npz")
MAX_FILE_BYTES = 4 << 30  # a bigger file is refused before it is read (all data lives in memory)
GRID_MARGIN = 0.1  # the error map's window: the data's range, widened by this share on each side
SHOWN = 5  # how many bad rows or classes a message or colour-bar title lists
DELIMITERS = (";", "\t")  # besides ",": what a .csv's first line may separate its values with
MAX_CSV_LINE = 16 * 2**20  # characters in one row: 4 million values of 4 characters (a 2000 x 2000 image)
BUDGET_EVERY_ROWS = 4096  # rows between two checks of the values read so far against the memory budget

Column = Union[int, str]


@dataclass
class FileData(DataSpec):
    """Rows of numbers from a .csv, .npy or .npz file."""

    name: str = "file"
    path: str = ""  # the file: .csv (header detected), .npy, or .npz; recorded as an absolute path
    key: Optional[str] = None  # .npz: the array to read (null: its only array)
    columns: Optional[list[Column]] = None  # the columns to learn, by header name or 0-based index (null: all)
    label_column: Optional[Column] = None  # a column that colours the latent plots instead of being learnt
    scale: float = 1.0  # every learnt value is divided by this first (255: 8-bit pixels to [0, 1])
    standardize: bool = False  # zero mean, unit deviation per column, from the training rows
    drop_nonfinite: bool = False  # drop rows holding NaN, infinite or empty values instead of refusing the file
    train_fraction: float = 0.85  # share of rows that train; the rest validate (1: train on all)
    image_shape: Optional[list[int]] = None  # [height, width]: rows are flattened images (model=conv)

    def __post_init__(self) -> None:
        """Checked, then the path made absolute: config.yaml and the checkpoints record where the
        file is, so `aecli resume=` and `aecli.load_run(...).data()` find it from any folder."""
        super().__post_init__()
        self.path = os.path.abspath(os.path.expanduser(self.path))

    def check(self) -> None:
        super().check()
        require(bool(self.path.strip()), "path", self.path, "name a .csv, .npy or .npz file")
        require(Path(self.path).suffix.lower() in SUFFIXES, "path", self.path, "use a .csv, .npy or .npz file")
        require(0 < self.train_fraction <= 1, "train_fraction", self.train_fraction, "use a fraction in (0, 1]")
        require(finite(self.scale) and self.scale > 0, "scale", self.scale, "use a finite number > 0, e.g. 255")
        if self.columns is not None:
            unique = len(set(map(str, self.columns))) == len(self.columns)
            require(bool(self.columns) and unique, "columns", self.columns, "name each column once, or null for all")
        if self.image_shape is not None:
            shape = self.image_shape
            require(len(shape) == 2 and min(shape) >= 1, "image_shape", shape, "use [height, width], both >= 1")

    def build(self) -> Dataset:
        """Read, pick the columns, drop or refuse unusable rows, scale, split, standardise."""
        path = Path(self.path)
        table = read_table(path, self.key, self.label_column)
        values, labels = self._columns(table, path)
        keep = self._usable_rows(values, labels, table, path)
        values = values[keep] / self.scale
        image_shape = self._image_shape(table, values.shape[1], path)
        if image_shape is not None:
            check_pixel_range(values, path)
        self._check_split(len(values), path)
        data = self._split(values, table.origins[keep], None if labels is None else labels.rows(keep), table)
        if self.standardize:
            data = standardized(data, path)
        return replace(data, image_shape=image_shape, grid_extent=self._extent(data))

    def _split(self, values: np.ndarray, origins: np.ndarray, labels: Optional[Labels], table: Table) -> Dataset:
        """The seeded split, coloured by the labels, else by each row's place in the file (a gradient
        where the rows are in some order, such as time). Class labels are kept beside the rows too,
        as the digits' are: the mnist analyses' kNN accuracy reads them."""
        rng = np.random.default_rng(self.seed)
        if labels is None:
            color_label = f"{table.origin_name} in file"
            return split(self.name, values, origins.astype(np.float64), color_label, self.train_fraction, rng)
        classes = labels.values[:, None] if labels.values.dtype.kind == "i" else None
        names = (labels.name,) if classes is not None else ()
        title = labels.title()
        return split(self.name, values, labels.values, title, self.train_fraction, rng, None, classes, names)

    def check_batches(self, batch_size: int, n_train: int) -> Optional[str]:
        if n_train < batch_size:
            return (
                f"dataset.path={self.path} has {plural(n_train, 'training row')}, fewer than one batch of "
                f"trainer.batch_size={batch_size}; lower trainer.batch_size or add rows"
            )
        return None

    def _columns(self, table: Table, path: Path) -> tuple[np.ndarray, Optional[Labels]]:
        """The columns to learn (`columns`, else all but the label column) and the labels. Indices
        count the file's own columns, the label column included."""
        if table.image_shape is not None and (self.columns is not None or self.label_column is not None):
            raise ConfigError(
                f"{path} holds images of shape {table.values.shape[0]}x{table.image_shape[0]}x{table.image_shape[1]}, "
                f"which have no columns to pick; leave dataset.columns and dataset.label_column null"
            )
        header, width = table.header, table.values.shape[1]
        label = (
            None if self.label_column is None else column_index(self.label_column, header, width, "label_column", path)
        )
        if self.columns is not None:
            picked = [column_index(c, header, width, "columns", path) for c in self.columns]
        else:
            picked = [i for i in range(width) if i != label]
        if label is not None and label in picked:
            raise ConfigError(
                f"dataset.label_column={self.label_column!r} is also one of dataset.columns; a label is not learnt"
            )
        if not picked:
            raise ConfigError(f"{path} has no column to learn besides dataset.label_column={self.label_column!r}")
        for column in picked:
            if column in table.not_numbers:
                line, text = table.not_numbers[column]
                name = table.column_name(column)
                raise ConfigError(f"{path} line {line}, {name} holds {text.strip()[:40]!r}, which is not a number")
        if label is None:
            return table.values[:, picked], None
        raw = table.label_texts if table.label_texts is not None else table.values[:, label]
        return table.values[:, picked], Labels.read(raw, table.column_name(label, quoted=False))

    def _usable_rows(self, values: np.ndarray, labels: Optional[Labels], table: Table, path: Path) -> np.ndarray:
        """The rows to keep: all, or (drop_nonfinite) those without NaN, infinite or empty values. A value
        beyond float32's range once divided by `scale` (1e39) counts as infinite: the points are float32."""
        with np.errstate(over="ignore", invalid="ignore"):
            bad = np.asarray(~(np.abs(values / self.scale) <= FLOAT32_MAX).all(axis=1))  # NaN compares False: bad
        if labels is not None:
            bad |= labels.missing
        what = "NaN, infinite, empty or out-of-range (beyond float32's 3.4e38) values"
        if bad.any() and not self.drop_nonfinite:
            raise ConfigError(
                f"{path} has {plural(int(bad.sum()), 'row')} with {what} ({table.where(bad)}); "
                f"set dataset.drop_nonfinite=true to drop them, or fix the file"
            )
        if bad.any():
            log.info("%s: dropped %d rows with %s (%s)", path, bad.sum(), what, table.where(bad))
        return np.flatnonzero(~bad)

    def _image_shape(self, table: Table, width: int, path: Path) -> Optional[tuple[int, int]]:
        """dataset.image_shape, checked against the rows; else an (n, height, width) array's own."""
        if self.image_shape is None:
            return table.image_shape
        height, image_width = self.image_shape
        if height * image_width != width:
            raise ConfigError(
                f"dataset.image_shape=[{height}, {image_width}] needs {height * image_width} values per row, but "
                f"{path} gives {width}; set it to the images' [height, width]"
            )
        if table.image_shape is not None and table.image_shape != (height, image_width):
            h, w = table.image_shape
            raise ConfigError(
                f"dataset.image_shape=[{height}, {image_width}] does not match the {h}x{w} images of {path}; "
                f"leave it null to use theirs"
            )
        return height, image_width

    def _check_split(self, n: int, path: Path) -> None:
        """At least one training and one validation row (train_fraction=1: validation is the training rows)."""
        if self.train_fraction >= 1:
            return
        n_train = int(round(self.train_fraction * n))
        if not 1 <= n_train < n:
            raise ConfigError(
                f"{path} has {plural(n, 'usable row')}, of which dataset.train_fraction={self.train_fraction} leaves "
                f"{'no training' if n_train < 1 else 'no validation'} row; add rows or set dataset.train_fraction=1"
            )

    def _extent(self, data: Dataset) -> Optional[tuple[float, float, float, float]]:
        """The error map's window: dataset.grid_extent, else the range of the 2-D data as it is learnt
        (standardised, if so), widened by GRID_MARGIN; a constant column gets a window around its value."""
        if self.grid_extent is not None:
            e = self.grid_extent
            return float(e[0]), float(e[1]), float(e[2]), float(e[3])
        if data.dim != 2:
            return None
        rows = np.concatenate([data.train.numpy(), data.val.numpy()]).astype(np.float64)
        lo, hi = rows.min(axis=0), rows.max(axis=0)
        pad = np.where(hi > lo, hi - lo, np.maximum(np.abs(lo), 1.0)) * GRID_MARGIN
        window = [lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]]
        x0, x1, y0, y1 = (float(v) for v in np.clip(window, -FLOAT32_MAX, FLOAT32_MAX))  # the grid is float32
        return x0, x1, y0, y1


# ------------------------------------------------------------------------ what a file holds
@dataclass
class Table:
    """A file's contents, before columns are chosen: every cell as float64 (NaN where a .csv cell is
    empty or not a number), and what the messages and labels need to know about them."""

    values: np.ndarray  # (rows, columns)
    origins: np.ndarray  # each row's line in a .csv (1-based), or its index in an array (0-based)
    origin_name: str = "row"  # "line" (.csv) or "row" (arrays)
    header: Optional[list[str]] = None  # a .csv's column names
    not_numbers: dict[int, tuple[int, str]] = field(default_factory=dict)  # column: its first (line, text) not a number
    label_texts: Optional[list[str]] = None  # a .csv's label column as text: labels may be class names
    image_shape: Optional[tuple[int, int]] = None  # an (n, height, width) array's (height, width)

    def column_name(self, column: int, quoted: bool = True) -> str:
        """`column 'y'` (a header's name), or `column 2`; unquoted: `y` or `column 2`."""
        if self.header is not None and column < len(self.header) and self.header[column]:
            return f"column {self.header[column]!r}" if quoted else self.header[column]
        return f"column {column}"

    def where(self, rows: np.ndarray) -> str:
        """`lines 4, 9, ...` or `rows 3, 8 (0-based)`: the first few rows a mask selects."""
        chosen = self.origins[rows][:SHOWN]
        listed = ", ".join(str(int(i)) for i in chosen) + (", ..." if int(rows.sum()) > SHOWN else "")
        return f"{self.origin_name}{'s' if len(chosen) > 1 else ''} {listed}" + (
            " (0-based)" if self.origin_name == "row" else ""
        )


@dataclass
class Labels:
    """The label column: classes (int64: whole numbers, or class names in sorted order) or numbers."""

    values: np.ndarray
    missing: np.ndarray  # NaN, infinite or empty labels: such rows count as unusable
    name: str
    classes: Optional[list[str]] = None  # the class names, where the labels were text

    @classmethod
    def read(cls, raw: Union[np.ndarray, list[str]], name: str) -> Labels:
        if isinstance(raw, list):  # a .csv's cells: numbers, or class names
            texts = [t.strip() for t in raw]
            if not all(is_number(t) for t in texts if t):
                classes = sorted({t for t in texts if t})
                code = {c: i for i, c in enumerate(classes)}
                values = np.array([code.get(t, -1) for t in texts], dtype=np.int64)
                return cls(values, values < 0, name, classes)
            raw = np.array([float(t) if t else np.nan for t in texts], dtype=np.float64)
        missing = ~np.isfinite(raw)
        present = raw[~missing]
        whole = bool(np.all(present == np.round(present)) and np.all(np.abs(present) < 2**53))
        return cls(np.where(missing, 0, raw).astype(np.int64) if whole else raw, missing, name)

    def rows(self, keep: np.ndarray) -> Labels:
        return replace(self, values=self.values[keep], missing=self.missing[keep])

    def title(self) -> str:
        """The colour bar's title: the column's name, and what each class number stands for."""
        if self.classes is None:
            return self.name
        named = ", ".join(f"{i} = {c[:20]}" for i, c in enumerate(self.classes[:SHOWN]))
        return f"{self.name} ({named}{', ...' if len(self.classes) > SHOWN else ''})"


def read_table(path: Path, key: Optional[str], label_column: Optional[Column]) -> Table:
    """A file's rows: a .csv's cells, or an array (a 1-D array is one column, a 3-D one images)."""
    if not path.exists():
        raise ConfigError(f"dataset.path={path} does not exist")
    if not path.is_file():
        raise ConfigError(f"dataset.path={path} is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{path} is {size_text(size)}, more than the {size_text(MAX_FILE_BYTES)} aecli reads")
    if size == 0:
        raise ConfigError(f"{path} is empty")
    if path.suffix.lower() == ".csv":
        return read_csv(path, label_column)
    values = read_array(path, key)
    image_shape = None
    if values.ndim == 3:  # (n, height, width): images, flattened
        image_shape = (int(values.shape[1]), int(values.shape[2]))
        values = values.reshape(len(values), -1)
    elif values.ndim == 1:
        values = values[:, None]
    elif values.ndim != 2:
        raise ConfigError(
            f"{path} holds an array of shape {values.shape}; use (rows, columns) or (rows, height, width)"
        )
    if len(values) == 0 or values.shape[1] == 0:
        raise ConfigError(f"{path} holds an array of shape {values.shape}, which has no values")
    return Table(values, np.arange(len(values)), image_shape=image_shape)


# ------------------------------------------------------------------------------- arrays
def read_array(path: Path, key: Optional[str]) -> np.ndarray:
    """An .npy array, or one array of an .npz, as float64. Its header is read first: an array of
    Python objects (which only pickle could read) or one too large for memory is refused before
    any of its data is read, and the data is then read with allow_pickle=False."""
    try:
        if path.suffix.lower() == ".npy":
            with open_regular(path) as f:
                check_array_header(f, path, "")
                f.seek(0)
                return np.asarray(npy_format.read_array(f, allow_pickle=False), dtype=np.float64)
        with open_regular(path) as file, zipfile.ZipFile(file) as archive:
            member = npz_member(archive, key, path)
            declared = archive.getinfo(member).file_size  # what it inflates to, before a byte is inflated
            check_file_budget(declared, f"{path} array {member[:-4]!r}, {declared} bytes inflated,")
            with archive.open(member) as f:
                check_array_header(f, path, f" array {member[:-4]!r}")
            with archive.open(member) as f:  # a zip member cannot seek back: open it again
                return np.asarray(npy_format.read_array(f, allow_pickle=False), dtype=np.float64)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:  # truncated, or not numpy's at all
        if isinstance(err, ConfigError):
            raise
        kind = "a numpy array" if path.suffix.lower() == ".npy" else "an .npz file"
        raise ConfigError(f"{path} cannot be read as {kind} ({first_sentence(' '.join(str(err).split()))})") from None


def npz_member(archive: zipfile.ZipFile, key: Optional[str], path: Path) -> str:
    """The archive member holding array `key`, or its only array."""
    names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
    if key is None and len(names) != 1:
        held = f"the arrays {', '.join(names)}" if names else "no arrays"
        raise ConfigError(f"{path} holds {held}; choose one with dataset.key=<name>")
    chosen = key if key is not None else names[0]
    if chosen not in names:
        raise ConfigError(f"dataset.key={chosen} is not an array of {path}; it holds {', '.join(names) or 'none'}")
    return f"{chosen}.npy"


def check_array_header(f: IO[bytes], path: Path, what: str) -> None:
    """ConfigError unless the .npy header in `f` describes real numbers that fit in memory."""
    try:
        version = npy_format.read_magic(f)
        reader = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}[version]
        shape, _, dtype = reader(f)
    except (ValueError, KeyError, EOFError, OSError) as err:
        reason = first_sentence(" ".join(str(err).split())) or f"format version {err}"
        raise ConfigError(f"{path}{what} cannot be read as a numpy array ({reason})") from None
    if dtype.hasobject:
        raise ConfigError(
            f"{path}{what} holds Python objects, which only pickle could read and aecli never unpickles; "
            f"save an array of numbers"
        )
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(dtype, np.complexfloating):
        raise ConfigError(f"{path}{what} holds {dtype} values, not real numbers")
    need = math.prod(shape) * 8 * DATA_COPIES  # float64, and the copies the split and tensors make
    check_file_budget(need, f"{path}{what} of shape {shape}")


# --------------------------------------------------------------------------------- .csv
def read_csv(path: Path, label_column: Optional[Column]) -> Table:
    """A .csv file's cells (see CsvCells for what they become), streamed: no line is ever read whole
    beyond MAX_CSV_LINE characters, and the values read so far are held to the memory budget."""
    cells = CsvCells(path, label_column)
    with open_csv(path) as f:
        reader = csv.reader(bounded_lines(f, path), delimiter=sniff_delimiter(path))
        try:
            for fields in reader:
                if any(v.strip() for v in fields):  # not a blank line
                    cells.add(fields, reader.line_num)
        except csv.Error as err:  # a NUL byte, a field beyond csv's size limit
            raise ConfigError(f"{path} line {reader.line_num} is not valid CSV ({err})") from None
    return cells.table()


def open_csv(path: Path) -> IO[str]:
    """The file as text (a spreadsheet's BOM dropped, bad bytes replaced), if it is a regular file."""
    return io.TextIOWrapper(open_regular(path), encoding="utf-8-sig", errors="replace", newline="")


def bounded_lines(f: IO[str], path: Path) -> Iterator[str]:
    """The file's lines, each read at most MAX_CSV_LINE characters at a time: a file with no line end
    (1 GB of one field) is refused after that much, instead of being read whole into memory."""
    number = 0
    while line := f.readline(MAX_CSV_LINE + 1):
        number += 1
        if len(line) > MAX_CSV_LINE:
            raise ConfigError(
                f"{path} line {number} is longer than {MAX_CSV_LINE // 2**20} Mi characters, which no table row "
                f"of numbers needs; is it a CSV file?"
            )
        yield line


@dataclass
class CsvCells:
    """A .csv file's cells, row by row. The first row is a header when a cell outside the label
    column is neither a number nor empty. Empty cells are NaN (missing values); a cell that is not
    a number is NaN too, and noted per column, so that only a column the run learns makes it an
    error (others may hold ids or names). The label column is kept as text too: class names."""

    path: Path
    label_column: Optional[Column]
    header: Optional[list[str]] = None
    width: int = 0  # values per row, from the first row
    label: Optional[int] = None  # the label column's index
    cells: array = field(default_factory=lambda: array("d"))  # float64 row after row: 8 bytes a value
    lines: array = field(default_factory=lambda: array("q"))
    label_texts: list[str] = field(default_factory=list)
    not_numbers: dict[int, tuple[int, str]] = field(default_factory=dict)

    def add(self, fields: list[str], line: int) -> None:
        if not self.width and self.is_header(fields):
            return
        if len(fields) != self.width:
            raise ConfigError(
                f"{self.path} line {line} has {plural(len(fields), 'value')} where the rows above have {self.width}"
            )
        for column, text in enumerate(fields):
            if column == self.label:
                self.label_texts.append(text)
            value = number(text)
            if value is None:
                self.not_numbers.setdefault(column, (line, text))
            self.cells.append(math.nan if value is None else value)
        self.lines.append(line)
        if len(self.lines) % BUDGET_EVERY_ROWS == 0:  # what the rows so far will take, checked as they come
            check_file_budget(len(self.cells) * 8 * DATA_COPIES, f"{self.path} up to line {line}")

    def is_header(self, fields: list[str]) -> bool:
        """Read the first row: its width, where the label column is, and whether it is a header."""
        self.width = len(fields)
        if isinstance(self.label_column, int):
            self.label = column_index(self.label_column, None, self.width, "label_column", self.path)
        if not any(not is_number(v) for i, v in enumerate(fields) if i != self.label and v.strip()):
            return False
        self.header = [v.strip() for v in fields]
        if self.label_column is not None:
            self.label = column_index(self.label_column, self.header, self.width, "label_column", self.path)
        return True

    def table(self) -> Table:
        check_file_budget(len(self.cells) * 8 * DATA_COPIES, f"{self.path}'s {len(self.lines)} rows")
        if not self.lines:
            raise ConfigError(f"{self.path} has a header but no rows" if self.header else f"{self.path} holds no rows")
        values = np.frombuffer(self.cells, dtype=np.float64).reshape(len(self.lines), self.width).copy()
        if self.label is not None:
            self.not_numbers.pop(self.label, None)  # the label column may hold class names
        origins = np.frombuffer(self.lines, dtype=np.int64).copy()
        labels = self.label_texts if self.label is not None else None
        return Table(values, origins, "line", self.header, self.not_numbers, labels)


def sniff_delimiter(path: Path) -> str:
    """`,`, unless the first line has none and has `;` or a tab (what spreadsheets export in some locales)."""
    with open_csv(path) as f:
        first = next((line for line in bounded_lines(f, path) if line.strip()), "")
    if "," in first:
        return ","
    return next((d for d in DELIMITERS if d in first), ",")


def plural(n: int, noun: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def is_number(text: str) -> bool:
    return number(text) is not None


def number(text: str) -> Optional[float]:
    """The cell's number (nan, inf included), NaN for an empty cell, None for text."""
    if not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def column_index(column: Column, header: Optional[list[str]], width: int, key: str, path: Path) -> int:
    """A column named by its header name or its 0-based index."""
    if isinstance(column, str):
        if header is None or column not in header:
            known = f"its columns are {', '.join(header)}" if header else "it has no header; use 0-based indices"
            raise ConfigError(f"dataset.{key} names the column {column!r}, which {path} does not have ({known})")
        return header.index(column)
    if not 0 <= column < width:
        raise ConfigError(f"dataset.{key} names column {column}, but {path} has columns 0 to {width - 1}")
    return column


# ----------------------------------------------------------------------------- scaling
def check_pixel_range(values: np.ndarray, path: Path) -> None:
    """Say so when images are not in [0, 1]: the image figures draw that range (black to white), so
    8-bit pixels would show as white squares, and large values train slowly at the default lr."""
    lo, hi = float(values.min()), float(values.max())
    if lo < 0 or hi > 1:
        hint = "; dataset.scale=255 maps 8-bit pixels there" if hi > 1 else ""
        shown = "the image figures show 0 (black) to 1 (white)"
        log.warning("%s: pixel values span %g to %g, %s%s", path, lo, hi, shown, hint)


def standardized(data: Dataset, path: Path) -> Dataset:
    """Every column to zero mean and unit deviation, with the training rows' statistics."""
    train = data.train.double()
    mean, std = train.mean(dim=0), train.std(dim=0, unbiased=False)
    flat = (std == 0) | ~std.isfinite()
    if bool(flat.any()):
        column = int(flat.nonzero()[0])
        raise ConfigError(
            f"{path} column {column} of the learnt columns is constant over the training rows, so it cannot be "
            f"standardised; drop it with dataset.columns or set dataset.standardize=false"
        )
    scale = lambda x: ((x.double() - mean) / std).float()  # noqa: E731
    return replace(data, train=scale(data.train), val=scale(data.val))
