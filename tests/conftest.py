"""Shared helpers: run the real `aecli` command, or the pipeline in-process on a composed config."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path, check: bool = True, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python -m aecli ARGS` in `cwd`, as a user would type it; output captured as text."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "aecli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"aecli {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def run_in_process(tmp_path):
    """Compose `aecli OVERRIDES` and run the pipeline in this process; returns (summary, run_dir)."""
    from aecli.config import compose
    from aecli.pipeline import run

    counter = iter(range(1000))

    def _run(*overrides: str) -> tuple[dict, Path]:
        run_dir = tmp_path / f"run{next(counter)}"
        run_dir.mkdir()
        cfg = compose(["trainer.progress=false", "plots.enabled=false", *overrides])
        return run(cfg, run_dir).as_dict(), run_dir

    return _run


N_TRAIN, N_TEST = 300, 60  # tiny_mnist's images


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """300 train / 60 test random 28x28 images and labels as the four standard .gz names; the
    sklearn OpenML cache pointed at an empty folder so no real cache can stand in for a file."""
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "no_sklearn_cache"))
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28)),
        "train_labels": rng.integers(0, 10, N_TRAIN),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28)),
        "test_labels": rng.integers(0, 10, N_TEST),
    }
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    for key, name in names.items():
        write_idx(folder / name, arrays[key], 2051 if "images" in key else 2049)
    return folder, arrays


# ------------------------------------------------------------------ the IDX loader
