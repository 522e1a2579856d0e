"""Data sets as plug-ins: `DataSpec` subclasses that build a `Dataset` (aecli/data/base.py).

A config option of the `dataset` group names its spec with `_target_`; importing this package
registers every data set aecli ships (synthetic, images, files) with aecli.plugins.
"""

from __future__ import annotations

from aecli.data.base import (
    Dataset,
    DataShape,
    DataSpec,
    SyntheticSpec,
    UnscalableData,
    as_tensor,
    check_spread,
    image_dataset,
    non_finite_dtype,
    overflow_message,
    split,
    standardize,
)
from aecli.data.files import FileData
from aecli.data.images import Digits, Mnist
from aecli.data.synthetic import BetaCurves, LogSpiral, PolynomialCurve, Rectangle, SwissRoll, beta_curve_grid

__all__ = [
    "BetaCurves",
    "DataShape",
    "DataSpec",
    "Dataset",
    "Digits",
    "FileData",
    "LogSpiral",
    "Mnist",
    "PolynomialCurve",
    "Rectangle",
    "SwissRoll",
    "SyntheticSpec",
    "UnscalableData",
    "as_tensor",
    "beta_curve_grid",
    "check_spread",
    "image_dataset",
    "non_finite_dtype",
    "overflow_message",
    "split",
    "standardize",
]
