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

It reads only files, so it works the same for every launcher. It runs after every
multirun (aecli.callbacks.SweepComparison) and on demand:

    aecli-report outputs/multirun/2026-11-22/10-00-00.123456-42 --sort-by final_val_loss
    python -m aecli.report <sweep dir>
"""

from __future__ import annotations

import argparse
import csv
import html
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union, cast

from omegaconf import DictConfig, ListConfig, OmegaConf

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


def read_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Each job folder's overrides (key -> value), summary and flattened config, in job-number order.

    A job without summary.json is still running or died before its first write: status "missing"."""
    jobs = []
    job_dirs = sorted(
        (p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )
    for job_dir in job_dirs:
        hydra_dir = job_dir / ".hydra"
        overrides: Union[DictConfig, ListConfig, list[str]]
        overrides = OmegaConf.load(hydra_dir / "overrides.yaml") if (hydra_dir / "overrides.yaml").exists() else []
        pairs = dict(str(o).split("=", 1) for o in overrides if "=" in str(o))
        summary_file = job_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {"status": "missing"}
        config = (
            flatten(cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml"))))
            if (hydra_dir / "config.yaml").exists()
            else {}
        )
        jobs.append({"dir": job_dir, "overrides": pairs, "summary": summary, "config": config})
    return jobs


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
        value = job_value(job, metric)
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        return (0, -value if descending else value) if ok else (1, 0.0)

    return sorted(jobs, key=key)


def status_text(job: dict[str, Any]) -> str:
    """ "completed", or the status with the first line of the error that ended the job."""
    summary = job["summary"]
    error = summary.get("error")
    return f"{summary.get('status')}: {error}" if error else str(summary.get("status"))


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
            if j["summary"].get("status") == "completed" and isinstance(job_value(j, metric), (int, float))
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
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def write_tables(
    jobs: list[dict[str, Any]], keys: list[str], sweep_dir: Path, metric: str, descending: bool
) -> Optional[str]:
    """summary.csv (full precision) and summary.md (rounded, best job marked); returns the best job."""
    header, rows, best = table_rows(jobs, keys, metric, descending)
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*header, "best"])
        writer.writerows([*row, "yes" if row[0] == best else ""] for row in rows)
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
        cells = [fmt(v).replace("|", "\\|") for v in row]
        if row[0] == best:
            cells[0] = f"**{cells[0]} best**"
        lines.append("| " + " | ".join(cells) + " |")
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return best


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
    import matplotlib.ticker
    import numpy as np

    from aecli.plots import listed_colors, save_figure

    source = "steps.csv" if steps else "metrics.csv"
    read = [
        (job, read_columns(job["dir"] / source, ["loss"] if steps else ["epoch", "train_loss", "val_loss"]))
        for job in jobs
    ]
    curves = [(job, c) for job, c in read if c is not None]
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
    if all(min(v) > 0 for _, columns in curves for v in columns[-2:] if v):
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
    """Tile `figure` of every job; False when no job wrote it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    from aecli.plots import save_figure

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
    save_figure(fig, path, 110)
    return True


PAGE_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; text-align: right; }
th { background: #eee; } td.text { text-align: left; }
tr.best { background: #e6f5e6; } tr.failed, tr.diverged, tr.interrupted, tr.missing { background: #fbe3e3; }
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
            f"<p>config values that differ between jobs:</p><pre>{esc(diffs or '(none)')}</pre>"
        )
        for image in sorted(job["dir"].glob("*.png")):
            rel = f"{name}/{image.name}"
            parts.append(f'<img src="{esc(rel)}" alt="{esc(rel)}" title="{esc(rel)}">')
        parts.append("</section>")
    parts.append("</body></html>\n")
    (sweep_dir / "index.html").write_text("\n".join(parts))


def check_figure_names(figures: Sequence[str], key: str = "figures") -> None:
    """The figures to compare are file names in the job folders, written back as comparison_<name> in the
    sweep folder: plain names only, so neither the reads nor the writes can leave those folders."""
    from aecli.config import ConfigError, is_plain_file_name

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
    best = write_tables(jobs, keys, sweep_dir, sort_by, descending)
    written = [
        f"comparison_{f}" for f in figures if write_comparison_figure(jobs, keys, f, sweep_dir / f"comparison_{f}")
    ]
    for name, steps in [("comparison_loss_curves.png", False), ("comparison_step_losses.png", True)]:
        if write_curve_overlay(jobs, keys, sweep_dir / name, steps):
            written.append(name)
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
    from aecli.config import ConfigError

    if not args.sweep_dir.is_dir() or not any(p.name.isdigit() for p in args.sweep_dir.iterdir()):
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
    print(
        f"{result['jobs']} jobs ({', '.join(f'{n} {s}' for s, n in result['statuses'].items())}); "
        f"best: {result['best']}; wrote {', '.join(result['files'])} in {args.sweep_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
