"""A sweep's job folders as the report reads them: overrides, summary, flattened config, and notes
on what could not be read. Reads only files, within bounds (aecli.trust), so it works the same
for every launcher and a damaged folder never costs the whole report."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from aecli.folders import FileTooLarge, NotRegularFile, read_regular
from aecli.summary import Status

READ_LIMIT = 1024 * 1024  # summary.json and .hydra/*.yaml: a real one is a few KiB, so more is not aecli's


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
    try:
        return read_regular(path, READ_LIMIT).decode("utf-8"), None
    except NotRegularFile:
        return None, "not a regular file"
    except FileTooLarge:
        return None, f"larger than {READ_LIMIT // 1024 // 1024} MiB"
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
    """Config keys (flattened) whose resolved value differs between the jobs that have them: what a swept
    override changed. Left out as noise: `_target_` keys (the class a choice names, said by its name),
    keys null in every job that has them, and keys set alike wherever present (they differ only because
    another choice lacks them, e.g. dataset.a beside dataset=spiral); a swept key itself always stays."""
    swept = set(swept_keys(jobs))
    keys = list(dict.fromkeys(k for job in jobs for k in job["config"]))
    out = []
    for key in keys:
        values = {json.dumps(job["config"][key], default=str) for job in jobs if key in job["config"]}
        target = key == "_target_" or key.endswith("._target_")
        if key in swept or (len(values) > 1 and not target):
            out.append(key)
    return out


def metric_names(jobs: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(m for job in jobs for m in job["summary"].get("metrics", {})))


def job_value(job: dict[str, Any], column: str) -> Any:
    """A summary field, or an analysis metric of that name; "" when the job has neither."""
    summary = job["summary"]
    return summary.get(column, summary.get("metrics", {}).get(column, ""))


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


def job_label(job: dict[str, Any], keys: list[str]) -> str:
    """`key=value, ...` of the swept keys: what tells this job from the others."""
    return ", ".join(f"{k}={job['overrides'].get(k)}" for k in keys) or job["dir"].name


def one_line(text: str) -> str:
    """`text` with its line breaks made spaces: a value from a job folder must not break a table row."""
    return " ".join(text.splitlines())


# ------------------------------------------------------------------ data sets and seed groups
SEED = "seed"  # the override a seed sweep varies: jobs that differ only in it are one group
ALPHA = 0.05  # Welch's t-test: a p-value below this calls the best group separated from the next


def dataset_label(job: dict[str, Any], keys: Sequence[str]) -> str:
    """The data set a job trained on: dataset.name, with the swept dataset.* overrides that change it
    ("polynomial (dataset.noise=0.1)"). "Best" is ranked only among jobs with the same label."""
    name = job["summary"].get("dataset") or job["config"].get("dataset.name") or job["overrides"].get("dataset")
    extra = [f"{k}={job['overrides'][k]}" for k in keys if k.startswith("dataset.") and k in job["overrides"]]
    label = one_line(str(name if name is not None else "unknown data"))
    return f"{label} ({', '.join(extra)})" if extra else label


def by_dataset(jobs: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Jobs per data set label, in first-seen order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        out.setdefault(dataset_label(job, keys), []).append(job)
    return out


def completed_values(jobs: list[dict[str, Any]], metric: str) -> list[float]:
    """`metric` of each completed job that reports it as a finite number (failed jobs never count)."""
    values = [number(job_value(j, metric)) for j in jobs if j["summary"].get("status") == Status.completed]
    return [v for v in values if v is not None]


@dataclass
class Group:
    """Jobs of a sweep that differ only in their seed. `key`: their swept overrides but the seed."""

    key: dict[str, Any]
    jobs: list[dict[str, Any]]
    dataset: str

    @property
    def label(self) -> str:
        """ "dataset=spiral, model=tanh": its overrides (those the seeds share)."""
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "every job"

    @property
    def short_label(self) -> str:
        """The label without the data set's own overrides, for tables that name the data set beside it."""
        keys = [k for k in self.key if k != "dataset" and not k.startswith("dataset.")]
        return ", ".join(f"{k}={self.key[k]}" for k in keys) or "every job"

    @property
    def n(self) -> int:
        """How many of its jobs completed (what the statistics can count at most)."""
        return sum(1 for j in self.jobs if j["summary"].get("status") == Status.completed)

    def values(self, metric: str) -> list[float]:
        return completed_values(self.jobs, metric)

    def stats(self, metric: str) -> tuple[float, float, int]:
        """(mean, sample standard deviation (ddof=1), n) of `metric` over the completed jobs; the std is
        nan below n=2, the mean too at n=0."""
        values = self.values(metric)
        mean = float(np.mean(values)) if values else math.nan
        return mean, float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan, len(values)


def seed_groups(jobs: list[dict[str, Any]], keys: Optional[Sequence[str]] = None) -> list[Group]:
    """The jobs grouped by every swept override but `seed`, in first-seen order (every job its own group
    when the sweep does not vary the seed). `keys`: the swept keys (default: swept_keys(jobs))."""
    keys = swept_keys(jobs) if keys is None else list(keys)
    others = [k for k in keys if k != SEED]
    groups: dict[tuple[Any, ...], Group] = {}
    for job in jobs:
        values = tuple(job["overrides"].get(k) for k in others)
        ident = values if SEED in keys else (job["dir"].name,)
        if ident not in groups:
            groups[ident] = Group(dict(zip(others, values)), [], dataset_label(job, keys))
        groups[ident].jobs.append(job)
    return list(groups.values())


@dataclass
class Separation:
    """The best seed group of a data set by a metric's mean, the next best, and Welch's t-test between them."""

    dataset: str
    best: Group
    next: Optional[Group]
    p_value: Optional[float]  # None: a group has n < 2 (or no next group), nothing to test

    def verdict(self) -> str:
        """ "separated (Welch's t-test p = 0.0012 < 0.05)", "not separated (... p = 0.31 >= 0.05)", or
        why there is no test ("n too small")."""
        if self.next is None:
            return "no other group on this data set"
        if self.p_value is None:
            return "n too small (Welch's t-test needs n >= 2 in both groups)"
        if math.isnan(self.p_value):
            return "not testable (no spread within either group)"
        if self.p_value < ALPHA:
            return f"separated (Welch's t-test p = {self.p_value:.3g} < {ALPHA})"
        return f"not separated (Welch's t-test p = {self.p_value:.3g} >= {ALPHA})"

    def line(self, metric: str) -> str:
        """ "best on spiral: model=tanh (0.012 ± 0.001, n=3); next: model=relu (0.02 ± 0.004, n=3); separated (...)"."""

        def described(g: Group) -> str:
            mean, std, n = g.stats(metric)
            return f"{g.short_label} ({mean:.4g}" + (f" ± {std:.2g}" if n >= 2 else "") + f", n={n})"

        nxt = f"; next: {described(self.next)}" if self.next is not None else ""
        return f"best on {self.dataset}: {described(self.best)}{nxt}; {self.verdict()}"


def separations(groups: list[Group], metric: str, descending: bool = False) -> list[Separation]:
    """Per data set: the group with the best mean `metric` against the next best (groups without a
    value are not ranked), with Welch's t-test (scipy.stats.ttest_ind, equal_var=False)."""
    from scipy import stats

    out = []
    for dataset in dict.fromkeys(g.dataset for g in groups):
        ranked = sorted(
            (g for g in groups if g.dataset == dataset and g.stats(metric)[2]),
            key=lambda g: -g.stats(metric)[0] if descending else g.stats(metric)[0],
        )
        if not ranked:
            continue
        best, nxt = ranked[0], ranked[1] if len(ranked) > 1 else None
        p = None
        if nxt is not None and min(best.stats(metric)[2], nxt.stats(metric)[2]) >= 2:
            p = float(stats.ttest_ind(best.values(metric), nxt.values(metric), equal_var=False).pvalue)
        out.append(Separation(dataset, best, nxt, p))
    return out
