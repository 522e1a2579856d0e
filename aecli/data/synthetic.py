"""The studies' generated data sets: points made from settings, seeded, split by a seeded permutation.

polynomial   nonlinear_2d's noisy quintic curve, both columns standardised
spiral       nonlinear_2d's logarithmic spiral, both columns standardised
swiss_roll   swiss_roll's 3-D roll (sklearn), each column min-max scaled
beta         beta_curves' Beta log-densities on a grid, one curve per row
rectangle    the rectangle studies' uniform points in a rectangle
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from aecli.data.base import Dataset, DataShape, SyntheticSpec, check_spread, split, standardize
from aecli.plugins import finite, require


@dataclass
class PolynomialCurve(SyntheticSpec):
    """y = 400x^5 - 450x^3 + 50x^2 - 4 + noise, x evenly spaced on [-1, 1]."""

    name: str = "polynomial"
    noise: float = 1.0

    def build(self) -> Dataset:
        rng = np.random.default_rng(self.seed)
        x = np.linspace(-1.0, 1.0, self.n)
        y = 400 * x**5 - 450 * x**3 + 50 * x**2 - 4 + rng.normal(0.0, self.noise, self.n)
        points = standardize(np.column_stack([x, y]))
        position = np.linspace(0.0, 1.0, self.n)  # x runs left to right: colour by it
        return split(self.name, points, position, "position along curve", self.train_fraction, rng, self.grid_extent)


@dataclass
class LogSpiral(SyntheticSpec):
    """r = a exp(b theta), theta evenly spaced on [0, theta_max]."""

    name: str = "spiral"
    a: float = 0.05
    b: float = 0.10
    theta_max: float = 50.0

    def check(self) -> None:
        super().check()
        require(finite(self.a) and self.a > 0, "a", self.a, "use a finite radius scale > 0")
        require(finite(self.b), "b", self.b, "use a finite growth rate")
        require(finite(self.theta_max) and self.theta_max > 0, "theta_max", self.theta_max, "use a finite angle > 0")
        require(
            math.log(self.a) + self.b * self.theta_max < 700,
            "b",
            self.b,
            f"a * exp(b * theta_max) overflows with theta_max={self.theta_max}; keep b * theta_max below about 700",
        )

    def build(self) -> Dataset:
        rng = np.random.default_rng(self.seed)
        theta = np.linspace(0.0, self.theta_max, self.n)
        r = self.a * np.exp(self.b * theta)
        points = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
        if self.noise > 0:
            points = points + rng.normal(0.0, self.noise, points.shape)
        points = standardize(points)
        position = theta / self.theta_max
        return split(self.name, points, position, "position along spiral", self.train_fraction, rng, self.grid_extent)


@dataclass
class SwissRoll(SyntheticSpec):
    """sklearn's make_swiss_roll, each column min-max scaled to [0, 1]; colour: the roll parameter t."""

    name: str = "swiss_roll"
    n: int = 1500
    noise: float = 0.05
    train_fraction: float = 1.0
    dims: ClassVar[int] = 3

    def build(self) -> Dataset:
        from sklearn.datasets import make_swiss_roll
        from sklearn.preprocessing import MinMaxScaler

        points, t = make_swiss_roll(self.n, noise=self.noise, random_state=self.seed)
        check_spread(np.ptp(points, axis=0), "range")  # MinMaxScaler would make an overflowed column all 0
        points = MinMaxScaler().fit_transform(points)
        rng = np.random.default_rng(self.seed)
        return split(self.name, points, t, "roll parameter t", self.train_fraction, rng, self.grid_extent)


@dataclass
class BetaCurves(SyntheticSpec):
    """Each row is log Beta(x; alpha, beta) on `points` evenly spaced x in [grid_min, grid_max],
    alpha and beta ~ U(0, param_max); (alpha, beta) kept as labels, alpha as colour."""

    name: str = "beta"
    n: int = 10000  # curves
    points: int = 100  # grid points per curve
    grid_min: float = 0.01
    grid_max: float = 0.99
    param_max: float = 5.0
    train_fraction: float = 1.0

    def check(self) -> None:
        super().check()
        require(self.points >= 2, "points", self.points, "use at least 2 grid points per curve")
        for key in ("grid_min", "grid_max"):
            value = getattr(self, key)
            require(
                0 < value < 1,
                key,
                value,
                "use a value strictly between 0 and 1, where every Beta log-density is finite",
            )
        require(self.grid_min < self.grid_max, "grid_max", self.grid_max, f"use a value above grid_min={self.grid_min}")
        require(
            finite(self.param_max) and self.param_max > 0,
            "param_max",
            self.param_max,
            "use a finite value > 0 (alpha and beta are drawn from U(0, param_max))",
        )

    def estimated_bytes(self) -> Optional[int]:
        return self.n * self.points * 8 * 4

    def shape(self) -> DataShape:
        return DataShape(self.points)

    def build(self) -> Dataset:
        from scipy.stats import beta as beta_dist

        rng = np.random.default_rng(self.seed)
        params = rng.uniform(0.0, self.param_max, size=(self.n, 2))
        grid = beta_curve_grid(self.points, self.grid_min, self.grid_max)
        curves = beta_dist.logpdf(grid[None, :], params[:, :1], params[:, 1:])
        if self.noise > 0:
            curves = curves + rng.normal(0.0, self.noise, curves.shape)
        labels, names = params, ("alpha", "beta")
        return split(
            self.name, curves, params[:, 0], "alpha", self.train_fraction, rng, self.grid_extent, labels, names
        )


def beta_curve_grid(points: int = 100, grid_min: float = 0.01, grid_max: float = 0.99) -> np.ndarray:
    """The x values every beta curve is evaluated on."""
    return np.linspace(grid_min, grid_max, points)


MIN_RECTANGLE_SIDE = 1e-30  # narrower sides round to 0 in the float32 data: a collapsed column


@dataclass
class Rectangle(SyntheticSpec):
    """n points uniform in [-width/2, width/2] x [-height/2, height/2]; colour: the x coordinate."""

    name: str = "rectangle"
    n: int = 100
    width: float = 4.0
    height: float = 2.0
    train_fraction: float = 1.0

    def check(self) -> None:
        super().check()
        for key in ("width", "height"):
            value = getattr(self, key)
            require(
                finite(value) and value >= MIN_RECTANGLE_SIDE,
                key,
                value,
                f"use a finite size >= {MIN_RECTANGLE_SIDE:g}",
            )

    def build(self) -> Dataset:
        rng = np.random.default_rng(self.seed)
        w, h, n = self.width, self.height, self.n
        points = np.column_stack([rng.uniform(-w / 2, w / 2, n), rng.uniform(-h / 2, h / 2, n)])
        if self.noise > 0:
            points = points + rng.normal(0.0, self.noise, points.shape)
        return split(self.name, points, points[:, 0].copy(), "x1", self.train_fraction, rng, self.grid_extent)
