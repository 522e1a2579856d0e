"""The sweep report: one folder of comparisons for a finished (or partial) multirun.

`build_report(sweep_dir)` reads every job folder (`<sweep>/<job number>/`: the
overrides Hydra saved, summary.json, metrics.csv, steps.csv, figures) and writes:

  summary.csv, summary.md         one row per job: overrides, status (and the first line of the
                                  error of a failed job), losses, analysis metrics, epochs,
                                  wall seconds, steps per second; sorted by a chosen metric,
                                  the best job marked
  comparison_<figure>.png         that figure of every job tiled in one grid, rows and columns
                                  taken from the swept keys (2 keys: a rows x columns grid)
  comparison_loss_curves.png      every job's loss per epoch on one axis
  comparison_step_losses.png      every job's loss per optimizer step (trainer.log_steps=true),
                                  on a 0-1 share-of-training axis
  index.html                      a static page (works from file://, nothing fetched from the
                                  network) with the table and every figure of every job

A file it cannot read (a torn CSV row, a corrupt summary.json, a hostile .hydra YAML file, a
truncated PNG) is skipped and named, never fatal: the job becomes "unreadable" with a one-line
reason (or, for a bad row or figure, keeps its status and gets a note), and every other job is
still reported. Every report file is written atomically, replacing any link planted in its place.

It reads only files, so it works the same for every launcher. It runs after every
multirun (aecli.hydra_hooks.SweepComparison) and on demand:

    aecli-report outputs/multirun/2026-11-22/10-00-00.123456-42 --sort-by final_val_loss
    python -m aecli.reporting.report <sweep dir>
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from aecli.folders import atomic_write
from aecli.reporting.csv_files import read_columns
from aecli.summary import Status

# Columns every row has, after the swept keys; analysis metrics follow them.
SUMMARY_COLUMNS = [
    "status",
    "final_train_loss",
    "final_val_loss",
    "best_val_loss",
    "epochs",
    "wall_seconds",
    "steps_per_second",
]
DEFAULT_FIGURES = ("loss_curve.png", "error_map.png")
READ_LIMIT = 1024 * 1024  # summary.json and .hydra/*.yaml: a real one is a few KiB, so more is not aecli's
MAX_TILE_PIXELS = 20_000_000  # a job figure is about 1 megapixel; a bigger one would take gigabytes to tile


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Each job folder (named by its number) read by `read_job`, in job-number order."""
    job_dirs = sorted(
        (p for p in Path(sweep_dir).iterdir() if p.name.isascii() and p.name.isdigit() and p.is_dir()),
        key=lambda p: int(p.name),
    )
    return [read_job(job_dir) for job_dir in job_dirs]


def read_job(job_dir: Path) -> dict[str, Any]:
    """A job's overrides (key -> value), summary, flattened config and `notes` (what the report could
    not read of it). A job without summary.json is still running or died before its first write:
    status "missing". A file that cannot be read makes the job "unreadable", with the reason as its
    error; the others are still reported, so one damaged folder never costs the whole report."""
    hydra_dir = job_dir / ".hydra"
    problems, pairs, config = [], {}, {}
    summary: dict[str, Any] = {"status": "missing"}
    if (job_dir / "summary.json").exists():
        read, why = read_summary(job_dir / "summary.json")
        summary = read if read is not None else {}
        problems += [why] if why else []
    if (hydra_dir / "overrides.yaml").exists():
        overrides, why = _load_yaml(hydra_dir / "overrides.yaml", list)
        pairs = dict(str(o).split("=", 1) for o in overrides or [] if "=" in str(o))
        problems += [why] if why else []
    if (hydra_dir / "config.yaml").exists():
        tree, why = _load_yaml(hydra_dir / "config.yaml", dict)
        config = flatten(tree or {})
        problems += [why] if why else []
    if problems:
        known = summary.get("status") not in (None, "missing")
        said = f"; summary.json says {status_text({'summary': summary})}" if known else ""
        summary = {**summary, "status": "unreadable", "error": "; ".join(problems) + said}
    return {"dir": job_dir, "overrides": pairs, "summary": summary, "config": config, "notes": []}


def _read_small_text(path: Path) -> tuple[Optional[str], Optional[str]]:
    """The text of a regular file of at most READ_LIMIT bytes, or None and why not (a FIFO or a
    device would block or never end; a huge file would fill the memory)."""
    if not path.is_file():
        return None, "not a regular file"
    try:
        with open(path, "rb") as f:
            data = f.read(READ_LIMIT + 1)
        if len(data) > READ_LIMIT:
            return None, f"larger than {READ_LIMIT // 1024 // 1024} MiB"
        return data.decode("utf-8"), None
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"


def read_summary(path: Path) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """A summary.json as a dict, or None and one line saying why not ("summary.json: not valid JSON
    (line 3)"). NaN and Infinity read as null: no loss or metric slips through as a number that sorts
    and compares wrongly. It must be an object with a text status and (if any) an object of metrics."""
    text, why = _read_small_text(path)
    if text is None:
        return None, f"{path.name}: {why}"
    try:
        value = json.loads(text, parse_constant=lambda _: None)
    except json.JSONDecodeError as err:
        return None, f"{path.name}: not valid JSON (line {err.lineno})"
    except (ValueError, RecursionError) as err:  # a number of over 4300 digits, nesting deeper than the stack
        return None, f"{path.name}: not valid JSON ({type(err).__name__})"
    if not isinstance(value, dict):
        return None, f"{path.name}: holds a {type(value).__name__}, not a JSON object"
    if not isinstance(value.get("status"), str):
        return None, f"{path.name}: has no text status"
    if not isinstance(value.get("metrics", {}), dict):
        return None, f"{path.name}: its metrics are not a JSON object"
    return value, None


def _load_yaml(path: Path, kind: type) -> tuple[Any, Optional[str]]:
    """A job's .hydra YAML file as a plain `kind` (list or dict, interpolations left as text), or None
    and one line saying why not (".hydra/config.yaml: not valid YAML (line 2)"). Read within
    aecli.trust's bounds (size, depth, node count, no aliases): the report shows it, never builds it."""
    from aecli.errors import ConfigError
    from aecli.trust import bounded_yaml

    name = f"{path.parent.name}/{path.name}"
    text, why = _read_small_text(path)
    if text is None:
        return None, f"{name}: {why}"
    try:
        value = bounded_yaml(text, name, top="list" if kind is list else "mapping")
    except ConfigError as err:
        return None, str(err)
    if not isinstance(value, kind):
        return None, f"{name}: not a {'list' if kind is list else 'mapping'}"
    return value, None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def swept_keys(jobs: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys = list(dict.fromkeys(k for job in jobs for k in job["overrides"]))
    return [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1]


def config_differences(jobs: list[dict[str, Any]]) -> list[str]:
    """Config keys (flattened) whose resolved value differs between jobs: what a swept override changed."""
    keys = list(dict.fromkeys(k for job in jobs for k in job["config"]))
    return [k for k in keys if len({json.dumps(job["config"].get(k), default=str) for job in jobs}) > 1]


def metric_names(jobs: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(m for job in jobs for m in job["summary"].get("metrics", {})))


def job_value(job: dict[str, Any], column: str) -> Any:
    """A summary field, or an analysis metric of that name; "" when the job has neither."""
    summary = job["summary"]
    return summary.get(column, summary.get("metrics", {}).get(column, ""))


def sort_jobs(jobs: list[dict[str, Any]], metric: str, descending: bool = False) -> list[dict[str, Any]]:
    """Jobs ordered by `metric`; jobs without a finite value for it come last, in job order."""

    def key(job: dict[str, Any]) -> tuple[int, float]:
        value = number(job_value(job, metric))
        return (0, -value if descending else value) if value is not None else (1, 0.0)

    return sorted(jobs, key=key)


def number(value: Any) -> Optional[float]:
    """`value` as a finite float, or None: text, null, bools and ints beyond float's range do not rank."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def status_text(job: dict[str, Any]) -> str:
    """ "completed", the status with the first line of the error that ended the job, or where an
    interrupted job stopped ("interrupted during figures (SIGTERM)")."""
    summary = job["summary"]
    error, status = summary.get("error"), str(summary.get("status"))
    if error:
        return f"{status}: {error}"
    if status == "interrupted" and summary.get("phase"):
        return f"{status} during {summary['phase']}" + (
            f" ({summary['stopped_by']})" if summary.get("stopped_by") else ""
        )
    return status


def table_rows(
    jobs: list[dict[str, Any]], keys: list[str], metric: str, descending: bool
) -> tuple[list[str], list[list[Any]], Optional[str]]:
    """Header, rows (sorted) and the job number of the best completed job by `metric`."""
    metrics = metric_names(jobs)
    header = ["job", *keys, *SUMMARY_COLUMNS, *metrics]
    ordered = sort_jobs(jobs, metric, descending)
    best = next(
        (
            j["dir"].name
            for j in ordered
            if j["summary"].get("status") == Status.completed and number(job_value(j, metric)) is not None
        ),
        None,
    )
    rows = []
    for job in ordered:
        row = [job["dir"].name, *(job["overrides"].get(k, "") for k in keys)]
        row += [status_text(job) if c == "status" else job_value(job, c) for c in SUMMARY_COLUMNS]
        row += [job_value(job, m) for m in metrics]
        rows.append(row)
    return header, rows, best


def fmt(value: Any) -> str:
    """A cell's text: floats to 5 significant digits, null as nothing."""
    return f"{value:.5g}" if isinstance(value, float) else "" if value is None else str(value)


def write_text(path: Path, text: str) -> None:
    """Write a report file atomically; a link planted at `path` is replaced, never written through."""
    atomic_write(path, lambda f: f.write(text.encode()))


def job_notes(jobs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(job number, reason) for everything the report could not read: unreadable jobs and the
    rows and figures of readable jobs that it left out."""
    out = []
    for job in jobs:
        if job["summary"].get("status") == "unreadable":
            out.append((job["dir"].name, str(job["summary"].get("error"))))
        out += [(job["dir"].name, note) for note in job.get("notes", [])]
    return out


def add_note(job: dict[str, Any], note: str) -> None:
    """Remember on `job` something of it that the report left out (shown in summary.md and index.html)."""
    job.setdefault("notes", []).append(note)


def write_tables(
    jobs: list[dict[str, Any]], keys: list[str], sweep_dir: Path, metric: str, descending: bool
) -> Optional[str]:
    """summary.csv (full precision) and summary.md (rounded, best job marked); returns the best job."""
    header, rows, best = table_rows(jobs, keys, metric, descending)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow([*header, "best"])
    writer.writerows([*row, "yes" if row[0] == best else ""] for row in rows)
    write_text(sweep_dir / "summary.csv", table.getvalue())
    lines = [
        f"# Sweep {sweep_dir}",
        "",
        f"{len(jobs)} jobs, sorted by `{metric}` ({'highest' if descending else 'lowest'} first); "
        f"best completed job: {best if best is not None else 'none'} (marked **best**).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = [one_line(fmt(v)).replace("|", "\\|") for v in row]
        if row[0] == best:
            cells[0] = f"**{cells[0]} best**"
        lines.append("| " + " | ".join(cells) + " |")
    notes = job_notes(jobs)
    if notes:
        lines += ["", "Not read (left out of the comparisons):", ""]
        lines += [f"- job {name}: {one_line(note)}" for name, note in notes]
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return best


def one_line(text: str) -> str:
    """`text` with its line breaks made spaces: a value from a job folder must not break a table row."""
    return " ".join(text.splitlines())


def job_label(job: dict[str, Any], keys: list[str]) -> str:
    """`key=value, ...` of the swept keys: what tells this job from the others."""
    return ", ".join(f"{k}={job['overrides'].get(k)}" for k in keys) or job["dir"].name


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


PAGE_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; text-align: right; }
th { background: #eee; } td.text { text-align: left; }
tr.best { background: #e6f5e6; }
tr.failed, tr.diverged, tr.interrupted, tr.missing, tr.unreadable { background: #fbe3e3; }
section.job { border-top: 2px solid #ccc; margin-top: 1.5em; }
img { max-width: 560px; margin: 4px; border: 1px solid #ddd; vertical-align: top; }
img.wide { max-width: 100%; }
code, pre { background: #f5f5f5; padding: 2px 4px; }
"""


def write_index_html(
    jobs: list[dict[str, Any]],
    keys: list[str],
    sweep_dir: Path,
    metric: str,
    descending: bool,
    comparison_figures: Sequence[str],
) -> None:
    """index.html: the summary table, the comparison figures, then every job's figures and config differences.
    Images are linked by relative path, so the page works from file:// and moves with the sweep folder."""
    esc = html.escape
    header, rows, best = table_rows(jobs, keys, metric, descending)
    differing = config_differences(jobs)
    by_name = {job["dir"].name: job for job in jobs}
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>aecli sweep report: {esc(sweep_dir.name)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<h1>aecli sweep report</h1><p><code>{esc(str(sweep_dir))}</code>: {len(jobs)} jobs, swept "
        f"{esc(', '.join(keys) or 'nothing')}; sorted by <code>{esc(metric)}</code>; best completed job: "
        f"{esc(best or 'none')}.</p>",
        '<h2>Summary</h2><table id="summary"><thead><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in header)
        + "</tr></thead><tbody>",
    ]
    for row in rows:
        status = str(by_name[row[0]]["summary"].get("status"))
        css = "best" if row[0] == best else status
        link = f'<td class="text"><a href="#job-{esc(row[0])}">{esc(row[0])}</a></td>'
        cells = "".join(
            f'<td class="text">{esc(v)}</td>' if isinstance(v, str) else f"<td>{esc(fmt(v))}</td>" for v in row[1:]
        )
        parts.append(f'<tr class="{esc(css)}">{link}{cells}</tr>')
    parts.append("</tbody></table>")
    notes = job_notes(jobs)
    if notes:
        parts.append('<h2>Not read</h2><ul id="not-read">')
        parts += [f'<li><a href="#job-{esc(name)}">job {esc(name)}</a>: {esc(note)}</li>' for name, note in notes]
        parts.append("</ul>")
    if comparison_figures:
        parts.append("<h2>Comparisons</h2>")
        parts += [f'<img class="wide" src="{esc(name)}" alt="{esc(name)}">' for name in comparison_figures]
    parts.append("<h2>Jobs</h2>")
    for job in jobs:
        name = job["dir"].name
        label = job_label(job, keys)
        diffs = "\n".join(f"{k}: {json.dumps(job['config'].get(k), default=str)}" for k in differing)
        parts.append(
            f'<section class="job" id="job-{esc(name)}"><h3>job {esc(name)}: {esc(label)}</h3>'
            f"<p>status: {esc(status_text(job))}</p>"
            + "".join(f"<p>not read: {esc(note)}</p>" for note in job.get("notes", []))
            + f"<p>config values that differ between jobs:</p><pre>{esc(diffs or '(none)')}</pre>"
        )
        for image in sorted(job["dir"].glob("*.png")):
            rel = f"{name}/{image.name}"
            parts.append(f'<img src="{esc(rel)}" alt="{esc(rel)}" title="{esc(rel)}">')
        parts.append("</section>")
    parts.append("</body></html>\n")
    write_text(sweep_dir / "index.html", "\n".join(parts))


def check_figure_names(figures: Sequence[str], key: str = "figures") -> None:
    """The figures to compare are file names in the job folders, written back as comparison_<name> in the
    sweep folder: plain names only, so neither the reads nor the writes can leave those folders."""
    from aecli.errors import ConfigError
    from aecli.folders import is_plain_file_name

    for figure in figures:
        if not is_plain_file_name(figure):
            raise ConfigError(
                f"{key} has {figure!r}, which is not allowed: name a figure of the job folders "
                f"by its plain file name, e.g. loss_curve.png"
            )


def build_report(
    sweep_dir: str | Path,
    figures: Sequence[str] = DEFAULT_FIGURES,
    sort_by: str = "final_val_loss",
    descending: bool = False,
) -> dict[str, Any]:
    """Write every report file into `sweep_dir`; returns counts by status, the best job and the files written."""
    sweep_dir = Path(sweep_dir)
    check_figure_names(figures)
    jobs = read_jobs(sweep_dir)
    keys = swept_keys(jobs)
    written = [  # figures first: what they could not read is noted in the tables
        f"comparison_{f}" for f in figures if write_comparison_figure(jobs, keys, f, sweep_dir / f"comparison_{f}")
    ]
    for name, steps in [("comparison_loss_curves.png", False), ("comparison_step_losses.png", True)]:
        if write_curve_overlay(jobs, keys, sweep_dir / name, steps):
            written.append(name)
    best = write_tables(jobs, keys, sweep_dir, sort_by, descending)
    write_index_html(jobs, keys, sweep_dir, sort_by, descending, written)
    statuses = [job["summary"].get("status") for job in jobs]
    return {
        "jobs": len(jobs),
        "statuses": {s: statuses.count(s) for s in dict.fromkeys(statuses)},
        "best": best,
        "files": ["summary.csv", "summary.md", *written, "index.html"],
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`aecli-report SWEEP_DIR`: (re)build the report of a finished or partial sweep."""
    parser = argparse.ArgumentParser(prog="aecli-report", description=main.__doc__)
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (holds job folders 0, 1, ...)")
    parser.add_argument("--sort-by", default="final_val_loss", help="summary field or analysis metric to sort by")
    parser.add_argument("--descending", action="store_true", help="highest value first")
    parser.add_argument("--figures", nargs="*", default=list(DEFAULT_FIGURES), help="per-job PNGs to tile")
    args = parser.parse_args(argv)
    from aecli.errors import ConfigError

    if not args.sweep_dir.is_dir() or not any(p.name.isascii() and p.name.isdigit() for p in args.sweep_dir.iterdir()):
        print(
            f"aecli-report: error: {args.sweep_dir} is not a sweep folder (no job folders 0, 1, ... in it)",
            file=sys.stderr,
        )
        return 2
    try:
        result = build_report(args.sweep_dir, args.figures, args.sort_by, args.descending)
    except ConfigError as err:
        print(f"aecli-report: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full sweep folder: the report cannot be written
        print(
            f"aecli-report: error: cannot write the report in {args.sweep_dir}: {err.strerror or err}", file=sys.stderr
        )
        return 1
    print(
        f"{result['jobs']} jobs ({', '.join(f'{n} {s}' for s, n in result['statuses'].items())}); "
        f"best: {result['best']}; wrote {', '.join(result['files'])} in {args.sweep_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
