"""What every data set is: a `Dataset` (train and validation tensors and what the plots need), made
by a `DataSpec` (its settings, checked as the spec is made, and how to build it).

All data here is small enough to live in memory as tensors; the training loop slices them
directly instead of going through a DataLoader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, cast

import numpy as np
import torch

from aecli.plugins import Spec, finite, require

SEED_LIMIT = 2**32  # numpy, torch and scikit-learn all take seeds in [0, 2**32)
FLOAT32_MAX = 3.4028234663852886e38  # the error map's grid is made in the model's dtype, float32 at least
DATA_COPIES = 4  # float64 points, a temporary of their size while they are made, the split rows, float32 tensors


@dataclass
class Dataset:
    """Train and validation rows (float32, one flattened sample per row) plus what the plots need to
    colour and frame them."""

    name: str
    train: torch.Tensor  # (n_train, dim) float32
    val: torch.Tensor  # (n_val, dim) float32
    train_color: np.ndarray  # one value per point: position along the curve, or a label
    val_color: np.ndarray
    color_label: str  # what the colour means, for colour-bar titles
    grid_extent: Optional[tuple[float, float, float, float]] = None  # error-map window (2-D data)
    # Per-point labels kept beside the data (e.g. beta's alpha and beta), one column per name.
    train_labels: Optional[np.ndarray] = None
    val_labels: Optional[np.ndarray] = None
    label_names: tuple[str, ...] = ()
    image_shape: Optional[tuple[int, int]] = None  # image data: (height, width) of one flattened row
    val_name: str = "validation"  # what `val` is: "validation", "training" (no hold-out) or "test"

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    @property
    def shape(self) -> DataShape:
        return DataShape(self.dim, self.image_shape)


class UnscalableData(ValueError):
    """Generated points with a column that cannot be scaled because its values over- or underflowed: the
    settings that made them are too extreme (pipeline.build names the data set and the likeliest one)."""


def standardize(points: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per column, as the studies do. A column whose deviation is not
    finite or is 0 is refused: dividing by it would make NaNs, or all zeros that a run "completes" on."""
    mean, std = points.mean(axis=0), points.std(axis=0)
    check_spread(std, "standard deviation")
    return (points - mean) / std


def check_spread(spread: np.ndarray, what: str) -> None:
    """UnscalableData unless every column's spread (standard deviation, or max - min) is finite and above
    0. The generated data sets never have a constant column, so 0 too can only come from values so
    large that they overflowed or rounded to one number."""
    for column, value in enumerate(np.asarray(spread, dtype=np.float64)):
        if not np.isfinite(value):
            raise UnscalableData(f"column {column}'s {what} overflows float64")
        if value == 0:
            raise UnscalableData(f"column {column}'s {what} is 0, its values over- or underflowed to one number")


def overflow_message(name: str, settings: Mapping[str, Any], problem: str) -> str:
    """`dataset=rectangle makes non-finite points in float32 (dataset.width=1e+300 is too large); use smaller
    values`: the real-valued setting of the most extreme magnitude, when it is extreme, is the likeliest
    cause (a huge one overflows what the builder computes from it, a tiny one underflows)."""
    real = {k: abs(v) for k, v in settings.items() if isinstance(v, float) and math.isfinite(v) and v != 0}
    key = max(real, key=lambda k: abs(math.log10(real[k])), default=None)
    if key is None or abs(math.log10(real[key])) < SUSPECT_DIGITS:
        return f"dataset={name} {problem}; use settings of more moderate size"
    large = real[key] > 1
    size = ("large" if large else "small") + (" in magnitude" if settings[key] < 0 else "")
    return (
        f"dataset={name} {problem} (dataset.{key}={settings[key]:g} is too {size}); "
        f"use {'smaller' if large else 'larger'} values"
    )


SUSPECT_DIGITS = 6  # a setting above 1e6 or below 1e-6 is the likeliest to overflow or underflow


def non_finite_dtype(values: torch.Tensor, dtype: torch.dtype) -> Optional[torch.dtype]:
    """The dtype in which `values` are not all finite: their own, or `dtype` (the run's, which the model
    trains in) when that one is narrower; None when they are finite in both."""
    if not bool(torch.isfinite(values).all()):
        return values.dtype
    narrower = dtype.is_floating_point and torch.finfo(dtype).max < torch.finfo(values.dtype).max
    if narrower and values.numel() and float(values.abs().max()) > torch.finfo(dtype).max:
        return dtype
    return None


def split(
    name: str,
    points: np.ndarray,
    color: np.ndarray,
    color_label: str,
    train_fraction: float,
    rng: np.random.Generator,
    grid_extent: Optional[Sequence[float]] = None,
    labels: Optional[np.ndarray] = None,
    label_names: Sequence[str] = (),
) -> Dataset:
    """Split by a seeded random permutation into train (first part) and validation.

    train_fraction=1 is the studies that train on every point: validation is then the
    training set itself, so the logged val loss is the training-set loss in eval mode."""
    order = rng.permutation(len(points))
    if train_fraction >= 1:
        tr = va = order
    else:
        n_train = int(round(train_fraction * len(points)))
        if not 1 <= n_train < len(points):
            raise ValueError(f"train_fraction={train_fraction} leaves an empty train or validation set")
        tr, va = order[:n_train], order[n_train:]
    # [xmin, xmax, ymin, ymax]: config.validate checks there are four
    extent = (
        cast("tuple[float, float, float, float]", tuple(float(v) for v in grid_extent))
        if grid_extent is not None
        else None
    )
    return Dataset(
        name,
        as_tensor(points[tr]),
        as_tensor(points[va]),
        color[tr],
        color[va],
        color_label,
        extent,
        train_labels=None if labels is None else labels[tr],
        val_labels=None if labels is None else labels[va],
        label_names=tuple(label_names),
        val_name="training" if train_fraction >= 1 else "validation",
    )


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


@dataclass
class DataShape:
    """What a model needs to know of the data to be built for it."""

    dim: int  # values per row
    image_shape: Optional[tuple[int, int]] = None  # rows are flattened (height, width) images


@dataclass
class DataSpec(Spec):
    """A data set's settings, and how to build it. Subclasses add their own settings (each with the
    value its conf/dataset YAML gives it) and implement `build`."""

    name: str = "data"  # the option's name, for titles and logs
    seed: int = 0  # data noise and the train/validation split (conf: ${seed})
    # [xmin, xmax, ymin, ymax] of the reconstruction-error map (2-D data only)
    grid_extent: Optional[list[float]] = None

    def check(self) -> None:
        require(0 <= self.seed < SEED_LIMIT, "seed", self.seed, f"use an integer in [0, {SEED_LIMIT - 1}]")
        if self.grid_extent is not None:
            e = self.grid_extent
            require(
                len(e) == 4 and all(finite(v) and abs(v) <= FLOAT32_MAX for v in e) and e[0] < e[1] and e[2] < e[3],
                "grid_extent",
                e,
                "use [xmin, xmax, ymin, ymax], finite float32 values, with xmin < xmax and ymin < ymax",
            )

    def build(self) -> Dataset:
        raise NotImplementedError

    def estimated_bytes(self) -> Optional[int]:
        """Memory the points will take while they are made, or None where files fix a small size."""
        return None

    def check_batches(self, batch_size: int, n_train: int) -> Optional[str]:
        """Why `batch_size` does not suit this data (one sentence), or None."""
        return None

    def offline(self) -> DataSpec:
        """This spec, building without writing anywhere (no download): what a config read from a file
        (a resumed run's, a loaded run's) builds, since such a config never chooses where aecli writes."""
        return self


@dataclass
class SyntheticSpec(DataSpec):
    """Points generated from settings, split by a seeded permutation."""

    n: int = 2000  # number of points generated
    noise: float = 0.0  # std of the Gaussian noise added
    # share of points that train; the rest validate. 1.0: train on all, validate on the same points
    train_fraction: float = 0.85
    dims: ClassVar[int] = 2  # values per point, for the memory estimate

    def check(self) -> None:
        super().check()
        require(self.n >= 2, "n", self.n, "use at least 2 points")
        require(finite(self.noise) and self.noise >= 0, "noise", self.noise, "use a finite standard deviation >= 0")
        require(
            0 < self.train_fraction <= 1,
            "train_fraction",
            self.train_fraction,
            "use a fraction in (0, 1], where 1 validates on the training points",
        )
        if self.train_fraction < 1:
            n_train = int(round(self.train_fraction * self.n))
            require(
                1 <= n_train < self.n,
                "train_fraction",
                self.train_fraction,
                f"of {self.n} points it leaves no training or no validation point; use a fraction that "
                f"keeps at least one of each, or 1",
            )

    def estimated_bytes(self) -> Optional[int]:
        return self.n * self.dims * 8 * DATA_COPIES

    def shape(self) -> DataShape:
        """The rows' shape, known before they are made."""
        return DataShape(self.dims)

    def split_sizes(self) -> tuple[int, int]:
        """(training points, validation points)."""
        if self.train_fraction >= 1:
            return self.n, self.n
        n_train = int(round(self.train_fraction * self.n))
        return n_train, self.n - n_train


def image_dataset(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    scale: float,
    val_name: str,
) -> Dataset:
    """Images (n, height, width) -> flattened rows / scale; labels as integer colours and a "digit" column."""
    flat = lambda images: as_tensor(images.reshape(len(images), -1) / scale)  # noqa: E731
    train_digit, val_digit = train_labels.astype(np.int64), val_labels.astype(np.int64)
    return Dataset(
        name,
        flat(train_images),
        flat(val_images),
        train_digit,
        val_digit,
        "digit",
        train_labels=train_digit[:, None],
        val_labels=val_digit[:, None],
        label_names=("digit",),
        image_shape=(int(train_images.shape[1]), int(train_images.shape[2])),
        val_name=val_name,
    )
