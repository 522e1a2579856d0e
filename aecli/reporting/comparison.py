"""The sweep's comparison figures, drawn from the jobs' data so that jobs compare by eye:

  comparison_error_map.png    every job's error grid (error_map.npz) as small multiples on ONE
                              logarithmic colour scale with one colour bar, the training data on top;
                              the limits are in the PNG's text chunk `aecli:color_limits`
  comparison_loss_curves.png  loss per epoch (metrics.csv), one panel per value of the first swept key
                              (two or more keys), shared y-range, legend outside the data
  comparison_step_losses.png  the same per optimizer step (steps.csv) on a 0-1 share-of-training axis
  comparison_<figure>.png     any other per-job figure, tiled, one short title per tile

Rows and columns come from the swept keys (2 keys: rows x columns); a tile's title names only what
tells it from its row (e.g. "relu_nobias"). Jobs that differ only by `seed` are one group in the
curves: their mean with a +-1 std band, n in the legend; in the error maps and tiles each group is
one tile, its median seed by final_val_loss (so 5 seeds of 10 configurations are 10 tiles, not 50).
Everything is 12 inches wide at 100 dpi: about 1200 px, readable at page width. A file that cannot
be read is a note on its job, never a crash.
"""

from __future__ import annotations

import itertools
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Optional, cast

import numpy as np

from aecli.folders import NotRegularFile, open_regular
from aecli.reporting.csv_files import read_columns
from aecli.reporting.jobs import SEED, add_note, seed_groups

MAX_TILE_PIXELS = 20_000_000  # a job figure is about 1 megapixel; a bigger one would take gigabytes to tile
ERROR_MAP_DATA = "error_map.npz"  # written by aecli.analyses.error_map, read here
ERROR_MAP_FIELDS = ("err", "extent", "threshold", "data")
MAX_MAP_POINTS = 1000  # training points kept with a map (a seeded sample beyond)
MAX_MAP_SIDE = 4000  # validation's largest plots.error_map_resolution
MAX_MAP_BYTES = MAX_MAP_SIDE**2 * 8 + 1024 * 1024  # the largest real grid uncompressed, and some room
SHOWN_SIDE = 400  # a grid is drawn at most this many cells across (a tile is ~200 px wide)
WIDTH, DPI = 12.0, 100  # inches and dots per inch: 1200 px, a page's width
MIN_TILE_SCALE = 0.3  # a tiled figure shrunk below 30% of its width is unreadable: then one tile a row
MAX_COLS = 5  # tiles per row when only one key is swept (wrapped beyond)
COLOR_LIMITS_KEY = "aecli:color_limits"  # PNG text chunk of comparison_error_map.png
# Per-job figures the curve comparisons replace: tiling them too would give two figures of one thing.
REPLACED = {"loss_curve.png": "comparison_loss_curves.png", "loss_per_step.png": "comparison_step_losses.png"}


# ------------------------------------------------------------------ error-map data
def write_error_map_data(
    path: Path, err: np.ndarray, extent: Sequence[float], threshold: float, data: np.ndarray
) -> None:
    """error_map.npz: the grid (float32), its window, the threshold and the training points (float32)."""
    from aecli.folders import atomic_write

    grid, window = np.asarray(err, dtype=np.float32), np.asarray(extent, dtype=np.float64)
    points = np.asarray(data, dtype=np.float32)[:MAX_MAP_POINTS]
    limit = np.asarray(float(threshold))
    atomic_write(Path(path), lambda f: np.savez_compressed(f, err=grid, extent=window, threshold=limit, data=points))


def read_error_map_data(path: Path) -> dict[str, np.ndarray]:
    """An error_map.npz, checked: a regular file, exactly the four arrays, no pickles, sizes within
    bounds before anything is decompressed, shapes and values as written. ValueError says why not."""
    try:
        file = open_regular(path)  # one open file: the archive checked is the one read; a FIFO is refused
    except OSError as why:
        raise ValueError(
            "not a regular file" if isinstance(why, NotRegularFile) else f"cannot be read ({why})"
        ) from None
    with file:
        return _read_error_map(file)


def _read_error_map(file: BinaryIO) -> dict[str, np.ndarray]:
    if os.fstat(file.fileno()).st_size > MAX_MAP_BYTES:
        raise ValueError(f"larger than {MAX_MAP_BYTES // 2**20} MiB")
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as why:
        raise ValueError(f"not an npz archive ({why})") from None
    if sorted(i.filename for i in infos) != sorted(f"{name}.npy" for name in ERROR_MAP_FIELDS):
        raise ValueError(f"holds {sorted(i.filename for i in infos)[:6]}, not {list(ERROR_MAP_FIELDS)}")
    if sum(i.file_size for i in infos) > MAX_MAP_BYTES:
        raise ValueError(f"expands to more than {MAX_MAP_BYTES // 2**20} MiB")
    try:
        file.seek(0)
        with np.load(file, allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name]) for name in ERROR_MAP_FIELDS}
    except Exception as why:  # zlib, CRC, header and pickle errors all mean the same: unreadable
        raise ValueError(f"cannot be read ({type(why).__name__})") from None
    err, extent, threshold, data = (arrays[name] for name in ERROR_MAP_FIELDS)
    checks = [
        (err.ndim == 2 and all(2 <= n <= MAX_MAP_SIDE for n in err.shape), f"its grid has shape {err.shape}"),
        (err.dtype.kind == "f", f"its grid is {err.dtype}"),
        (extent.shape == (4,) and extent.dtype.kind == "f" and bool(np.isfinite(extent).all()), "its window"),
        (extent.shape == (4,) and extent[0] < extent[1] and extent[2] < extent[3], "its window is empty"),
        (threshold.shape == () and threshold.dtype.kind == "f" and 0 < float(threshold) < np.inf, "its threshold"),
        (data.ndim == 2 and data.shape[1:] == (2,) and len(data) <= MAX_MAP_POINTS, f"its data has {data.shape}"),
        (data.dtype.kind == "f" and bool(np.isfinite(data).all()), "its data is not finite numbers"),
    ]
    for ok, what in checks:
        if not ok:
            raise ValueError(f"{what} is not what aecli writes")
    step = max(1, -(-max(err.shape) // SHOWN_SIDE))  # a coarser grid draws the same at tile size
    return {"err": err[::step, ::step].astype(np.float64), "extent": extent, "threshold": threshold, "data": data}


def job_error_map(job: dict[str, Any]) -> Optional[dict[str, np.ndarray]]:
    """The job's checked error-map data, or None (no file; an unreadable one: a note on the job)."""
    path = job["dir"] / ERROR_MAP_DATA
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read_error_map_data(path)
    except (ValueError, OSError) as err:
        add_note(job, f"{ERROR_MAP_DATA}: could not read it ({str(err)[:120]})")
        return None


# ------------------------------------------------------------------ layout
def short_key(key: str) -> str:
    """`optimizer.lr` -> `lr`: a title's room is a tile's width."""
    return key.rsplit(".", 1)[-1]


def tile_title(job: dict[str, Any], keys: Sequence[str]) -> str:
    """What tells the job from the others in its row: the value alone for one key with a named value
    ("relu_nobias"), short `key=value` pairs for a number ("lr=0.01") or several keys; the job number
    when nothing differs."""
    value = str(job["overrides"].get(keys[0])) if len(keys) == 1 else ""
    if value and not is_number(value):  # a name says itself; a bare number needs its key ("seed=2")
        return value
    return ", ".join(f"{short_key(k)}={job['overrides'].get(k)}" for k in keys) or f"job {job['dir'].name}"


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def grid_layout(jobs: list[dict[str, Any]], keys: Sequence[str]) -> tuple[list[Optional[str]], int, dict]:
    """(row labels, columns, {(row, column): job}). Two or more swept keys: one row per value of the
    first key, one column per value of the others. Fewer: the jobs in order, MAX_COLS a row, no labels."""
    if len(keys) >= 2:
        row_key, col_keys = keys[0], list(keys[1:])
        rows = list(dict.fromkeys(str(job["overrides"].get(row_key)) for job in jobs))
        cols = list(dict.fromkeys(tile_title(job, col_keys) for job in jobs))
        cell = {(rows.index(str(j["overrides"].get(row_key))), cols.index(tile_title(j, col_keys))): j for j in jobs}
        return [f"{short_key(row_key)}={row}" for row in rows], len(cols), cell
    n_cols = min(MAX_COLS, max(1, len(jobs)))
    n_rows = -(-len(jobs) // n_cols)
    return [None] * n_rows, n_cols, {divmod(i, n_cols): job for i, job in enumerate(jobs)}


def data_first(keys: Sequence[str]) -> list[str]:
    """The swept keys with the data set's first: rows (and curve panels) are data sets where one is
    swept, since their windows and loss scales differ; the models compare along a row."""
    return sorted(keys, key=lambda k: not (k == "dataset" or k.startswith("dataset.")))


def title_keys(keys: Sequence[str]) -> list[str]:
    """The keys a tile's title names: the columns' keys (the row's key labels the row)."""
    return list(keys[1:]) if len(keys) >= 2 else list(keys)


def label_row(ax: Any, label: Optional[str]) -> None:
    """A row's label left of its first tile, vertical, in bold."""
    if label:
        ax.annotate(
            label, xy=(-0.32, 0.5), xycoords="axes fraction", rotation=90, ha="center", va="center",
            fontsize=11, fontweight="bold",
        )  # fmt: skip


def empty_tile(ax: Any, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes)


# ------------------------------------------------------------------ error maps
def write_error_map_comparison(
    jobs: list[dict[str, Any]], keys: list[str], path: Path, what: str = ""
) -> Optional[tuple[float, float]]:
    """comparison_error_map.png from every job's error_map.npz: one shared colour scale (log, from the
    smallest positive error of any job to the largest), one colour bar, the training points and each
    job's threshold contour on top. Returns the colour limits (also in the PNG as COLOR_LIMITS_KEY),
    None when no job has the data."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    from aecli.reporting import plots

    keys = data_first(keys)
    maps = {job["dir"].name: job_error_map(job) for job in jobs}
    if not any(m is not None for m in maps.values()):
        return None
    norm = plots.error_norm([m["err"] for m in maps.values() if m is not None])
    rows, n_cols, cell = grid_layout(jobs, keys)
    tile = WIDTH / (n_cols + 0.6)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(WIDTH, tile * len(rows) + 0.9), squeeze=False, layout="constrained"
    )
    image = None
    for (r, c), ax in np.ndenumerate(np.asarray(axes, dtype=object)):
        job = cell.get((r, c))
        if c == 0:
            label_row(ax, rows[r])
        if job is None:
            ax.set_axis_off()
            continue
        data = maps[job["dir"].name]
        if data is None:
            empty_tile(ax, f"no error map\n({job['summary'].get('status')})")
            continue
        image = draw_error_tile(ax, data, norm, tile_title(job, title_keys(keys)))
        ax.set(xlabel="x1" if r == len(rows) - 1 else None, ylabel="x2" if c == 0 and not rows[r] else None)
    scale = "log scale" if isinstance(norm, LogNorm) else "linear scale"
    if image is not None:
        fig.colorbar(image, ax=axes, label=f"||x_hat - x|| ({scale}, shared by every tile)", shrink=0.85)
    what = what or f"{len(jobs)} jobs"
    fig.suptitle(f"Reconstruction error of {what} (white dots: training data, red line: the error threshold)")
    limits = (float(cast(float, norm.vmin)), float(cast(float, norm.vmax)))
    metadata = {COLOR_LIMITS_KEY: json.dumps({"vmin": limits[0], "vmax": limits[1], "scale": scale.split()[0]})}
    plots.save_figure(fig, path, DPI, metadata=metadata)
    return limits


def draw_error_tile(ax: Any, data: dict[str, np.ndarray], norm: Any, title: str) -> Any:
    """One job's grid on the shared `norm`, its data and threshold contour, equal scale on both axes."""
    from aecli.reporting import plots

    err, extent, threshold = data["err"], data["extent"], float(data["threshold"])
    image = plots.error_image(ax, err, extent, norm)
    finite = err[np.isfinite(err)]
    if len(finite) and finite.min() < threshold < finite.max():
        ax.contour(err, levels=[threshold], extent=tuple(extent), origin="lower", colors="red", linewidths=0.9)
    ax.scatter(data["data"][:, 0], data["data"][:, 1], s=1.5, c="white", edgecolors="none", alpha=0.7)
    ax.set(xlim=extent[:2], ylim=extent[2:], aspect="equal")
    ax.set_title(title, fontsize=10)
    plots.tidy_ticks(ax, nbins=4)
    ax.tick_params(labelsize=8)
    return image


# ------------------------------------------------------------------ loss curves
def read_curves(job: dict[str, Any], steps: bool) -> Optional[list[np.ndarray]]:
    """[x, loss] per step, or [epoch, train, val] per epoch; None when the job has no rows (a torn
    row is dropped with a note on the job)."""
    source = "steps.csv" if steps else "metrics.csv"
    read, problem = read_columns(job["dir"] / source, ["loss"] if steps else ["epoch", "train_loss", "val_loss"])
    if problem:
        add_note(job, problem)
    values = list(read.values())
    if not len(values[0]):
        return None
    return [np.linspace(0, 1, len(values[0])), values[0]] if steps else values


def mean_band(curves: list[list[np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Mean and sample std (ddof=1, as the seed tables) across a group's runs (at least two), column by
    column, over the length they all reach."""
    n = min(len(c[0]) for c in curves)
    stacked = [np.stack([c[i][:n] for c in curves]) for i in range(len(curves[0]))]
    return [s.mean(axis=0) for s in stacked], [s.std(axis=0, ddof=1) for s in stacked]  # the tables' std (ddof=1)


def write_curve_overlay(jobs: list[dict[str, Any]], keys: list[str], path: Path, steps: bool) -> bool:
    """Loss per epoch (metrics.csv: train solid, validation dashed) or per step (steps.csv, x as the
    share of training so runs of any length compare): one panel per value of the first swept key
    when two or more are swept (else one), one colour per job or seed group, y shared, legend
    outside. False when no job has the file."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from aecli.reporting import plots

    layout_keys = data_first([k for k in keys if k != SEED])
    read = {job["dir"].name: read_curves(job, steps) for job in jobs}
    curves = {name: columns for name, columns in read.items() if columns is not None}
    groups = [[j for j in g.jobs if j["dir"].name in curves] for g in seed_groups(jobs, keys)]
    groups = [g for g in groups if g]
    if not groups:
        return False
    panel_key = layout_keys[0] if len(layout_keys) >= 2 else None
    panels = list(dict.fromkeys(str(g[0]["overrides"].get(panel_key)) for g in groups)) if panel_key else [""]
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 4.6), sharey=True, squeeze=False, layout="constrained")

    def name(group: list[dict[str, Any]]) -> str:  # what tells the group from the others in its panel
        if layout_keys:
            return tile_title(group[0], title_keys(layout_keys))
        return "every seed" if len(group) > 1 else f"job {group[0]['dir'].name}"

    labels = list(dict.fromkeys(name(g) for g in groups))
    palette = plots.listed_colors("tab10" if len(labels) <= 10 else "tab20")
    values: list[float] = []
    for group in groups:
        ax = axes[0][panels.index(str(group[0]["overrides"].get(panel_key))) if panel_key else 0]
        label = name(group)
        color = palette[labels.index(label) % len(palette)]
        values += draw_group(ax, [curves[j["dir"].name] for j in group], color, steps)
    for ax, panel in zip(axes[0], panels):
        ax.set(title=f"{short_key(panel_key)}={panel}" if panel_key else None)
        ax.set_xlabel("share of training steps (0 = first, 1 = last)" if steps else "epoch (0 = untrained)")
        if not steps:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        ax.grid(alpha=0.3, which="both")
    plots.loss_scale(axes[0][0], values)
    axes[0][0].set_ylabel("loss of the step's batch" if steps else "loss")
    sizes = {label: max(len(g) for g in groups if name(g) == label) for label in labels}
    seeds = max(sizes.values()) > 1
    handles = legend_handles(labels, sizes, palette, steps)
    legend_title = ", ".join(short_key(k) for k in title_keys(layout_keys)) or None
    axes[0][-1].legend(
        handles=handles, title=legend_title, loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False
    )
    what = "loss per optimizer step" if steps else "loss per epoch"
    band = ", the mean over seeds with a band of \u00b11 standard deviation" if seeds else ""
    smoothed = steps and any(len(curves[j["dir"].name][0]) >= 2000 for g in groups for j in g)
    band += "; faint: every step, bold: its running mean over 1% of training" if smoothed else ""
    fig.suptitle(f"{what} of {len(jobs)} jobs{band}")
    plots.save_figure(fig, path, DPI)
    return True


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    return np.convolve(values, np.ones(window) / window, mode="valid")


def draw_group(ax: Any, runs: list[list[np.ndarray]], color: Any, steps: bool) -> list[float]:
    """One job's curves, or a seed group's mean with a +-1 std band; returns the values drawn (for
    the shared y-range). 2000 steps or more: every step faint, a running mean over 1% of them on top."""
    mean, std = mean_band(runs) if len(runs) > 1 else (runs[0], [np.zeros_like(c) for c in runs[0]])
    drawn: list[float] = []
    for y, s, style in zip(mean[1:], std[1:], ["-"] if steps else ["-", "--"]):
        x = mean[0]
        if steps and len(y) >= 2000:
            window = len(y) // 100
            ax.plot(x, y, color=color, lw=0.4, alpha=0.25)
            drawn += [float(v) for v in y if np.isfinite(v)]  # the faint steps count for the y-range too
            x, y, s = x[window - 1 :], running_mean(y, window), running_mean(s, window)
        ax.plot(x, y, color=color, lw=1.4 if steps or len(runs) > 1 else 1.1, ls=style)
        lo, hi = y - s, y + s
        if len(runs) > 1:
            lo = np.where(lo > 0, lo, y / 2) if bool((y > 0).all()) else lo  # a log axis cannot show <= 0
            ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
        drawn += [float(v) for v in np.concatenate([lo, hi]) if np.isfinite(v)]
    return drawn


def legend_handles(labels: list[str], sizes: dict[str, int], palette: Sequence[Any], steps: bool) -> list[Any]:
    """One entry per colour (with n where seeds are grouped), then what solid and dashed mean."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            color=palette[i % len(palette)],
            lw=2,
            label=f"{label} (n={sizes[label]})" if max(sizes.values()) > 1 else label,
        )
        for i, label in enumerate(labels)
    ]
    if not steps:
        handles += [
            Line2D([], [], color="0.3", ls="-", label="train"),
            Line2D([], [], color="0.3", ls="--", label="validation"),
        ]
    return handles


# ------------------------------------------------------------------ tiled per-job figures
def write_comparison_figure(jobs: list[dict[str, Any]], keys: list[str], figure: str, path: Path) -> bool:
    """comparison_<figure>: the error map drawn from the jobs' data (error_map.npz); a figure a curve
    comparison replaces (REPLACED) is not drawn twice; any other per-job figure tiled. Where seeds are
    swept, one tile per configuration: its median seed's. False when nothing was written."""
    if figure in REPLACED:
        return False
    jobs, keys, what = median_seeds(jobs, keys)
    if figure == "error_map.png" and write_error_map_comparison(jobs, keys, path, what) is not None:
        return True
    return write_tiles(jobs, keys, figure, path, what)


def median_seeds(jobs: list[dict[str, Any]], keys: list[str]) -> tuple[list[dict[str, Any]], list[str], str]:
    """(jobs, keys, what they are): where `seed` is swept, one job per configuration, the median of its
    seeds by final_val_loss (the lower middle one of an even count; jobs without a loss last), and the
    keys without the seed; else the jobs as they are, "N jobs"."""
    from aecli.reporting.jobs import number

    groups = seed_groups(jobs, keys)
    if SEED not in keys or all(len(g.jobs) < 2 for g in groups):
        return jobs, keys, f"{len(jobs)} job{'s' * (len(jobs) != 1)}"
    chosen = []
    for group in groups:
        losses = [number(j["summary"].get("final_val_loss")) for j in group.jobs]
        order = sorted(range(len(group.jobs)), key=lambda i: (losses[i] is None, losses[i] or 0.0))
        chosen.append(group.jobs[order[(len(order) - 1) // 2]])
    n = max(len(g.jobs) for g in groups)
    return chosen, [k for k in keys if k != SEED], f"{len(chosen)} configurations, each its median of {n} seeds"


def write_tiles(jobs: list[dict[str, Any]], keys: list[str], figure: str, path: Path, what: str = "") -> bool:
    """Tile `figure` of every job, one short title per tile, rows labelled on the left; False when
    no job wrote it. A figure that cannot be read gets a "could not read" tile and a note on its job."""
    import matplotlib.pyplot as plt

    from aecli.reporting.plots import save_figure

    if not any((job["dir"] / figure).exists() for job in jobs):
        return False
    keys = data_first(keys)
    images = {job["dir"].name: read_image(job, figure) for job in jobs if (job["dir"] / figure).exists()}
    first = next((image for image in images.values() if image is not None), None)
    aspect = first.shape[1] / first.shape[0] if first is not None else 4 / 3
    rows, n_cols, cell = grid_layout(jobs, keys)
    named = title_keys(keys)
    if first is not None and WIDTH / (n_cols + 0.3) * DPI < MIN_TILE_SCALE * first.shape[1]:
        rows, n_cols, cell = [None] * len(jobs), 1, {(i, 0): job for i, job in enumerate(jobs)}  # one a row: readable
        named = keys  # no row labels: each title names everything its job varies
    tile = WIDTH / (n_cols + 0.3)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(WIDTH, (tile / aspect + 0.35) * len(rows) + 0.5), squeeze=False
    )
    for r, c in itertools.product(range(len(rows)), range(n_cols)):
        ax, job = axes[r][c], cell.get((r, c))
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if c == 0:
            label_row(ax, rows[r])
        if job is None:
            continue
        image = images.get(job["dir"].name)
        if image is not None:
            ax.imshow(image)
        elif job["dir"].name in images:
            ax.text(0.5, 0.5, f"could not read {figure}", ha="center", va="center", color="firebrick")
        else:
            ax.text(0.5, 0.5, f"no {figure}\n(status: {job['summary'].get('status')})", ha="center", va="center")
        ax.set_title(tile_title(job, named), fontsize=10)
    fig.suptitle(f"{figure.removesuffix('.png')} of {what or f'{len(jobs)} jobs'}")
    fig.tight_layout()
    save_figure(fig, path, DPI)
    return True


def read_image(job: dict[str, Any], figure: str) -> Any:
    """The job's `figure` as an image array, or None with a note on the job: a truncated or corrupt
    file, or one with so many pixels (a decompression bomb) that tiling it would take gigabytes."""
    import matplotlib.image
    from PIL import Image

    path = job["dir"] / figure
    try:
        with open_regular(path) as file:  # a FIFO planted as a figure would block the report
            with Image.open(file) as image:
                width, height = image.size
            if width * height > MAX_TILE_PIXELS:
                raise OSError(f"{width} x {height} pixels, too large to tile")
            file.seek(0)
            return matplotlib.image.imread(file, format="png")
    except Exception as err:  # Pillow's errors for a broken file are OSError, SyntaxError, ValueError, ...
        text = str(err).replace(f"'{path}'", "").replace(str(path), "").strip()  # the note names the file already
        reason = text.splitlines()[0][:120] if text else type(err).__name__
        add_note(job, f"{figure}: could not read it ({reason})")
        return None
