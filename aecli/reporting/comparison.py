"""The sweep's comparison figures: every job's loss curves on one axis, and one figure of every job in a grid."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from aecli.reporting.csv_files import read_columns
from aecli.reporting.jobs import add_note, job_label

MAX_TILE_PIXELS = 20_000_000  # a job figure is about 1 megapixel; a bigger one would take gigabytes to tile


def write_curve_overlay(jobs: list[dict[str, Any]], keys: list[str], path: Path, steps: bool) -> bool:
    """Loss curves of every job on one log-scale axis: per epoch (metrics.csv, train solid and
    validation dashed) or per step (steps.csv, x normalised to 0-1 so runs of any length compare).
    False when no job has the file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    from aecli.reporting.plots import listed_colors, save_figure

    source = "steps.csv" if steps else "metrics.csv"
    curves = []
    for job in jobs:
        read, problem = read_columns(job["dir"] / source, ["loss"] if steps else ["epoch", "train_loss", "val_loss"])
        if problem:
            add_note(job, problem)
        values = list(read.values())
        if len(values[0]):
            curves.append((job, values))
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = listed_colors("tab10")
    for i, (job, columns) in enumerate(curves):
        color, label = colors[i % len(colors)], job_label(job, keys)
        if steps:
            (loss,) = columns
            share = np.linspace(0, 1, len(loss))
            if len(loss) < 2000:
                ax.plot(share, loss, color=color, lw=0.8, alpha=0.6, label=label)
            else:  # every step faint, and a running mean over 1% of training that stays readable
                window = len(loss) // 100
                mean = np.convolve(loss, np.ones(window) / window, mode="valid")
                ax.plot(share, loss, color=color, lw=0.5, alpha=0.25)
                ax.plot(share[window - 1 :], mean, color=color, lw=1.5, label=f"{label} (running mean, {window} steps)")
        else:
            epoch, train, val = columns
            ax.plot(epoch, train, color=color, label=f"{label} (train)")
            ax.plot(epoch, val, color=color, ls="--", label=f"{label} (validation)")
    if all(np.min(v) > 0 for _, columns in curves for v in columns[-2:] if len(v)):
        ax.set_yscale("log")
    ax.set(
        xlabel="share of training steps (0 = first, 1 = last)" if steps else "epoch (0 = untrained)",
        ylabel="loss per step" if steps else "loss",
        title=f"{'loss per optimizer step' if steps else 'loss per epoch'} of {len(curves)} jobs",
    )
    if not steps:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, 110)
    return True


def write_comparison_figure(jobs: list[dict[str, Any]], keys: list[str], figure: str, path: Path) -> bool:
    """Tile `figure` of every job; False when no job wrote it. A figure that cannot be read gets a
    "could not read" tile and a note on its job; the other tiles are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aecli.reporting.plots import save_figure

    if not any((job["dir"] / figure).exists() for job in jobs):
        return False
    row_key = keys[0] if len(keys) >= 2 else None
    rows = list(dict.fromkeys(job["overrides"].get(row_key) for job in jobs)) if row_key else [None]
    col_keys = keys[1:] if row_key else keys
    cols = list(dict.fromkeys(job_label(job, col_keys) for job in jobs))
    cell = {(job["overrides"].get(row_key) if row_key else None, job_label(job, col_keys)): job for job in jobs}

    images = {job["dir"].name: read_image(job, figure) for job in jobs if (job["dir"] / figure).exists()}
    first = next((image for image in images.values() if image is not None), None)
    aspect = first.shape[1] / first.shape[0] if first is not None else 4 / 3
    width = 3.2 * aspect
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(width * len(cols), 3.4 * len(rows)), squeeze=False)
    for (r, row), (c, col) in itertools.product(enumerate(rows), enumerate(cols)):
        ax = axes[r][c]
        ax.axis("off")
        job = cell.get((row, col))
        if job is None:
            continue
        image = images.get(job["dir"].name)
        if image is not None:
            ax.imshow(image)
        elif job["dir"].name in images:
            ax.text(0.5, 0.5, f"could not read {figure}", ha="center", va="center", color="firebrick")
        else:
            ax.text(0.5, 0.5, f"no {figure}\n(status: {job['summary'].get('status')})", ha="center", va="center")
        title = col if not row_key else f"{row_key}={row}\n{col}"
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{figure.removesuffix('.png')} of {len(jobs)} jobs, swept: {', '.join(keys) or 'nothing'}")
    fig.tight_layout()
    save_figure(fig, path, 110)
    return True


def read_image(job: dict[str, Any], figure: str) -> Any:
    """The job's `figure` as an image array, or None with a note on the job: a truncated or corrupt
    file, or one with so many pixels (a decompression bomb) that tiling it would take gigabytes."""
    import matplotlib.image
    from PIL import Image

    path = job["dir"] / figure
    try:
        if not path.is_file():
            raise OSError("not a regular file")
        with Image.open(path) as image:
            width, height = image.size
        if width * height > MAX_TILE_PIXELS:
            raise OSError(f"{width} x {height} pixels, too large to tile")
        return matplotlib.image.imread(path)
    except Exception as err:  # Pillow's errors for a broken file are OSError, SyntaxError, ValueError, ...
        text = str(err).replace(f"'{path}'", "").replace(str(path), "").strip()  # the note names the file already
        reason = text.splitlines()[0][:120] if text else type(err).__name__
        add_note(job, f"{figure}: could not read it ({reason})")
        return None
