"""Hydra callbacks. `SweepComparison` puts the jobs of a finished multirun side by side.

It runs once in the launching process after every job has ended, whatever the
launcher, and writes into the sweep folder:
  comparison.csv           one row per job: its overrides, status and final losses
  comparison_<figure>.png  that figure of every job in one grid, rows and columns
                           taken from the swept keys (2 keys: a rows x columns grid)
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
from pathlib import Path
from typing import Any, Sequence

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
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", *keys, *SUMMARY_COLUMNS])
        for job in jobs:
            writer.writerow([job["dir"].name, *(job["overrides"].get(k, "") for k in keys),
                             *(job["summary"].get(c, "") for c in SUMMARY_COLUMNS)])


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
    label = lambda job, ks: ", ".join(f"{k}={job['overrides'].get(k)}" for k in ks) or job["dir"].name  # noqa: E731
    cols = list(dict.fromkeys(label(job, col_keys) for job in jobs))
    cell = {(job["overrides"].get(row_key) if row_key else None, label(job, col_keys)): job for job in jobs}

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
        log.info("sweep of %d jobs compared in %s (comparison.csv, %s)", len(jobs), sweep_dir,
                 ", ".join(f"comparison_{f}" for f in written) or "no figures")
