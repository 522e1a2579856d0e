"""Data sets: each builder returns a `Dataset` with a seeded train/validation split.

All data here is small enough to live in memory as tensors; the training loop
indexes them directly instead of going through a DataLoader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

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

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def standardize(points: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per column, as the studies do."""
    return (points - points.mean(axis=0)) / points.std(axis=0)


def split(
    name: str,
    points: np.ndarray,
    color: np.ndarray,
    color_label: str,
    train_fraction: float,
    rng: np.random.Generator,
    grid_extent: Optional[Sequence[float]] = None,
) -> Dataset:
    """Split by a seeded random permutation into train (first part) and validation."""
    order = rng.permutation(len(points))
    n_train = int(round(train_fraction * len(points)))
    if not 1 <= n_train < len(points):
        raise ValueError(f"train_fraction={train_fraction} leaves an empty train or validation set")
    tr, va = order[:n_train], order[n_train:]
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    extent = tuple(float(v) for v in grid_extent) if grid_extent is not None else None
    return Dataset(name, as_tensor(points[tr]), as_tensor(points[va]), color[tr], color[va], color_label, extent)


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
