"""Hydra callbacks. `SweepComparison` puts the jobs of a finished multirun side by side.

It runs once in the launching process after every job has ended, whatever the
launcher, and writes into the sweep folder:
  comparison.csv                  one row per job: its overrides, status, final losses and the
                                  numbers its analyses reported (summary.json "metrics")
  comparison_<figure>.png         that figure of every job in one grid, rows and columns
                                  taken from the swept keys (2 keys: a rows x columns grid)
  comparison_loss_curves.png      every job's train and validation loss per epoch on one axis
  comparison_step_losses.png      every job's loss per optimizer step (jobs run with
                                  trainer.log_steps=true), on a 0-1 share-of-training axis
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("aecli")

SUMMARY_COLUMNS = ["status", "final_train_loss", "final_val_loss", "epochs", "wall_seconds"]


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Each job folder's overrides (as key -> value) and summary, in job-number order."""
    jobs = []
    for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
        pairs = dict(str(o).split("=", 1) for o in overrides if "=" in str(o))
        summary_file = job_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {"status": "missing"}
        jobs.append({"dir": job_dir, "overrides": pairs, "summary": summary})
    return jobs


def swept_keys(jobs: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys = list(dict.fromkeys(k for job in jobs for k in job["overrides"]))
    return [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1]


def write_comparison_table(jobs: list[dict[str, Any]], keys: list[str], path: Path) -> None:
    metric_names = list(dict.fromkeys(m for job in jobs for m in job["summary"].get("metrics", {})))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", *keys, *SUMMARY_COLUMNS, *metric_names])
        for job in jobs:
            metrics = job["summary"].get("metrics", {})
            writer.writerow([job["dir"].name, *(job["overrides"].get(k, "") for k in keys),
                             *(job["summary"].get(c, "") for c in SUMMARY_COLUMNS),
                             *(metrics.get(m, "") for m in metric_names)])


def job_label(job: dict[str, Any], keys: list[str]) -> str:
    """`key=value, ...` of the swept keys: what tells this job from the others."""
    return ", ".join(f"{k}={job['overrides'].get(k)}" for k in keys) or job["dir"].name


def read_columns(path: Path, columns: Sequence[str]) -> Optional[list[list[float]]]:
    """Float columns of a CSV file, or None when it is missing or empty."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [[float(r[c]) for r in rows] for c in columns] if rows else None


def write_curve_overlay(jobs: list[dict[str, Any]], keys: list[str], path: Path, steps: bool) -> bool:
    """Loss curves of every job on one log-scale axis: per epoch (metrics.csv, train solid and
    validation dashed) or per step (steps.csv, x normalised to 0-1 so runs of any length compare).
    False when no job has the file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    source = "steps.csv" if steps else "metrics.csv"
    curves = [(job, read_columns(job["dir"] / source, ["loss"] if steps else ["epoch", "train_loss", "val_loss"]))
              for job in jobs]
    curves = [(job, c) for job, c in curves if c is not None]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.cm.tab10.colors
    for i, (job, columns) in enumerate(curves):
        color, label = colors[i % len(colors)], job_label(job, keys)
        if steps:
            (loss,) = columns
            ax.plot(np.linspace(0, 1, len(loss)), loss, color=color, lw=0.8, alpha=0.6, label=label)
        else:
            epoch, train, val = columns
            ax.plot(epoch, train, color=color, label=f"{label} (train)")
            ax.plot(epoch, val, color=color, ls="--", label=f"{label} (validation)")
    if all(min(v) > 0 for _, columns in curves for v in columns[-2:] if v):
        ax.set_yscale("log")
    ax.set(xlabel="share of training steps (0 = first, 1 = last)" if steps else "epoch (0 = untrained)",
           ylabel="loss per step" if steps else "loss",
           title=f"{'loss per optimizer step' if steps else 'loss per epoch'} of {len(curves)} jobs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_comparison_figure(jobs: list[dict[str, Any]], keys: list[str], figure: str, path: Path) -> bool:
    """Tile `figure` of every job; False when no job wrote it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    if not any((job["dir"] / figure).exists() for job in jobs):
        return False
    row_key = keys[0] if len(keys) >= 2 else None
    rows = list(dict.fromkeys(job["overrides"].get(row_key) for job in jobs)) if row_key else [None]
    col_keys = keys[1:] if row_key else keys
    cols = list(dict.fromkeys(job_label(job, col_keys) for job in jobs))
    cell = {(job["overrides"].get(row_key) if row_key else None, job_label(job, col_keys)): job for job in jobs}

    first = matplotlib.image.imread(next(j["dir"] / figure for j in jobs if (j["dir"] / figure).exists()))
    aspect = first.shape[1] / first.shape[0]
    width = 3.2 * aspect
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(width * len(cols), 3.4 * len(rows)), squeeze=False)
    for (r, row), (c, col) in itertools.product(enumerate(rows), enumerate(cols)):
        ax = axes[r][c]
        ax.axis("off")
        job = cell.get((row, col))
        if job is None:
            continue
        image_file = job["dir"] / figure
        if image_file.exists():
            ax.imshow(matplotlib.image.imread(image_file))
        else:
            ax.text(0.5, 0.5, f"no {figure}\n(status: {job['summary'].get('status')})", ha="center", va="center")
        title = col if not row_key else f"{row_key}={row}\n{col}"
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{figure.removesuffix('.png')} of {len(jobs)} jobs, swept: {', '.join(keys) or 'nothing'}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


class SweepComparison(Callback):
    """After a multirun: comparison.csv and one comparison_<figure>.png per named figure."""

    def __init__(self, figures: Sequence[str] = ("loss_curve.png",)) -> None:
        self.figures = list(figures)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        jobs = read_jobs(sweep_dir)
        if not jobs:
            return
        keys = swept_keys(jobs)
        write_comparison_table(jobs, keys, sweep_dir / "comparison.csv")
        written = [f for f in self.figures
                   if write_comparison_figure(jobs, keys, f, sweep_dir / f"comparison_{f}")]
        for name, steps in [("loss_curves.png", False), ("step_losses.png", True)]:
            if write_curve_overlay(jobs, keys, sweep_dir / f"comparison_{name}", steps):
                written.append(name)
        log.info("sweep of %d jobs compared in %s (comparison.csv, %s)", len(jobs), sweep_dir,
                 ", ".join(f"comparison_{f}" for f in written) or "no figures")
