"""Hydra callbacks. `SweepComparison` writes the sweep report when a multirun ends.

It runs once in the launching process after every job has ended, whatever the
launcher (basic, joblib, submitit); the report itself (aecli/report.py) reads only
the job folders, so `aecli-report <sweep dir>` rebuilds it later from the same files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("aecli")

# How many jobs of the last multirun in this process did not complete; the CLI exits non-zero if any.
last_sweep = {"unfinished": 0}


class SweepComparison(Callback):
    """After a multirun: the report files of aecli.report in the sweep folder."""

    def __init__(self, figures: Sequence[str] = ("loss_curve.png",), sort_by: str = "final_val_loss") -> None:
        from aecli.report import check_figure_names

        check_figure_names(figures, "hydra.callbacks.sweep_comparison.figures")  # before any job runs
        self.figures = list(figures)
        self.sort_by = sort_by

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from aecli.report import build_report

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir() or not any(p.name.isdigit() for p in sweep_dir.iterdir()):
            return
        result = build_report(sweep_dir, self.figures, self.sort_by)
        last_sweep["unfinished"] = result["jobs"] - result["statuses"].get("completed", 0)
        log.info(
            "sweep of %d jobs (%s) reported in %s: %s",
            result["jobs"],
            ", ".join(f"{n} {s}" for s, n in result["statuses"].items()),
            sweep_dir / "index.html",
            ", ".join(result["files"]),
        )
