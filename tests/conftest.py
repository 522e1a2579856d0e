"""Shared helpers: run the real `aecli` command, or the pipeline in-process on a composed config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
        return run(cfg, run_dir), run_dir

    return _run
