"""The sweep report: one folder of comparisons for a finished (or partial) multirun.

`build_report(sweep_dir)` reads every job folder (`<sweep>/<job number>/`: the
overrides Hydra saved, summary.json, metrics.csv, steps.csv, figures) and writes:

  summary.csv, summary.md         one row per job: overrides, status (and the first line of the
                                  error of a failed job), losses with the baselines beside them
                                  (a job that does not beat PCA flagged), analysis metrics,
                                  epochs, wall seconds, steps per second; sorted by a chosen
                                  metric within each data set, the best job of each marked (jobs
                                  on different data sets are never ranked against each other)
  summary_groups.csv              when the sweep varies `seed`: the jobs grouped by every other
                                  swept override, mean ± std and n per group, the best group's
                                  Welch's t-test against the next (also a summary.md section)
  comparison_<figure>.png         that figure of every job tiled in one grid, rows and columns
                                  taken from the swept keys (2 keys: a rows x columns grid)
  comparison_loss_curves.png      every job's loss per epoch on one axis
  comparison_step_losses.png      every job's loss per optimizer step (trainer.log_steps=true),
                                  on a 0-1 share-of-training axis
  index.html                      a static page (works from file://, nothing fetched from the
                                  network) with the tables (columns sortable by a click, a few
                                  lines of inline script) and every figure of every job

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
import functools
import html
import io
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from aecli.folders import atomic_write
from aecli.reporting.comparison import write_comparison_figure, write_curve_overlay
from aecli.reporting.jobs import (
    SEED,
    Group,
    Separation,
    by_dataset,
    config_differences,
    job_label,
    job_notes,
    job_value,
    metric_names,
    number,
    one_line,
    read_jobs,
    seed_groups,
    separations,
    status_text,
    swept_keys,
)
from aecli.summary import Status

log = logging.getLogger("aecli")

# Columns every row has, after the swept keys; analysis metrics follow them. The baselines (every
# run's aecli.analyses.baselines) sit beside the model's loss: vs_pca says whether it beats PCA.
SUMMARY_COLUMNS = [
    "status",
    "final_train_loss",
    "final_val_loss",
    "baseline_mean_loss",
    "baseline_pca_loss",
    "vs_pca",
    "best_val_loss",
    "epochs",
    "wall_seconds",
    "steps_per_second",
]
# The baselines' metrics shown in the columns above (or, code size and exactness, in vs_pca's text).
BASELINE_METRICS = (
    "baseline_mean_loss",
    "baseline_pca_loss",
    "baseline_pca_code_size",
    "baseline_pca_exact",
    "beats_pca",
)
DEFAULT_FIGURES = ("error_map.png",)  # loss curves are drawn from metrics.csv (comparison.py), never tiled
WORSE = "\u26a0"  # the marker of a job that does not beat PCA with its own code size
PCA_MATCH = 0.005  # within 0.5% of PCA's loss: it found PCA's solution (a linear net can do no better)


def sort_jobs(jobs: list[dict[str, Any]], metric: str, descending: bool = False) -> list[dict[str, Any]]:
    """Jobs ordered by `metric`; jobs without a finite value for it come last, in job order."""

    def key(job: dict[str, Any]) -> tuple[int, float]:
        value = number(job_value(job, metric))
        return (0, -value if descending else value) if value is not None else (1, 0.0)

    return sorted(jobs, key=key)


def rank(
    jobs: list[dict[str, Any]], keys: list[str], metric: str, descending: bool
) -> tuple[list[dict[str, Any]], dict[str, Optional[str]]]:
    """The jobs sorted by `metric` within each data set (data sets in first-seen order), and each data
    set's best completed job: jobs on different data sets are never ranked against each other."""
    ordered, best = [], {}
    for dataset, members in by_dataset(jobs, keys).items():
        ranked = sort_jobs(members, metric, descending)
        ordered += ranked
        best[dataset] = next(
            (
                j["dir"].name
                for j in ranked
                if j["summary"].get("status") == Status.completed and number(job_value(j, metric)) is not None
            ),
            None,
        )
    return ordered, best


def best_text(best: dict[str, Optional[str]]) -> Optional[str]:
    """The best job ("3") of a one-data-set sweep; "best on polynomial: job 3; best on spiral: job 7"
    with several; None when no job qualifies."""
    if len(best) == 1:
        return next(iter(best.values()))
    found = [f"best on {dataset}: job {name}" for dataset, name in best.items() if name is not None]
    return "; ".join(found) or None


def pca_verdict(job: dict[str, Any]) -> str:
    """ "beats PCA-2", "WORSE than PCA-2 (1.4x)", "PCA-3 exact" (no model can beat it), or "" (no baselines)."""
    metrics = job["summary"].get("metrics") or {}
    size = number(metrics.get("baseline_pca_code_size"))
    name = f"PCA-{size:.0f}" if size is not None else "PCA"
    if number(metrics.get("baseline_pca_exact")) == 1.0:
        return f"{name} exact"
    beats = number(metrics.get("beats_pca"))
    if beats is None:
        return ""
    if beats == 1.0:
        return f"beats {name}"
    ratio = pca_ratio(job)
    if ratio is not None and ratio <= 1 + PCA_MATCH:
        return f"matches {name} ({ratio:.5f}x)"
    return f"{WORSE} WORSE than {name}" + (f" ({ratio:.3g}x)" if ratio is not None else "")


def pca_ratio(job: dict[str, Any]) -> Optional[float]:
    """The job's final validation (reconstruction) loss over PCA's, or None."""
    summary = job["summary"]
    loss = number(summary.get("final_val_reconstruction", summary.get("final_val_loss")))
    pca = number((summary.get("metrics") or {}).get("baseline_pca_loss"))
    return loss / pca if loss is not None and pca else None


def worse_than_pca(job: dict[str, Any]) -> bool:
    """Does not beat PCA, and is not within PCA_MATCH of it either (a linear net that found PCA's subspace)."""
    if number((job["summary"].get("metrics") or {}).get("beats_pca")) != 0.0:
        return False
    ratio = pca_ratio(job)
    return ratio is None or ratio > 1 + PCA_MATCH


def table_rows(
    jobs: list[dict[str, Any]], keys: list[str], metric: str, descending: bool
) -> tuple[list[str], list[list[Any]], dict[str, Optional[str]]]:
    """Header, rows (sorted within each data set) and each data set's best completed job by `metric`."""
    metrics = [m for m in metric_names(jobs) if m not in BASELINE_METRICS]
    header = ["job", *keys, *SUMMARY_COLUMNS, *metrics]
    ordered, best = rank(jobs, keys, metric, descending)
    rows = []
    for job in ordered:
        row = [job["dir"].name, *(job["overrides"].get(k, "") for k in keys)]
        for column in SUMMARY_COLUMNS:
            special = {"status": status_text, "vs_pca": pca_verdict}.get(column)
            row.append(special(job) if special else job_value(job, column))
        row += [job_value(job, m) for m in metrics]
        rows.append(row)
    return header, rows, best


def fmt(value: Any) -> str:
    """A cell's text: floats to 5 significant digits, null as nothing."""
    return f"{value:.5g}" if isinstance(value, float) else "" if value is None else str(value)


def write_text(path: Path, text: str) -> None:
    """Write a report file atomically; a link planted at `path` is replaced, never written through."""
    atomic_write(path, lambda f: f.write(text.encode()))


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: cells on one line, pipes escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(one_line(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def write_tables(
    jobs: list[dict[str, Any]], keys: list[str], sweep_dir: Path, metric: str, descending: bool
) -> Optional[str]:
    """summary.csv (full precision, best=yes per data set), summary.md (rounded, best jobs marked, jobs
    worse than PCA flagged, seed groups when the seed is swept); returns `best_text` of the best jobs."""
    header, rows, best = table_rows(jobs, keys, metric, descending)
    winners, by_name = set(best.values()), {job["dir"].name: job for job in jobs}
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow([*header, "best"])
    writer.writerows([*row, "yes" if row[0] in winners else ""] for row in rows)
    write_text(sweep_dir / "summary.csv", table.getvalue())
    several = len(best) > 1
    lines = [
        f"# Sweep {sweep_dir}",
        "",
        f"{len(jobs)} jobs, sorted by `{metric}` ({'highest' if descending else 'lowest'} first)"
        + (f" within each of {len(best)} data sets, never ranked across them; " if several else "; ")
        + f"{'' if several else 'best completed job: '}{best_text(best) or 'none'} (marked **best**).",
    ]
    if any(worse_than_pca(job) for job in jobs):
        lines += ["", f"{WORSE}: does not beat PCA with the model's code size (column vs_pca)."]
    cells = []
    for row in rows:
        text = [fmt(v) for v in row]
        mark = " best" if row[0] in winners else ""
        text[0] = f"**{text[0]}{mark}**" if mark else text[0]
        text[0] += f" {WORSE}" if worse_than_pca(by_name[row[0]]) else ""
        cells.append(text)
    lines += ["", *md_table(header, cells)]
    if SEED in keys:
        lines += ["", *group_section(jobs, keys, sweep_dir, metric, descending)]
    notes = job_notes(jobs)
    if notes:
        lines += ["", "Not read (left out of the comparisons):", ""]
        lines += [f"- job {name}: {one_line(note)}" for name, note in notes]
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return best_text(best)


# ------------------------------------------------------------------ seed groups
def group_metrics(jobs: list[dict[str, Any]], metric: str) -> list[str]:
    """What the seed-group table aggregates: final_val_loss, the sort metric, every analysis metric
    (the baselines' constants left out; mean beats_pca is the share of seeds that beat PCA)."""
    constant = ("baseline_pca_code_size", "baseline_pca_exact")
    names = ["final_val_loss", metric, *(m for m in metric_names(jobs) if m not in constant)]
    return list(dict.fromkeys(names))


def mean_std(stats: tuple[float, float, int], of: int) -> str:
    """ "0.0123 ± 0.0004"; the mean alone at n=1; "" at n=0; "(n=2)" after it where fewer than the
    group's `of` completed jobs report the metric as a number (a NaN loss), so n never overstates it."""
    mean, std, n = stats
    if not n:
        return ""
    text = f"{mean:.4g} ± {std:.2g}" if n >= 2 else f"{mean:.4g}"
    return text + (f" (n={n})" if n < of else "")


def group_rows(
    jobs: list[dict[str, Any]], keys: list[str], metric: str, descending: bool
) -> tuple[list[Group], list[str], list[Separation]]:
    """The seed groups, ordered by mean `metric` within each data set, the metrics aggregated, and
    each data set's best group against the next."""
    groups = seed_groups(jobs, keys)
    separated = separations(groups, metric, descending)

    def order(g: Group) -> tuple[int, int, float]:
        mean = g.stats(metric)[0]
        datasets = list(dict.fromkeys(x.dataset for x in groups))
        missing = mean != mean  # nan: no completed job reports the metric
        return datasets.index(g.dataset), int(missing), 0.0 if missing else (-mean if descending else mean)

    return sorted(groups, key=order), group_metrics(jobs, metric), separated


def group_table(
    groups: list[Group], metrics: list[str], separated: list[Separation], others: list[str]
) -> tuple[list[str], list[list[Any]]]:
    """summary_groups.csv's header and rows: the group's data set and overrides, n, its job numbers,
    mean and std of each metric (blank where n is too small), best=yes per data set, and the best
    group's Welch p-value against the next."""
    header = ["data_set", *others, "n", "jobs", *(f"{m}_{s}" for m in metrics for s in ("mean", "std", "n"))]
    rows = []
    for g in groups:
        sep = next((s for s in separated if s.best is g), None)
        stats = [g.stats(m) for m in metrics]
        numbers = [x for mean, std, n in stats for x in (mean if n else "", std if n >= 2 else "", n)]
        p = sep.p_value if sep is not None and sep.p_value is not None else ""
        jobs = " ".join(j["dir"].name for j in g.jobs)
        rows.append([g.dataset, *g.key.values(), g.n, jobs, *numbers, "yes" if sep else "", p])
    return [*header, "best", "p_value_vs_next"], rows


def group_section(
    jobs: list[dict[str, Any]], keys: list[str], sweep_dir: Path, metric: str, descending: bool
) -> list[str]:
    """Writes summary_groups.csv (full precision); returns summary.md's seed-group section."""
    groups, metrics, separated = group_rows(jobs, keys, metric, descending)
    header, rows = group_table(groups, metrics, separated, [k for k in keys if k != SEED])
    table = io.StringIO()
    csv.writer(table).writerows([header, *rows])
    write_text(sweep_dir / "summary_groups.csv", table.getvalue())
    best = {id(s.best) for s in separated}
    cells = [
        [g.dataset, f"**{g.short_label} best**" if id(g) in best else g.short_label, str(g.n)]
        + [mean_std(g.stats(m), g.n) for m in metrics]
        for g in groups
    ]
    return [
        "## Seeds aggregated",
        "",
        f"Jobs that differ only in `{SEED}`, one row per group: mean ± sample std (ddof=1) of each metric over "
        f"the group's n completed jobs, sorted by mean `{metric}` within each data set.",
        "",
        *md_table(["data set", "group", "n", *metrics], cells),
        "",
        *(f"- {s.line(metric)}" for s in separated),
    ]


PAGE_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 7px; text-align: right; }
th { background: #eee; cursor: pointer; user-select: none; } td.text { text-align: left; }
th[data-dir="asc"]::after { content: " \\25B2"; } th[data-dir="desc"]::after { content: " \\25BC"; }
tr.best { background: #e6f5e6; } td.pca { white-space: nowrap; }
tr.worse-pca td.pca { background: #fde8c8; font-weight: bold; }
tr.failed, tr.diverged, tr.interrupted, tr.missing, tr.unreadable { background: #fbe3e3; }
section.job { border-top: 2px solid #ccc; margin-top: 1.5em; }
img { max-width: 560px; margin: 4px; border: 1px solid #ddd; vertical-align: top; }
img.wide { max-width: 100%; }
code, pre { background: #f5f5f5; padding: 2px 4px; }
"""

# Click a column header to sort its table (again: the other way). Cells sort by data-v (a number)
# when they have one, else by their text (digits compared as numbers); blanks go last.
SORT_SCRIPT = """<script>
document.querySelectorAll("table.sortable").forEach(table => {
  table.querySelectorAll("thead th").forEach((th, col) => th.addEventListener("click", () => {
    const up = th.dataset.dir !== "asc", body = table.tBodies[0];
    table.querySelectorAll("thead th").forEach(h => delete h.dataset.dir);
    th.dataset.dir = up ? "asc" : "desc";
    const key = row => { const c = row.cells[col]; return c ? (c.dataset.v ?? c.textContent.trim()) : ""; };
    const cmp = (a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");
      const d = isNaN(x) || isNaN(y) ? x.localeCompare(y, undefined, {numeric: true}) : x - y;
      return up ? d : -d;
    };
    [...body.rows].sort(cmp).forEach(row => body.appendChild(row));
  }));
});
</script>"""


def html_cell(value: Any, css: str = "") -> str:
    """A table cell: text left-aligned; a number rounded, its full value in data-v for sorting."""
    esc = html.escape
    if isinstance(value, str):
        return f'<td class="text {css}">{esc(value)}</td>'
    v = number(value)
    return f'<td class="{css}"' + (f' data-v="{v!r}"' if v is not None else "") + f">{esc(fmt(value))}</td>"


def html_table(table_id: str, header: list[str], rows: list[str]) -> str:
    """A sortable table of pre-rendered <tr> rows."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return (
        f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def summary_html(jobs: list[dict[str, Any]], keys: list[str], metric: str, descending: bool) -> str:
    """The jobs table: best per data set in green, a job worse than PCA flagged in its vs_pca cell."""
    esc = html.escape
    header, rows, best = table_rows(jobs, keys, metric, descending)
    by_name, winners = {job["dir"].name: job for job in jobs}, set(best.values())
    pca_col = header.index("vs_pca")
    out = []
    for row in rows:
        job = by_name[row[0]]
        css = ("best" if row[0] in winners else str(job["summary"].get("status"))) + (
            " worse-pca" if worse_than_pca(job) else ""
        )
        link = f'<td class="text" data-v="{esc(row[0])}"><a href="#job-{esc(row[0])}">{esc(row[0])}</a></td>'
        cells = "".join(html_cell(v, "pca" if i == pca_col else "") for i, v in enumerate(row) if i)
        out.append(f'<tr class="{esc(css)}">{link}{cells}</tr>')
    return html_table("summary", header, out)


def groups_html(jobs: list[dict[str, Any]], keys: list[str], metric: str, descending: bool) -> str:
    """The seed-group table (mean ± std, n; sorted by the mean) and each data set's best group against the next."""
    esc = html.escape
    groups, metrics, separated = group_rows(jobs, keys, metric, descending)
    best = {id(s.best) for s in separated}
    rows = []
    for g in groups:
        stats = [g.stats(m) for m in metrics]
        cells = [html_cell(g.dataset), html_cell(g.short_label), html_cell(g.n)]
        cells += [f'<td data-v="{s[0]!r}">{esc(mean_std(s, g.n))}</td>' if s[2] else "<td></td>" for s in stats]
        rows.append(f'<tr class="{"best" if id(g) in best else ""}">{"".join(cells)}</tr>')
    lines = "".join(f"<li>{esc(s.line(metric))}</li>" for s in separated)
    return (
        f"<h2>Seeds aggregated</h2><p>Jobs that differ only in <code>{SEED}</code>: mean ± sample std (ddof=1) "
        "over each group's completed jobs.</p>"
        + html_table("groups", ["data set", "group", "n", *metrics], rows)
        + f'<ul id="separation">{lines}</ul>'
    )


def write_index_html(
    jobs: list[dict[str, Any]],
    keys: list[str],
    sweep_dir: Path,
    metric: str,
    descending: bool,
    comparison_figures: Sequence[str],
) -> None:
    """index.html: the summary table (and seed groups), the comparison figures, then every job's figures
    and config differences. Images are linked by relative path, so the page works from file:// and
    moves with the sweep folder; the only script is the inline table sort."""
    esc = html.escape
    best = best_text(rank(jobs, keys, metric, descending)[1])
    flagged = any(worse_than_pca(job) for job in jobs)
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>aecli sweep report: {esc(sweep_dir.name)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<h1>aecli sweep report</h1><p><code>{esc(str(sweep_dir))}</code>: {len(jobs)} jobs, swept "
        f"{esc(', '.join(keys) or 'nothing')}; sorted by <code>{esc(metric)}</code> within each data set; "
        + (esc(best) if best and best.startswith("best on ") else f"best completed job: {esc(best or 'none')}")
        + ". Click a column header to sort."
        + (f" {WORSE}: does not beat PCA with the model's code size." if flagged else "")
        + "</p>",
        "<h2>Summary</h2>" + summary_html(jobs, keys, metric, descending),
    ]
    if SEED in keys:
        parts.append(groups_html(jobs, keys, metric, descending))
    notes = job_notes(jobs)
    if notes:
        parts.append('<h2>Not read</h2><ul id="not-read">')
        parts += [f'<li><a href="#job-{esc(name)}">job {esc(name)}</a>: {esc(note)}</li>' for name, note in notes]
        parts.append("</ul>")
    if comparison_figures:
        parts.append("<h2>Comparisons</h2>")
        parts += [f'<img class="wide" src="{esc(name)}" alt="{esc(name)}">' for name in comparison_figures]
    parts += ["<h2>Jobs</h2>", *job_sections(jobs, keys), SORT_SCRIPT, "</body></html>\n"]
    write_text(sweep_dir / "index.html", "\n".join(parts))


def job_sections(jobs: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """One section per job: status, notes, the config values that differ between jobs, its figures."""
    esc = html.escape
    differing = config_differences(jobs)
    parts = []
    for job in jobs:
        name = job["dir"].name
        shown = [k for k in differing if k in job["config"]]
        diffs = "\n".join(f"{k}: {json.dumps(job['config'][k], default=str)}" for k in shown)
        parts.append(
            f'<section class="job" id="job-{esc(name)}"><h3>job {esc(name)}: {esc(job_label(job, keys))}</h3>'
            f"<p>status: {esc(status_text(job))}"
            + (f"; {esc(pca_verdict(job))}" if pca_verdict(job) else "")
            + "</p>"
            + "".join(f"<p>not read: {esc(note)}</p>" for note in job.get("notes", []))
            + f"<p>config values that differ between jobs:</p><pre>{esc(diffs or '(none)')}</pre>"
        )
        for image in sorted(job["dir"].glob("*.png")):
            rel = f"{name}/{image.name}"
            parts.append(f'<img src="{esc(rel)}" alt="{esc(rel)}" title="{esc(rel)}">')
        parts.append("</section>")
    return parts


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


def draw_comparisons(jobs: list[dict[str, Any]], keys: list[str], sweep_dir: Path, figures: Sequence[str]) -> list[str]:
    """Every comparison figure the jobs' files allow; returns the names written. Drawn side by side
    where a figure pool is open (aecli.reporting.drawing: the vectorized launcher's), else one by
    one. A figure that fails to draw (a bug, odd data) is logged and left out: the tables and the
    page are still written."""
    from aecli.reporting import drawing

    drawings = [(f"comparison_{f}", functools.partial(write_comparison_figure, figure=f)) for f in figures]
    drawings += [
        (name, functools.partial(write_curve_overlay, steps=steps))
        for name, steps in [("comparison_loss_curves.png", False), ("comparison_step_losses.png", True)]
    ]
    calls = [functools.partial(draw_one, draw, jobs, keys, sweep_dir / name) for name, draw in drawings]
    written = []
    for (name, _), (drawn, notes, failure) in zip(drawings, drawing.draw_all(calls)):
        for job, added in zip(jobs, notes):
            job.setdefault("notes", []).extend(added)
        if failure:
            log.warning("sweep report: %s could not be drawn (%s)", name, failure)
        elif drawn:
            written.append(name)
    return written


def draw_one(
    draw: Callable[..., bool], jobs: list[dict[str, Any]], keys: list[str], path: Path
) -> tuple[bool, list[list[str]], Optional[str]]:
    """One comparison figure, wherever it is drawn: (written, the notes it added to each job, a
    failure as "Type: message" or None). The notes come back as values: a worker's jobs are copies."""
    import matplotlib.pyplot as plt

    jobs = [{**job, "notes": []} for job in jobs]
    try:
        drawn, failure = bool(draw(jobs, keys, path=path)), None
    except Exception as err:  # noqa: BLE001 - one figure never costs the whole report
        plt.close("all")
        drawn, failure = False, f"{type(err).__name__}: {err}"
    return drawn, [job["notes"] for job in jobs], failure


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
    written = draw_comparisons(jobs, keys, sweep_dir, figures)  # first: what they could not read is noted in the tables
    best = write_tables(jobs, keys, sweep_dir, sort_by, descending)
    per_dataset = rank(jobs, keys, sort_by, descending)[1]
    write_index_html(jobs, keys, sweep_dir, sort_by, descending, written)
    statuses = [job["summary"].get("status") for job in jobs]
    return {
        "jobs": len(jobs),
        "statuses": {s: statuses.count(s) for s in dict.fromkeys(statuses)},
        "best": best,  # the best job, or "best on <data set>: job N; ..." with several data sets
        "best_per_dataset": per_dataset,
        "files": [
            "summary.csv",
            "summary.md",
            *(["summary_groups.csv"] if SEED in keys else []),
            *written,
            "index.html",
        ],
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`aecli-report SWEEP_DIR`: (re)build the report of a finished or partial sweep."""
    parser = argparse.ArgumentParser(prog="aecli-report", description=main.__doc__)
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (holds job folders 0, 1, ...)")
    parser.add_argument("--sort-by", default="final_val_loss", help="summary field or analysis metric to sort by")
    parser.add_argument("--descending", action="store_true", help="highest value first")
    parser.add_argument(
        "--figures",
        nargs="*",
        default=list(DEFAULT_FIGURES),
        help="per-job figures to compare (error_map.png is drawn from its data, others tiled)",
    )
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
