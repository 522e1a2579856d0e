"""Data sets: each builder returns a `Dataset` with a seeded train/validation split.

All data here is small enough to live in memory as tensors; the training loop
indexes them directly instead of going through a DataLoader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, cast

import numpy as np
import torch


@dataclass
class Dataset:
    """Train and validation arrays plus what the plots need to colour and frame them."""

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


def polynomial_curve(
    name: str = "polynomial",
    n: int = 2000,
    noise: float = 1.0,
    train_fraction: float = 0.85,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """The nonlinear_2d study's curve y = 400x^5 - 450x^3 + 50x^2 - 4 + noise, x on [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, n)
    y = 400 * x**5 - 450 * x**3 + 50 * x**2 - 4 + rng.normal(0.0, noise, n)
    points = standardize(np.column_stack([x, y]))
    position = np.linspace(0.0, 1.0, n)  # x runs left to right: colour by it
    return split(name, points, position, "position along curve", train_fraction, rng, grid_extent)


def log_spiral(
    name: str = "spiral",
    n: int = 2000,
    noise: float = 0.0,
    a: float = 0.05,
    b: float = 0.10,
    theta_max: float = 50.0,
    train_fraction: float = 0.85,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """The nonlinear_2d study's spiral r = a exp(b theta), theta evenly spaced on [0, theta_max]."""
    rng = np.random.default_rng(seed)
    theta = np.linspace(0.0, theta_max, n)
    r = a * np.exp(b * theta)
    points = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    if noise > 0:
        points = points + rng.normal(0.0, noise, points.shape)
    points = standardize(points)
    position = theta / theta_max
    return split(name, points, position, "position along spiral", train_fraction, rng, grid_extent)


def swiss_roll(
    name: str = "swiss_roll",
    n: int = 1500,
    noise: float = 0.05,
    train_fraction: float = 1.0,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """The swiss_roll study's data: sklearn's make_swiss_roll, each column min-max scaled to [0, 1];
    colour is the roll parameter t (position along the roll)."""
    from sklearn.datasets import make_swiss_roll
    from sklearn.preprocessing import MinMaxScaler

    points, t = make_swiss_roll(n, noise=noise, random_state=seed)
    check_spread(np.ptp(points, axis=0), "range")  # MinMaxScaler would make an overflowed column all 0
    points = MinMaxScaler().fit_transform(points)
    return split(name, points, t, "roll parameter t", train_fraction, np.random.default_rng(seed), grid_extent)


def beta_curves(
    name: str = "beta",
    n: int = 10000,
    points: int = 100,
    grid_min: float = 0.01,
    grid_max: float = 0.99,
    param_max: float = 5.0,
    noise: float = 0.0,
    train_fraction: float = 1.0,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """The beta_curves study's data: each row is log Beta(x; alpha, beta) on `points` evenly spaced x
    in [grid_min, grid_max], alpha and beta ~ U(0, param_max); (alpha, beta) kept as labels."""
    from scipy.stats import beta as beta_dist

    rng = np.random.default_rng(seed)
    params = rng.uniform(0.0, param_max, size=(n, 2))
    grid = beta_curve_grid(points, grid_min, grid_max)
    curves = beta_dist.logpdf(grid[None, :], params[:, :1], params[:, 1:])
    if noise > 0:
        curves = curves + rng.normal(0.0, noise, curves.shape)
    return split(
        name,
        curves,
        params[:, 0],
        "alpha",
        train_fraction,
        rng,
        grid_extent,
        labels=params,
        label_names=("alpha", "beta"),
    )


def beta_curve_grid(points: int = 100, grid_min: float = 0.01, grid_max: float = 0.99) -> np.ndarray:
    """The x values every beta curve is evaluated on."""
    return np.linspace(grid_min, grid_max, points)


def rectangle(
    name: str = "rectangle",
    n: int = 100,
    width: float = 4.0,
    height: float = 2.0,
    noise: float = 0.0,
    train_fraction: float = 1.0,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """The rectangle studies' data: n points uniform in [-width/2, width/2] x [-height/2, height/2]
    (the study: 100 points in [-2, 2] x [-1, 1]); colour is the x coordinate."""
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(-width / 2, width / 2, n), rng.uniform(-height / 2, height / 2, n)])
    if noise > 0:
        points = points + rng.normal(0.0, noise, points.shape)
    return split(name, points, points[:, 0].copy(), "x1", train_fraction, rng, grid_extent)


def mnist(
    name: str = "mnist",
    root: Optional[str] = None,
    download: bool = True,
    train_limit: Optional[int] = None,
    test_limit: Optional[int] = None,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """The mnist studies' data: the 60,000 standard training images train, the 10,000 t10k
    images are the test set (val_name "test"); pixels / 255 in [0, 1], 784 per row; the digit
    is the colour (integer: the plots draw 10 discrete colours) and the one label column.
    The files are found, fetched and checked by aecli/mnist_files.py. `seed` is unused: the
    standard split is fixed."""
    from aecli import mnist_files

    arrays = mnist_files.load(root, download, train_limit, test_limit)
    return image_dataset(
        name,
        arrays.train_images,
        arrays.train_labels,
        arrays.test_images,
        arrays.test_labels,
        scale=255.0,
        val_name="test",
    )


def digits(
    name: str = "digits",
    train_fraction: float = 0.8,
    seed: int = 0,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (offline, a small stand-in for MNIST): pixels / 16 in
    [0, 1], a seeded train/validation split, the digit as colour and label."""
    from dataclasses import replace

    from sklearn.datasets import load_digits

    bunch = load_digits()
    digit = bunch.target.astype(np.int64)
    data = split(
        name,
        bunch.data / 16.0,
        digit,
        "digit",
        train_fraction,
        np.random.default_rng(seed),
        labels=digit[:, None],
        label_names=("digit",),
    )
    return replace(data, image_shape=tuple(bunch.images.shape[1:]))


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
