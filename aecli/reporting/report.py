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
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from aecli.folders import atomic_write
from aecli.reporting.comparison import write_comparison_figure, write_curve_overlay
from aecli.reporting.jobs import (
    config_differences,
    job_label,
    job_notes,
    job_value,
    metric_names,
    number,
    one_line,
    read_jobs,
    status_text,
    swept_keys,
)
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


def sort_jobs(jobs: list[dict[str, Any]], metric: str, descending: bool = False) -> list[dict[str, Any]]:
    """Jobs ordered by `metric`; jobs without a finite value for it come last, in job order."""

    def key(job: dict[str, Any]) -> tuple[int, float]:
        value = number(job_value(job, metric))
        return (0, -value if descending else value) if value is not None else (1, 0.0)

    return sorted(jobs, key=key)


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
