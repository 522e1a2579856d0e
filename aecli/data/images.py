"""Image data sets: rows are flattened grey images with pixels in [0, 1], the digit as label and colour.

mnist    the 60,000 standard training images train; the 10,000 t10k images are the test set
         (read, fetched and checked by aecli/data/mnist_files.py)
digits   scikit-learn's 1,797 bundled 8x8 digits: an offline stand-in for MNIST, seeded split
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from aecli.data.base import Dataset, DataSpec, image_dataset, split
from aecli.plugins import require

DIGITS_IMAGES = 1797  # scikit-learn's 8x8 digits: what dataset=digits splits


@dataclass
class Mnist(DataSpec):
    """The mnist studies' data: pixels / 255, 784 per row; the test set validates (val_name "test").
    `seed` is unused: the standard split is fixed."""

    name: str = "mnist"
    # folder of the four standard IDX .gz files; null: $AECLI_MNIST_DIR, else ~/.cache/aecli/mnist
    root: Optional[str] = None
    # missing files: scikit-learn's OpenML cache if present, else (true) the standard mirrors,
    # MD5/SHA-256 checked; false: stop with a message saying how to get them
    download: bool = True
    train_limit: Optional[int] = None  # use only the first N training images (quick runs)
    test_limit: Optional[int] = None  # use only the first N test images

    def check(self) -> None:
        super().check()
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, value, "use a positive number of images, or null for all")

    def offline(self) -> Mnist:
        return replace(self, download=False)

    def build(self) -> Dataset:
        from aecli.data import mnist_files

        arrays = mnist_files.load(self.root, self.download, self.train_limit, self.test_limit)
        return image_dataset(
            self.name,
            arrays.train_images,
            arrays.train_labels,
            arrays.test_images,
            arrays.test_labels,
            scale=255.0,
            val_name="test",
        )


@dataclass
class Digits(DataSpec):
    """scikit-learn's 8x8 digits: pixels / 16 in [0, 1], a seeded train/validation split."""

    name: str = "digits"
    train_fraction: float = 0.8  # share of the 1,797 images that train; the rest validate

    def check(self) -> None:
        super().check()
        n_train = int(round(self.train_fraction * DIGITS_IMAGES))
        require(
            0 < self.train_fraction <= 1 and (self.train_fraction == 1 or 1 <= n_train < DIGITS_IMAGES),
            "train_fraction",
            self.train_fraction,
            f"use a fraction in (0, 1] that keeps at least one of the {DIGITS_IMAGES} images on each side, or 1",
        )

    def build(self) -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        digit = bunch.target.astype(np.int64)
        rng = np.random.default_rng(self.seed)
        data = split(
            self.name, bunch.data / 16.0, digit, "digit", self.train_fraction, rng, None, digit[:, None], ("digit",)
        )
        return replace(data, image_shape=tuple(bunch.images.shape[1:]))
