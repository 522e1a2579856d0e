"""`aecli-reproduce`: run every study experiment over several seeds and judge, claim by claim, whether
the study reproduced.

Each experiment in conf/experiment/ runs as its own `python -m aecli -m` process over N seeds (its own
seed and the N-1 after it; with whatever it sweeps itself), into DIR/<experiment>/, exactly as a user
would type it, its seeds stacked by hydra/launcher=vectorized where the jobs can train as one model.
The results are then read back only from the jobs' summary.json files. The claims are data
(aecli/claims.py): what the study says, one number of ours per seed that answers it, and the
tolerance, with the reason for it. Each claim gets its values, their mean, a 95% t-interval and one of
three verdicts (reproduced, not reproduced, inconclusive); DIR/reproduction.json holds them, and
DIR/reproduction.md and DIR/index.html show them, the page with the values of every seed drawn.

    aecli-reproduce --out repro                 # every study over 5 seeds (about 25 min on 2 CPU cores)
    aecli-reproduce --fast --seeds 3 --out smoke   # the same as smoke runs (a few minutes)
    aecli-reproduce --out repro hydra.launcher.processes=2   # extra overrides go to every aecli command
    python -m aecli.reproduce --docs repro      # docs/reproduction.json, the README's table, the study pages

Ctrl-C stops the experiment in progress (aecli's own clean stop), writes the partial report with
the rest marked "not run" and exits 130. `--resume` reruns into a previous reproduction and keeps
the experiments it completed with the same settings.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from aecli.claims import (
    CLAIMS,
    INCONCLUSIVE,
    INTERVAL_RULE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    Largest,
    Ratio,
    Read,
    Runs,
    judge,
    seed_of,
)
from aecli.errors import ConfigError
from aecli.folders import atomic_write, claim_folder, open_append, read_regular
from aecli.memory import cores
from aecli.reporting.jobs import number, read_jobs, read_summary
from aecli.signals import STOP_SIGNALS

MANIFEST = "reproduction.json"  # marks DIR as a reproduction: what ran, with which settings, how it ended
FAST_OVERRIDES = ("trainer.fast_dev_run=true",)
DEFAULT_SEED = 1337  # conf/config.yaml's, for an experiment that names none
# Seeds per experiment by default: 5 is the fewest for which a directional claim whose five values all
# agree has a t-interval clear of the edge in most studies here, and the full run over 5 seeds takes
# about 2x the one-seed run on 2 cores (stacked seeds; README, "Studies").
SEEDS = 5

# Run order: cheapest first, so a reproduction stopped early (or cut off by a deadline) has the most
# studies. Every experiment in conf/experiment/ must be here (tests/test_reproduce.py checks).
EXPERIMENTS = (
    "nonlinear_2d",
    "rectangle_frozen_decoder",
    "rectangle_capacity",
    "activation_penalty",
    "mnist_bottleneck",
    "swiss_roll",
    "rectangle_gd_vs_sgd",
    "mnist_denoising",
    "mnist_wide",
    "beta_curves",
)


# ------------------------------------------------------------------------------------ the experiments
@dataclass
class Outcome:
    """How one experiment of this reproduction ended, as reproduction.json keeps it."""

    status: str = "not run"  # completed | failed | interrupted | not run
    seconds: Optional[float] = None
    exit_code: Optional[int] = None
    note: str = ""  # the error line, or "kept from the previous reproduction"
    command: str = ""


def experiment_file(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("aecli.conf"))) / "experiment" / f"{name}.yaml"


def hydra_path(path: Path) -> str:
    """A folder as a Hydra override value: quoted when it holds anything but plain path characters."""
    text = str(path)
    if re.fullmatch(r"[\w/.\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def experiment_seeds(name: str, seeds: int) -> list[int]:
    """The seeds an experiment runs with: its own (the study's) seed and the `seeds - 1` after it, so the
    first is the run `aecli experiment=<name>` makes."""
    from omegaconf import OmegaConf

    first = OmegaConf.select(OmegaConf.load(experiment_file(name)), "seed", default=DEFAULT_SEED)
    return [int(first) + k for k in range(seeds)]


def command(name: str, out: Path, fast: bool, extra: Sequence[str], seeds: int = 1) -> list[str]:
    """The aecli command line of one experiment over its seeds, as a user would type it (after
    `python`): a sweep over `seed` (and whatever the experiment sweeps itself), its jobs stacked by
    hydra/launcher=vectorized wherever they can train as one model, on every core."""
    return [
        "-m",
        "aecli",
        "-m",
        f"experiment={name}",
        "seed=" + ",".join(str(s) for s in experiment_seeds(name, seeds)),
        "hydra/launcher=vectorized",
        f"hydra.launcher.processes={cores()}",
        *(FAST_OVERRIDES if fast else ()),
        f"hydra.sweep.dir={hydra_path(out / name)}",
        *extra,
    ]


def folder_status(folder: Path) -> tuple[str, str]:
    """("completed" | "failed", why) from the run folder's summary.json, or every job's in a sweep."""
    if (folder / "summary.json").exists():
        summaries = [read_summary(folder / "summary.json")[0] or {"status": "unreadable"}]
    elif folder.is_dir():
        summaries = [job["summary"] for job in read_jobs(folder)]
    else:
        summaries = []
    if not summaries:
        return "failed", "no summary.json"
    bad = [s for s in summaries if s.get("status") != "completed"]
    if not bad:
        return "completed", ""
    first = bad[0]
    return "failed", f"{len(bad)} of {len(summaries)} runs {first.get('status')}" + (
        f": {str(first['error']).splitlines()[0]}" if first.get("error") else ""
    )


def last_error(log: Path) -> str:
    """The line of an experiment's log that says why it failed: aecli's last one-line error, else the
    first line of the output's last paragraph (Hydra's override errors), without Hydra's hint about
    HYDRA_FULL_ERROR."""
    try:
        text = log.read_text(errors="replace")[-20000:]
    except OSError:
        return ""
    text = "\n".join(line for line in text.splitlines() if not line.startswith("$ python "))  # our header
    lines = [line.strip() for line in text.splitlines() if line.strip() and "HYDRA_FULL_ERROR" not in line]
    errors = [line for line in lines if "error:" in line.lower() or line.startswith("Traceback")]
    if errors and not errors[-1].startswith("Traceback"):
        return errors[-1][:300]
    if errors:  # a traceback: its last line names the exception
        return lines[-1][:300]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip() and "HYDRA_FULL_ERROR" not in p]
    return paragraphs[-1].splitlines()[0].strip()[:300] if paragraphs else ""


class Runner:
    """Runs one experiment at a time as a child process in its own process group, so a Ctrl-C in the
    terminal reaches only aecli-reproduce, which passes it on once: the child stops cleanly (aecli's
    first-signal stop), and the loop then stops too. A second signal is passed on as well (abort)."""

    def __init__(self) -> None:
        self.child: Optional[subprocess.Popen[bytes]] = None
        self.stopped = threading.Event()

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.stopped.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)

    def run(self, argv: list[str], log: Path) -> int:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open_append(log) as stream:
            stream.write(f"$ python {' '.join(argv)}\n")
            stream.flush()
            self.child = subprocess.Popen(
                [sys.executable, *argv], stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            try:
                return self.child.wait()
            finally:
                self.child = None


# ------------------------------------------------------------------------------------ the folder
def claim_out_dir(out: Path, resume: bool) -> Optional[dict[str, Any]]:
    """Claim `out` as aecli claims every folder it writes (aecli.folders.claim_folder: created, locked
    against a second aecli-reproduce): a new or empty folder, or with --resume the previous reproduction
    it holds, which must then hold only plain files and folders (no link, FIFO or device planted in it).
    Returns that reproduction's manifest (None for a new folder). A folder holding anything else, or a
    previous reproduction without --resume, is one sentence: a reproduction never deletes finished runs."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a new or empty folder")
    if not out.exists() or not any(out.iterdir()):
        claim_folder(out, "--out")
        return None
    manifest = read_manifest(out)
    if manifest is None:
        raise ConfigError(
            f"--out {out} is not empty and holds no previous reproduction ({MANIFEST}); choose a new or empty folder"
        )
    if not resume:
        raise ConfigError(
            f"--out {out} holds a previous reproduction; continue it with --resume (its completed experiments are "
            f"kept, the others set aside in {out / PREVIOUS}), or choose a new folder"
        )
    claim_folder(out, "--out", resume_of=out)
    return manifest


def read_manifest(out: Path) -> Optional[dict[str, Any]]:
    path = out / MANIFEST
    if path.is_symlink():
        return None
    try:
        manifest = json.loads(read_regular(path, 1024 * 1024))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("experiments"), dict):
        return None
    return manifest


def write_manifest(out: Path, settings: dict[str, Any], outcomes: dict[str, Outcome], wall: float) -> None:
    data = {**settings, "wall_seconds": round(wall, 1), "experiments": {k: vars(v) for k, v in outcomes.items()}}
    atomic_write(out / MANIFEST, lambda f: f.write(json.dumps(data, indent=2).encode()))


def kept(previous: Optional[dict[str, Any]], name: str, settings: dict[str, Any]) -> Optional[Outcome]:
    """The previous reproduction's outcome of `name` when it completed with the same settings (--resume)."""
    same = ("fast", "overrides", "seeds")
    if previous is None or {k: previous.get(k, 1 if k == "seeds" else None) for k in same} != {
        k: settings[k] for k in same
    }:
        return None
    record = previous["experiments"].get(name)
    if not isinstance(record, dict) or record.get("status") != "completed":
        return None
    known = {k: record[k] for k in vars(Outcome()) if k in record}
    return Outcome(**{**known, "note": "kept from the previous reproduction"})


# ------------------------------------------------------------------------------------ the loop
def reproduce(out: Path, fast: bool, overrides: Sequence[str], resume: bool = False, seeds: int = SEEDS) -> int:
    """Run every experiment over `seeds` seeds into `out`, then write the reports; 0 when all completed,
    1 when one failed, 130 when stopped by a signal (the report is written in every case)."""
    previous = claim_out_dir(out, resume)
    (out / "logs").mkdir(exist_ok=True)
    settings = {"aecli_reproduce": 2, "fast": fast, "overrides": list(overrides), "seeds": seeds, "started": _now()}
    outcomes = {
        name: Outcome(command="python " + " ".join(command(name, out, fast, overrides, seeds))) for name in EXPERIMENTS
    }
    runner, start = Runner(), time.perf_counter()
    handlers = {sig: signal.signal(sig, runner.on_signal) for sig in STOP_SIGNALS}
    try:
        for number_, name in enumerate(EXPERIMENTS, 1):
            if runner.stopped.is_set():
                break
            outcomes[name] = kept(previous, name, settings) or outcomes[name]
            if outcomes[name].status != "completed":
                set_aside(out, name)
                outcomes[name] = run_one(runner, name, out, fast, overrides, seeds)
            print(f"[{number_}/{len(EXPERIMENTS)}] {name}: {describe(outcomes[name])}", flush=True)
            write_manifest(out, settings, outcomes, time.perf_counter() - start)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    wall = time.perf_counter() - start
    write_manifest(out, {**settings, "finished": _now()}, outcomes, wall)
    write_reports(out)
    print(f"reproduction: {out / 'reproduction.md'} and {out / 'index.html'} ({duration(wall)})")
    if runner.stopped.is_set():
        return 130
    return 0 if all(o.status == "completed" for o in outcomes.values()) else 1


PREVIOUS = "previous"  # earlier attempts at an experiment that --resume runs again, kept: DIR/previous/<name>-<n>


def set_aside(out: Path, name: str) -> None:
    """An experiment about to run again keeps its earlier attempt (its completed jobs, its resumable runs,
    its log) under DIR/previous/<name>-<n>: aecli wants an empty folder, and nothing finished is deleted."""
    folder, log = out / name, out / "logs" / f"{name}.log"
    if not folder.exists() and not log.exists():
        return
    n = 1
    while (out / PREVIOUS / f"{name}-{n}").exists() or (out / PREVIOUS / f"{name}-{n}.log").exists():
        n += 1
    (out / PREVIOUS).mkdir(exist_ok=True)
    if folder.exists():
        folder.rename(out / PREVIOUS / f"{name}-{n}")
    if log.exists():
        log.rename(out / PREVIOUS / f"{name}-{n}.log")


def run_one(runner: Runner, name: str, out: Path, fast: bool, overrides: Sequence[str], seeds: int) -> Outcome:
    """One experiment over its seeds as a child process, its output in logs/<name>.log; its outcome
    from the exit code and the jobs' summaries."""
    argv = command(name, out, fast, overrides, seeds)
    log = out / "logs" / f"{name}.log"
    start = time.perf_counter()
    code = runner.run(argv, log)
    seconds = round(time.perf_counter() - start, 1)
    status, why = folder_status(out / name)
    if code != 0 and status == "completed":
        status, why = "failed", f"exit status {code}"
    if status != "completed" and runner.stopped.is_set():
        status = "interrupted"
    note = "" if status == "completed" else (last_error(log) or why)
    return Outcome(status, seconds, code, note, "python " + " ".join(argv))


def describe(outcome: Outcome) -> str:
    time_text = f" in {duration(outcome.seconds)}" if outcome.seconds is not None else ""
    return f"{outcome.status}{time_text}" + (f" ({outcome.note})" if outcome.note else "")


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------------------------ verdicts
VERDICT_TEXT = {REPRODUCED: "✓ reproduced", NOT_REPRODUCED: "✗ not reproduced", INCONCLUSIVE: "? inconclusive"}
FAILED, NOT_RUN = "failed", "not run in this reproduction"


def judged_claims(out: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every claim judged over the seeds of the runs under `out` (claims.judge), with its verdict as the
    reports show it: an experiment it reads that failed or did not run comes first."""
    statuses = {k: v.get("status", "not run") for k, v in manifest["experiments"].items() if isinstance(v, dict)}
    runs, judged = Runs(out), []
    for claim in CLAIMS:
        record = judge(claim, runs)
        needed = [statuses.get(name, "not run") for name in sorted(claim.experiments())]
        if any(s == "failed" for s in needed):
            shown = FAILED
        elif any(s != "completed" for s in needed):
            shown = NOT_RUN
        else:
            shown = VERDICT_TEXT[record["verdict"]] + ("" if record["n"] else " (no value)")
        judged.append({**record, "experiment": claim.experiment, "shown": shown, "figure": figure_of(claim, out)})
    return judged


def figure_of(claim: Claim, out: Path) -> str:
    """The figure beside a claim, relative to `out`: the sweep report's, else the first seed's job's
    (the first job of its Read's configuration); "" when the run has none."""
    if not claim.figure:
        return ""
    folder = out / claim.experiment
    if (folder / claim.figure).is_file():
        return f"{claim.experiment}/{claim.figure}"
    first = claim.ours
    while not isinstance(first, Read):
        first = (
            first.values[0] if isinstance(first, Largest) else first.top if isinstance(first, Ratio) else first.first
        )
    jobs = [(seed_of(o, s), d) for o, s, d in Runs(out).of(claim.experiment) if first.job.items() <= o.items()]
    for _, job_dir in sorted(jobs, key=lambda j: (j[0] is None, j[0] or 0)):
        if (job_dir / claim.figure).is_file():
            return (job_dir / claim.figure).relative_to(out).as_posix()
    return ""


def number_text(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4g}"


def ours_text(row: dict[str, Any]) -> str:
    """ "0.93 [0.85, 1.01] (n=5)": the mean over seeds, its interval and the number of seeds."""
    if not row["n"]:
        return "—"
    lo, hi = row["interval"]
    if row["n"] == 1:
        return f"{number_text(row['mean'])} (one seed)"
    kind = ", geometric" if row.get("scale") == "log" else ""
    return f"{number_text(row['mean'])} [{number_text(lo)}, {number_text(hi)}] (n={row['n']}{kind})"


def study_text(row: dict[str, Any]) -> str:
    said = row["study_says"]
    if isinstance(said, str):
        return f"\u201c{said}\u201d"
    return f"{said:.4g}" + (f" ({row['study_note']})" if row.get("study_note") else "")


# ------------------------------------------------------------------------------------ reports
def links(out: Path, name: str) -> list[str]:
    """An experiment's report files that exist, relative to `out`: its sweep's index.html and summary.md, and
    its log."""
    reports = [f"{name}/{f}" for f in ("index.html", "summary.md")] + [f"logs/{name}.log"]
    return [r for r in reports if (out / r).is_file()]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def claims_markdown(claims: list[dict[str, Any]], readme: bool = False) -> list[str]:
    """The claims table: ours as the mean over seeds with its interval; for the README without links into
    the reproduction folder and without the tolerances' reasons (reproduction.md and aecli/claims.py give them)."""
    lines = [
        "| study | claim | the study | ours: mean [95% interval] (seeds) | tolerance | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in claims:
        name = f"`{row['experiment']}`" if readme else f"[`{row['experiment']}`](#{row['experiment']})"
        ours = f"{ours_text(row)}: {row['metric']}"
        tolerance = row["tolerance"] if readme else f"{row['tolerance']}: {row['why']}"
        cells = [name, row["claim"], study_text(row), ours, tolerance, row["shown"]]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return lines


def summary_line(manifest: dict[str, Any], claims: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in claims:
        counts[row["shown"]] = counts.get(row["shown"], 0) + 1
    seeds = manifest.get("seeds", 1)
    mode = (
        "smoke runs (--fast: the numbers check the pipeline, not the studies)" if manifest.get("fast") else "full runs"
    )
    verdicts = ", ".join(f"{n} {v}" for v, n in counts.items())
    return (
        f"{len(claims)} claims ({verdicts}); {mode} over {seeds} seed{'s' * (seeds != 1)}; "
        f"started {manifest.get('started', '?')}, total wall time {duration(manifest.get('wall_seconds')) or '?'}"
    )


def reproduction_markdown(out: Path, manifest: dict[str, Any]) -> str:
    claims = manifest["claims"]
    extra = " ".join(manifest.get("overrides", []))
    lines = [
        "# Reproduction of the studies",
        "",
        summary_line(manifest, claims) + ".",
        "",
        f"Verdicts: {INTERVAL_RULE}.",
        "",
    ]
    if extra:
        lines += [f"Overrides given to every experiment: `{extra}`.", ""]
    lines += claims_markdown(claims) + ["", "Values per seed:", ""]
    for row in claims:
        values = ", ".join(f"{s}: {v:.4g}" for s, v in zip(row["seeds"], row["values"])) or "none"
        lines.append(f"- `{row['experiment']}`, {row['claim']}: {values}")
    lines += ["", "## Experiments", ""]
    for name in EXPERIMENTS:
        record = manifest["experiments"].get(name, {})
        lines += [f"### {name}", "", f"`{record.get('command', '')}`", ""]
        lines.append(
            f"{record.get('status', 'not run')}"
            + (f" in {duration(record['seconds'])}" if record.get("seconds") else "")
        )
        if record.get("note"):
            lines[-1] += f": {record['note']}"
        lines += ["", "Files: " + " · ".join(f"[{r}]({quote(r)})" for r in links(out, name)), ""]
    return "\n".join(lines)


def strip_svg(row: dict[str, Any], width: int = 240, height: int = 34) -> str:
    """The claim's values, one dot per seed, over the range the tolerance accepts (green) and the
    t-interval of their mean (a black bar, the mean a tick), on a log axis for a ratio: where a reader
    would rather look than read."""
    values = row["values"]
    if not values:
        return ""
    log = row.get("scale") == "log"
    at = (lambda v: math.log10(v) if v > 0 else -math.inf) if log else (lambda v: v)  # noqa: E731
    lo_acc, hi_acc = (at(v) if v is not None else math.nan for v in row["accepted"])
    ends = [at(v) for v in values] + [at(x) for x in row["interval"] if x is not None]
    ends += [x for x in (lo_acc, hi_acc) if math.isfinite(x)]
    low, high = min(ends), max(ends)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    x = lambda v: 6 + (width - 12) * (at(v) - low) / (high - low)  # noqa: E731
    left = 6 + (width - 12) * (lo_acc - low) / (high - low) if math.isfinite(lo_acc) else 0.0
    right = 6 + (width - 12) * (hi_acc - low) / (high - low) if math.isfinite(hi_acc) else float(width)
    left, right = max(left, 0.0), min(right, float(width))
    parts = [f'<rect x="{left:.1f}" y="2" width="{max(right - left, 0):.1f}" height="{height - 14}" fill="#dff0d8"/>']
    lo, hi = row["interval"]
    if lo is not None and hi is not None and (not log or lo > 0):
        parts.append(f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="9" y2="9" stroke="#222" stroke-width="2"/>')
        parts.append(f'<line x1="{x(row["mean"]):.1f}" x2="{x(row["mean"]):.1f}" y1="4" y2="14" stroke="#222"/>')
    dots = [
        f'<circle cx="{x(v):.1f}" cy="{15 + 3 * (i % 3)}" r="3" fill="#1f5fa8" fill-opacity="0.7"/>'
        for i, v in enumerate(values)
    ]
    shown = (lambda v: f"{10**v:.3g}") if log else (lambda v: f"{v:.3g}")  # noqa: E731
    parts += dots
    parts.append(
        f'<text x="2" y="{height - 1}" font-size="9" fill="#555">{shown(low)}</text>'
        f'<text x="{width - 2}" y="{height - 1}" font-size="9" fill="#555" text-anchor="end">{shown(high)}'
        + (" (log)" if log else "")
        + "</text>"
    )
    return f'<svg width="{width}" height="{height}" role="img">' + "".join(parts) + "</svg>"


def reproduction_html(out: Path, manifest: dict[str, Any]) -> str:
    claims, esc = manifest["claims"], html.escape
    columns = ("study", "claim", "the study", "ours: mean [95% interval] (seeds)", "per seed", "tolerance", "verdict")
    head = "".join(f"<th>{h}</th>" for h in columns)
    body = []
    for row in claims:
        metric = re.sub(r"`([^`]*)`", r"<code>\1</code>", esc(row["metric"]))
        figure = row.get("figure") or ""
        thumb = (
            f"<br><a href='{quote(figure)}'><img class='fig' src='{quote(figure)}' alt='{esc(figure)}'></a>"
            if figure
            else ""
        )
        cells = [
            f"<a href='#{row['experiment']}'>{row['experiment']}</a>",
            esc(row["claim"]) + thumb,
            esc(study_text(row)),
            f"{esc(ours_text(row))}<br><small>{metric}</small>",
            strip_svg(row),
            f"{esc(row['tolerance'])}<br><small>{esc(row['why'])}</small>",
        ]
        mark = {"✓": "ok", "✗": "bad", "f": "bad", "?": "maybe"}.get(row["shown"][:1], "")  # f: failed
        body.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td class='{mark}'>{esc(row['shown'])}</td></tr>"
        )
    sections = [experiment_html(out, name, manifest["experiments"].get(name, {})) for name in EXPERIMENTS]
    return HTML_PAGE.format(
        summary=esc(summary_line(manifest, claims)),
        rule=esc(INTERVAL_RULE),
        head=head,
        body="\n".join(body),
        sections="\n".join(sections),
    )


def experiment_html(out: Path, name: str, record: dict[str, Any]) -> str:
    esc = html.escape
    status = esc(str(record.get("status", "not run"))) + (
        f" in {duration(record['seconds'])}" if record.get("seconds") else ""
    )
    note = f": {esc(record['note'])}" if record.get("note") else ""
    report_links = " · ".join(f"<a href='{quote(r)}'>{esc(r)}</a>" for r in links(out, name))
    figures = sorted(p.relative_to(out).as_posix() for p in (out / name).glob("*.png")) if (out / name).is_dir() else []
    thumbs = "".join(
        f"<a href='{quote(f)}'><img src='{quote(f)}' alt='{esc(f)}' title='{esc(f)}'></a>" for f in figures
    )
    return (
        f"<h3 id='{name}'>{name}</h3><p><code>{esc(str(record.get('command', '')))}</code></p>"
        f"<p>{status}{note}</p><p>{report_links}</p><div class='thumbs'>{thumbs}</div>"
    )


HTML_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>aecli reproduction</title>
<style>
body {{ font: 14px/1.4 sans-serif; margin: 1.5em; max-width: 1500px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }}
th {{ background: #f2f2f2; text-align: left; cursor: pointer; }} small {{ color: #555; }}
td.ok {{ color: #106010; }} td.bad {{ color: #a01010; font-weight: bold; }} td.maybe {{ color: #8a6d00; }}
.thumbs img {{ height: 160px; margin: 2px; border: 1px solid #ddd; }} img.fig {{ height: 90px; margin-top: 4px; }}
</style></head><body>
<h1>Reproduction of the studies</h1>
<p>{summary}</p>
<p><small>Verdicts: {rule}. Per seed: one dot a seed, the green band what the tolerance accepts, the bar the
interval of the mean.</small></p>
<table><tr>{head}</tr>
{body}
</table>
<h2>Experiments</h2>
{sections}
<script>
// click a column heading to sort the claims by it (again: the other way round)
document.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {{
  const table = th.closest("table"), rows = [...table.querySelectorAll("tr")].slice(1);
  const dir = th.dataset.dir = th.dataset.dir === "1" ? "-1" : "1";
  rows.sort((a, b) => dir * a.cells[col].innerText.localeCompare(b.cells[col].innerText, undefined, {{numeric: true}}));
  rows.forEach(row => table.appendChild(row));
}}));
</script>
</body></html>
"""


def write_reports(out: Path) -> dict[str, Any]:
    """Judge every claim from the runs under `out` into reproduction.json (its `claims`), then write
    reproduction.md and index.html from it; the manifest as written."""
    manifest = read_manifest(out) or {"experiments": {}}
    manifest = {**manifest, "interval_rule": INTERVAL_RULE, "claims": judged_claims(out, manifest)}
    atomic_write(out / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
    for name, text in (
        ("reproduction.md", reproduction_markdown(out, manifest)),
        ("index.html", reproduction_html(out, manifest)),
    ):
        atomic_write(out / name, lambda f, text=text: f.write(text.encode()))
    return manifest


def readme_table(manifest: dict[str, Any]) -> str:
    """The README's studies table, from a full reproduction's manifest (reproduction.json, with its
    judged claims): the same rows as reproduction.md, without links into the reproduction folder."""
    if manifest.get("fast"):
        raise ConfigError("that reproduction ran --fast: its numbers are smoke runs; give a full one")
    if not isinstance(manifest.get("claims"), list):
        raise ConfigError(
            f"that {MANIFEST} holds no judged claims; rewrite it with python -m aecli.reproduce --report DIR"
        )
    stamp = "python -m aecli.reproduce --docs DIR` after `aecli-reproduce --out DIR"
    lines = [
        f"<!-- reproduction table: generated by `{stamp}`, from docs/reproduction.json; do not edit by hand -->",
        "",
    ]
    lines += claims_markdown(manifest["claims"], readme=True)
    lines += ["", summary_line(manifest, manifest["claims"]) + f". Verdicts: {INTERVAL_RULE}."]
    missing = [n for n in EXPERIMENTS if manifest["experiments"].get(n, {}).get("status") != "completed"]
    if missing:
        lines[-1] += f" Not run in this reproduction: {', '.join(missing)}."
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ study pages
# The numbers on each study's page (docs/studies/<page>.md): per experiment, the summary fields and
# metrics shown, one row per sweep job (or the run, and its transfer source). `--docs DIR` writes them
# between the page's <!-- reproduction:<experiment>:start --> and :end --> markers.
LOSSES = ("final_train_loss", "final_val_loss")
DOC_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "swiss_roll": ("swiss_roll", ("train_rmse_train_mode", "new_roll_rmse_train_mode", "train_rmse", "new_roll_rmse")
                   + LOSSES + ("wall_seconds",)),
    "beta_curves": ("beta_curves", ("inversion_residual", "inversion_c1", "inversion_c2", "inversion_nfev")
                    + LOSSES + ("wall_seconds",)),
    "mnist_bottleneck": ("mnist", ("test_mse", "baseline_mean_loss", "baseline_pca_loss", "latent_knn_accuracy",
                                   "baseline_pca_knn_accuracy", "final_train_loss", "best_val_loss", "wall_seconds")),
    "mnist_wide": ("mnist", ("test_mse", "baseline_mean_loss", "baseline_pca_loss", "latent_knn_accuracy",
                             "baseline_pca_knn_accuracy", "final_train_loss", "best_val_loss", "wall_seconds")),
    "mnist_denoising": ("mnist", ("test_mse", "test_mse_noisy_input", "baseline_identity_loss", "baseline_mean_loss",
                                  "baseline_pca_loss", "final_train_loss", "best_val_loss", "best_epoch",
                                  "wall_seconds")),
    "rectangle_capacity": ("rectangle", ("final_val_loss", "data_near_curve_share", "curve_length_in_box",
                                         "untrained_data_near_curve_share", "untrained_curve_length_in_box",
                                         "wall_seconds")),
    "rectangle_frozen_decoder": ("rectangle", ("final_val_loss", "code_rank_correlation_data", "shift_mean_data",
                                               "shift_mean_near_curve", "shift_mean_far_from_curve",
                                               "shift_distance_rank_correlation", "wall_seconds")),
    "rectangle_gd_vs_sgd": ("rectangle", ("steps", "final_val_loss", "step_loss_revisit_change_std",
                                          "step_log_loss_change_std", "wall_seconds")),
    "activation_penalty": ("rectangle", ("sparsity", "mean_abs_activation", "sparsity_layer1", "sparsity_layer2",
                                         "sparsity_layer3", "final_val_loss", "wall_seconds")),
}  # fmt: skip


def seed_groups_of(folder: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, summaries) of every configuration in an experiment's folder: its jobs grouped over the seed
    by what else they vary (one group for an experiment that sweeps only the seed), each job's summary with
    its transfer source's beside it as a second group ("source")."""
    from aecli.reporting.jobs import SEED, seed_groups

    jobs = read_jobs(folder) if folder.is_dir() else []
    if (folder / "summary.json").is_file():  # an older reproduction: one run, not a sweep
        jobs = [{"dir": folder, "overrides": {}, "summary": read_summary(folder / "summary.json")[0] or {}}]
    groups = [(g.label if g.key else "run", [j["summary"] for j in g.jobs]) for g in seed_groups(jobs, [SEED])]
    if any(len(g.key) for g in seed_groups(jobs)):
        groups = [(g.label, [j["summary"] for j in g.jobs]) for g in seed_groups(jobs)]
    sources = [read_summary(j["dir"] / "source" / "summary.json")[0] for j in jobs]
    if jobs and all(s is not None for s in sources):
        groups.append(("source", [s for s in sources if s is not None]))
    return groups


def doc_table(out: Path, experiment: str) -> str:
    """One experiment's numbers as a markdown table, marked as generated, from the runs in `out`: per
    configuration the mean ± sample std (ddof=1) of each number over the seeds, and n."""
    import statistics

    manifest = read_manifest(out) or {}
    columns = DOC_TABLES[experiment][1]
    stamp = (
        f"<!-- generated by `python -m aecli.reproduce --docs DIR` from the reproduction of {manifest.get('started')}"
    )
    lines = [stamp + f" over {manifest.get('seeds', 1)} seed(s); do not edit by hand -->", ""]
    groups = seed_groups_of(out / experiment)
    if not groups or any(summary.get("status") != "completed" for _, rows in groups for summary in rows):
        return "\n".join(lines + [f"*`{experiment}`: {NOT_RUN} (or it did not complete).*"])
    lines += ["| run | n | " + " | ".join(f"`{c}`" for c in columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for label, summaries in groups:
        texts = []
        for column in columns:
            values = [
                v for s in summaries if (v := number(s.get(column, (s.get("metrics") or {}).get(column)))) is not None
            ]
            spread = f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else ""
            texts.append(f"{statistics.mean(values):.4g}{spread}" if values else "")
        lines.append(f"| {cell(label)} | {len(summaries)} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def write_docs(out: Path, docs_dir: Path) -> list[str]:
    """Fill every study page's generated blocks from the reproduction in `out`; the pages written."""
    from aecli.docs import replace_block

    written = []
    for page in sorted({page for page, _ in DOC_TABLES.values()}):
        path = docs_dir / f"{page}.md"
        text = path.read_text()
        new = text
        for experiment, (where, _) in DOC_TABLES.items():
            if where != page:
                continue
            try:
                new = replace_block(new, f"reproduction:{experiment}", doc_table(out, experiment))
            except ValueError:
                raise ConfigError(f"{path} has no <!-- reproduction:{experiment}:start/end --> markers") from None
        if new != text:
            atomic_write(path, lambda f, new=new: f.write(new.encode()))
            written.append(str(path))
    return written


def write_docs_from(out: Path) -> list[str]:
    """The repository's generated numbers from the reproduction in `out`: docs/reproduction.json (its
    manifest with the judged claims, the folder's path left out), the README's studies table (from that
    file, so a test can check the two agree) and the study pages' tables."""
    from aecli.docs import REPO, write_block

    manifest = write_reports(out)
    text = json.dumps(manifest, indent=2).replace(str(out), "DIR") + "\n"
    committed = REPO / "docs" / COMMITTED
    written = write_docs(out, REPO / "docs" / "studies")
    if not committed.is_file() or committed.read_text() != text:
        atomic_write(committed, lambda f: f.write(text.encode()))
        written.append(str(committed))
    if not write_block("reproduction", readme_table(json.loads(text))):
        written.append(str(REPO / "README.md"))
    return written


COMMITTED = "reproduction.json"  # docs/reproduction.json: the full multi-seed run the README's numbers come from


# ------------------------------------------------------------------------------------ command line
def main(argv: Optional[Sequence[str]] = None) -> int:
    """`aecli-reproduce [--fast] [--out DIR] [--resume] [OVERRIDES...]`."""
    parser = argparse.ArgumentParser(
        prog="aecli-reproduce",
        description="Run every study experiment and write DIR/reproduction.md and DIR/index.html: "
        "one row per study claim, with the study's number, ours, the tolerance and a verdict.",
    )
    parser.add_argument(
        "--fast", action="store_true", help="smoke runs (trainer.fast_dev_run=true): they check the pipeline"
    )
    parser.add_argument("--seeds", type=int, default=SEEDS, metavar="N", help=f"seeds per experiment (default {SEEDS})")
    parser.add_argument(
        "--out", type=Path, default=None, help="the reproduction folder (default outputs/reproduce-<time>)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="keep the experiments a previous reproduction in --out completed"
    )
    parser.add_argument("--readme-table", type=Path, metavar="DIR", help="print the README's table from DIR and exit")
    parser.add_argument(
        "--docs",
        type=Path,
        metavar="DIR",
        help="fill the README's studies table and docs/studies/*.md's tables from DIR and exit",
    )
    parser.add_argument("--report", type=Path, metavar="DIR", help="rewrite DIR's reports from its runs (no runs)")
    parser.add_argument("overrides", nargs="*", help="passed to every aecli command, e.g. hydra/launcher=joblib")
    args = parser.parse_args(argv)
    try:
        for given in (args.readme_table, args.report, args.docs):
            if given is not None and read_manifest(given) is None:
                raise ConfigError(f"{given} holds no reproduction ({MANIFEST}); run aecli-reproduce first")
        if args.seeds < 1:
            raise ConfigError(f"--seeds {args.seeds} is not allowed: use 1 or more")
        if args.readme_table is not None:
            print(readme_table(write_reports(args.readme_table)))
            return 0
        if args.docs is not None:
            written = write_docs_from(args.docs)
            print("\n".join(written) or "the README's table, docs/reproduction.json and the study pages are up to date")
            return 0
        if args.report is not None:
            write_reports(args.report)
            print(f"rewrote {args.report / 'reproduction.md'} and {args.report / 'index.html'}")
            return 0
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out = (args.out or Path("outputs") / f"reproduce-{stamp}").resolve()
        return reproduce(out, args.fast, args.overrides, args.resume, args.seeds)
    except ConfigError as err:
        print(f"aecli-reproduce: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or read-only disk while writing the manifest, the reports or a log
        where = f" {err.filename}" if err.filename else ""
        print(f"aecli-reproduce: error: cannot write{where}: {err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
