"""The MNIST files: where they live, how they are fetched and checked, and how IDX is read.

MNIST comes as four gzipped IDX files (60,000 training and 10,000 test images with
their labels). `load` finds them in one folder (`dataset.root`, else $AECLI_MNIST_DIR,
else ~/.cache/aecli/mnist). When some are missing it tries, in order: scikit-learn's
OpenML cache of `mnist_784` (local, never the network), then the standard mirrors
(only with download=true; each file checksummed, then moved into place atomically).
Whatever goes wrong ends in one ConfigError sentence naming the file or folder.

Checksums: a file whose name is a standard one AND whose size is the standard size
is taken to claim to be the real file, so its MD5 and SHA-256 must match the
published values. Files of other sizes (e.g. small generated test sets under the
standard names) are read without the checksum, but their IDX headers and byte
counts are still validated before anything is allocated.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from aecli.data.base import DATA_COPIES
from aecli.errors import ConfigError
from aecli.folders import atomic_write
from aecli.memory import check_file_budget

ENV_VAR = "AECLI_MNIST_DIR"
DEFAULT_ROOT = Path("~/.cache/aecli/mnist")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dims / 1 dim
READ_CHUNK = 1 << 20  # IDX data is read 1 MiB at a time
TRAILING_PROBE = 16  # bytes read past the data an IDX header declares: an honest file has none


@dataclass(frozen=True)
class StandardFile:
    """The published size and checksums of one distribution file."""

    size: int
    md5: str
    sha256: str


# The four files (byte-for-byte the originals), as in /work/shared/data/mnist/README.md.
STANDARD_FILES: dict[str, StandardFile] = {
    "train-images-idx3-ubyte.gz": StandardFile(
        9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": StandardFile(
        28881, "d53e105ee54ea40749a09fcbcd1e9432", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": StandardFile(
        1648877, "9fb629c4189551a2d022fa330f9573f3", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": StandardFile(
        4542, "ec29112dd5afa0611ce80d1b7f02629c", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
OPENML_TRAIN = 60000  # OpenML's mnist_784 is the 60,000 training images, then the 10,000 test images
DOWNLOAD_TIMEOUT_S = 60


@dataclass
class MnistArrays:
    """Raw uint8 images (n, rows, cols) and labels (n,) of both splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # where they came from, for the log


def resolve_root(root: Optional[str]) -> Path:
    """dataset.root, else $AECLI_MNIST_DIR, else ~/.cache/aecli/mnist."""
    chosen = root or os.environ.get(ENV_VAR) or str(DEFAULT_ROOT)
    return Path(chosen).expanduser()


def how_to_get(folder: Path) -> str:
    names = ", ".join(STANDARD_FILES)
    return (
        f"put {names} in {folder}, or point dataset.root or ${ENV_VAR} at a folder that has them "
        f"(e.g. torchvision's MNIST/raw), or run once online with dataset.download=true"
    )


# ------------------------------------------------------------------ reading IDX
def _gzip_size(path: Path) -> int:
    """The uncompressed size a .gz file declares in its last 4 bytes (ISIZE, mod 2**32)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:  # a gzip member is at least a 10-byte header and an 8-byte trailer
            raise ConfigError(f"{path} is not a gzip file (only {f.tell()} bytes); delete it and fetch it again")
        f.seek(-4, os.SEEK_END)
        return struct.unpack("<I", f.read(4))[0]


def read_idx(path: Path, magic: int, limit: Optional[int] = None) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes as a uint8 array (count, *dims), at most `limit` items.

    Memory follows the header, held to the memory budget (aecli.memory), and the bytes actually there (read in
    chunks), never the gzip trailer's ISIZE, which is mod 2^32 and easily forged. Nothing past the
    declared data is decompressed: a full read looks TRAILING_PROBE bytes further, where an honest
    file ends (and reaching its end makes gzip verify the CRC)."""
    ndim = 3 if magic == IMAGES_MAGIC else 1
    declared = _gzip_size(path)
    try:
        with gzip.open(path, "rb") as f:
            count, shape = _read_header(f, path, magic, ndim, declared)
            item = math.prod(shape)
            n = count if limit is None else min(limit, count)
            # the bytes, then each as float64 and the copies the split and tensors make: before a byte is read
            check_file_budget(n * item * 8 * DATA_COPIES, f"{path}, declaring {n} items of {item} bytes,")
            body = _read_at_most(f, n * item)
            if len(body) != n * item:
                raise ConfigError(f"{path} is truncated: {len(body)} of {n * item} data bytes present")
            extra = f.read(TRAILING_PROBE) if n == count else b""
            if extra:
                more = "+" if len(extra) == TRAILING_PROBE else ""
                raise ConfigError(
                    f"{path} has {len(extra)}{more} bytes after the data its IDX header declares; "
                    f"delete it and fetch it again"
                )
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ConfigError(
            f"{path} is corrupt or truncated ({type(err).__name__}: {err}); delete it and fetch it again"
        ) from None
    return np.frombuffer(body, dtype=np.uint8).reshape((n, *shape))


def _read_header(f: gzip.GzipFile, path: Path, magic: int, ndim: int, declared: int) -> tuple[int, tuple[int, ...]]:
    """The item count and item shape an IDX header declares, checked against `magic` and the gzip
    trailer's size (a cheap early sign of a truncated download, never trusted for memory)."""
    header = f.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise ConfigError(f"{path} is truncated: it ends inside the IDX header")
    found, *dims = struct.unpack(f">{1 + ndim}I", header)
    if found != magic:
        kind = "image" if magic == IMAGES_MAGIC else "label"
        raise ConfigError(f"{path} is not an IDX {kind} file: its magic number is {found}, expected {magic}")
    count, shape = dims[0], tuple(dims[1:])
    item = math.prod(shape)  # Python ints: numpy's product of two uint32 dims could overflow
    if count == 0 or item == 0:
        raise ConfigError(f"{path} holds no data: its IDX header says {count} x {shape}")
    expected = len(header) + count * item
    if expected % 2**32 != declared:
        raise ConfigError(
            f"{path} is corrupt or truncated: its IDX header promises {expected} bytes "
            f"but the gzip file holds {declared} (mod 2^32); delete it and fetch it again"
        )
    return count, shape


def _read_at_most(f: gzip.GzipFile, size: int) -> bytearray:
    """Up to `size` bytes, fewer where the stream ends first, READ_CHUNK at a time: memory grows
    with the bytes actually there, not with what a header claims (f.read(size) allocates `size` first)."""
    body = bytearray()
    while len(body) < size:
        chunk = f.read(min(READ_CHUNK, size - len(body)))
        if not chunk:
            break
        body += chunk
    return body


# ------------------------------------------------------------------ checksums
def file_digests(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def verify_checksum(path: Path) -> None:
    """A standard-named file of the standard size must be the real one (see the module docstring)."""
    standard = STANDARD_FILES.get(path.name)
    if standard is None or path.stat().st_size != standard.size:
        return
    md5, sha256 = file_digests(path)
    if (md5, sha256) != (standard.md5, standard.sha256):
        raise ConfigError(
            f"{path} has the standard size but not the standard checksum (SHA-256 {sha256}, "
            f"expected {standard.sha256}); delete it and fetch it again"
        )


# ------------------------------------------------------------------ fetching
def download(name: str, folder: Path) -> None:
    """Fetch one standard file from the first mirror that answers, verify both checksums,
    and move it into `folder` atomically (a half-written file never has the real name)."""
    standard = STANDARD_FILES[name]
    failures = []
    for mirror in MIRRORS:
        try:
            with urllib.request.urlopen(mirror + name, timeout=DOWNLOAD_TIMEOUT_S) as response:
                payload = response.read(standard.size + 1)  # a longer answer is wrong anyway: never read it all
        except (urllib.error.URLError, OSError, ValueError) as err:
            failures.append(f"{mirror}: {getattr(err, 'reason', err)}")
            continue
        md5, sha256 = hashlib.md5(payload).hexdigest(), hashlib.sha256(payload).hexdigest()
        if (md5, sha256) != (standard.md5, standard.sha256):
            failures.append(f"{mirror}: checksum mismatch")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / name, lambda f, payload=payload: f.write(payload))
        return
    raise ConfigError(
        f"MNIST file {name} is missing from {folder} and could not be downloaded "
        f"({'; '.join(failures)}); {how_to_get(folder)}"
    )


def from_openml_cache(limits: tuple[Optional[int], Optional[int]]) -> Optional[MnistArrays]:
    """scikit-learn's cached `mnist_784` (fetch_openml without download), split 60,000 / 10,000
    as the standard files are; None when there is no cache."""
    try:
        from sklearn.datasets import fetch_openml

        x, y = fetch_openml(
            "mnist_784", version=1, return_X_y=True, as_frame=False, parser="liac-arff", download_if_missing=False
        )
    except Exception:  # no cache (OSError), or a cache sklearn cannot read: not a source then
        return None
    images = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.uint8)
    train_limit, test_limit = limits
    return MnistArrays(
        images[:OPENML_TRAIN][:train_limit],
        labels[:OPENML_TRAIN][:train_limit],
        images[OPENML_TRAIN:][:test_limit],
        labels[OPENML_TRAIN:][:test_limit],
        "scikit-learn's OpenML cache of mnist_784",
    )


# ------------------------------------------------------------------ the loader
def _read_split(folder: Path, split: str, limit: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    image_name, label_name = SPLITS[split]
    for name in (image_name, label_name):
        verify_checksum(folder / name)
    images = read_idx(folder / image_name, IMAGES_MAGIC, limit)
    labels = read_idx(folder / label_name, LABELS_MAGIC, limit)
    if len(images) != len(labels):
        raise ConfigError(
            f"{folder / image_name} has {len(images)} images but {folder / label_name} has "
            f"{len(labels)} labels; the pair must match"
        )
    if labels.max() > 9:
        raise ConfigError(f"{folder / label_name} has label {labels.max()}; MNIST labels are digits 0-9")
    return images, labels


def load(
    root: Optional[str] = None,
    download_missing: bool = True,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
) -> MnistArrays:
    """Both splits as uint8 arrays (train_limit / test_limit: only the first N of each)."""
    for key, value in (("train_limit", train_limit), ("test_limit", test_limit)):
        if value is not None and value < 1:
            raise ConfigError(f"dataset.{key}={value} is not allowed: use a positive number of images or null")
    folder = resolve_root(root)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"dataset.root={str(folder)!r} is not a folder; {how_to_get(folder)}")
    missing = [name for name in STANDARD_FILES if not (folder / name).is_file()]
    if missing:
        cached = from_openml_cache((train_limit, test_limit))
        if cached is not None:
            return cached
        if not download_missing:
            raise ConfigError(
                f"{len(missing)} of the 4 MNIST files are missing from {folder} and "
                f"dataset.download=false; {how_to_get(folder)}"
            )
        for name in missing:
            download(name, folder)
    train_images, train_labels = _read_split(folder, "train", train_limit)
    test_images, test_labels = _read_split(folder, "test", test_limit)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ConfigError(
            f"the training images in {folder} are {train_images.shape[1:]} pixels but the test "
            f"images are {test_images.shape[1:]}; both splits must have one image size"
        )
    return MnistArrays(train_images, train_labels, test_images, test_labels, str(folder))
