"""`aecli-reproduce`: run every study experiment and say, claim by claim, whether it reproduced.

Each experiment in conf/experiment/ runs as its own `python -m aecli` process (a sweep with `-m`
where its YAML sweeps), into DIR/<experiment>/, exactly as a user would type it; the results are
then read back only from the run folders' summary.json files. The claims are data (CLAIMS below):
what the study says, the number it printed (or its words, or nothing but a figure), the number of
ours that answers it, and the tolerance, with the reason for it. DIR/reproduction.md and
DIR/index.html give one row per claim with a verdict, and link each experiment's report and figures.

    aecli-reproduce --out repro                 # the full studies (about 25 min on 2 CPU cores)
    aecli-reproduce --fast --out smoke          # every experiment as a smoke run: verdicts "ran"
    aecli-reproduce --out repro hydra/launcher=joblib   # extra overrides go to every aecli command
    python -m aecli.reproduce --readme-table repro      # the README's studies table, from a run

Ctrl-C stops the experiment in progress (aecli's own clean stop), writes the partial report with
the rest marked "not run" and exits 130. `--resume` reruns into a previous reproduction and keeps
the experiments it completed with the same settings.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union
from urllib.parse import quote

from aecli.errors import ConfigError
from aecli.folders import atomic_write, claim_folder, open_append, read_regular
from aecli.reporting.jobs import number, read_jobs, read_summary
from aecli.signals import STOP_SIGNALS

MANIFEST = "reproduction.json"  # marks DIR as a reproduction: what ran, with which settings, how it ended
FAST_OVERRIDES = ("trainer.fast_dev_run=true",)

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


# ------------------------------------------------------------------------------------ claims as data
@dataclass(frozen=True)
class Read:
    """One number from a run folder: a summary field or analysis metric (summary.json `metrics`),
    of the sweep job whose overrides include `job` (empty for a single run), in `experiment`
    (empty: the claim's own) and `folder` under it (e.g. "source" for a transfer's source run)."""

    metric: str
    job: dict[str, str] = field(default_factory=dict)
    experiment: str = ""
    folder: str = ""
    scale: float = 1.0  # e.g. 1 / 10,000 to put a study's per-epoch total on our per-curve scale

    def label(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.job.items())
        return f"{self.experiment + ' ' if self.experiment else ''}`{self.metric}`" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class Ratio:
    """`top / bottom`: how a claim in words ("L1 is sparser than none") becomes one number."""

    top: Read
    bottom: Read

    def label(self) -> str:
        return f"{self.top.label()} / {self.bottom.label()}"


Value = Union[Read, Ratio]


@dataclass(frozen=True)
class Tolerance:
    """How close is close enough, and why. `relative` / `absolute`: |ours - reference| <= value (as a
    share of the reference, or in its units); `above` / `below`: ours > value / ours < value (a claim
    in words). The reference is the study's number, or `target` when the study gave words."""

    kind: Literal["relative", "absolute", "above", "below"]
    value: float
    why: str
    target: Optional[float] = None

    def text(self) -> str:
        if self.kind == "above":
            return f"> {self.value:g}"
        if self.kind == "below":
            return f"< {self.value:g}"
        spread = f"{self.value:.0%}" if self.kind == "relative" else f"{self.value:g}"
        return (f"{self.target:g} " if self.target is not None else "") + f"± {spread}"

    def accepts(self, ours: float, reference: Optional[float]) -> bool:
        if self.kind == "above":
            return ours > self.value
        if self.kind == "below":
            return ours < self.value
        reference = self.target if self.target is not None else reference
        if reference is None:
            return False
        allowed = self.value * abs(reference) if self.kind == "relative" else self.value
        return abs(ours - reference) <= allowed * (1 + 1e-9)  # a value on the edge counts, rounding aside


@dataclass(frozen=True)
class Claim:
    """One row of the reproduction table. `study`: the number the study printed, its words when it
    states a direction but prints no number, or None when it only shows a figure (then ours is
    shown for the record and the verdict is "figure only")."""

    experiment: str
    text: str
    ours: Value
    study: Union[float, str, None] = None
    tolerance: Optional[Tolerance] = None
    study_note: str = ""  # where the study's number comes from, when it is not printed as is


SEED_SPREAD = (
    "one unseeded run of the study against one seeded run here; the study's own cell, rerun with other seeds, "
    "ends its first 500 epochs at over twice the loss it printed (docs/studies/swiss_roll.md)"
)
BETA_LOSS = "the study's last five epochs alone spread over 1677 to 1833 (±5%); twice that"
RESIDUAL = "a fit of another random draw of the family, so the residual may move a little; 10%"

CLAIMS: tuple[Claim, ...] = (
    Claim("nonlinear_2d", "no activation: the 2-3-2 net learns the identity, low error over the whole window "
          "(share of the window with error < 0.1; polynomial)",
          Read("error_map_share_below_threshold", {"dataset": "polynomial", "model": "linear"})),
    Claim("nonlinear_2d", "the same on the spiral",
          Read("error_map_share_below_threshold", {"dataset": "spiral", "model": "linear"})),
    Claim("nonlinear_2d", "ReLU confines the low error to a curve-shaped region (polynomial)",
          Read("error_map_share_below_threshold", {"dataset": "polynomial", "model": "relu"})),
    Claim("nonlinear_2d", "tanh without biases: a region through the origin (spiral)",
          Read("error_map_share_below_threshold", {"dataset": "spiral", "model": "tanh_nobias"})),
    Claim("swiss_roll", "RMSE on the training roll (train mode, as the study measured)",
          Read("train_rmse_train_mode"), 0.06634, Tolerance("relative", 0.2, SEED_SPREAD)),
    Claim("swiss_roll", "RMSE on a new roll, 2500 points, noise 0.1 (train mode)",
          Read("new_roll_rmse_train_mode"), 0.08295, Tolerance("relative", 0.2, SEED_SPREAD)),
    Claim("swiss_roll", "training loss at epoch 5000 (train mode)",
          Read("final_train_loss"), 0.004369, Tolerance("relative", 0.2, SEED_SPREAD)),
    Claim("swiss_roll", "RMSE on the training roll in eval mode (dropout off: how the net is used)",
          Read("train_rmse")),
    Claim("beta_curves", "Nelder-Mead over the decoder's 2-D input fits Beta(2, 4): residual norm",
          Read("inversion_residual"), 0.08783, Tolerance("relative", 0.1, RESIDUAL)),
    Claim("beta_curves", "loss of the last epoch, per curve", Read("final_train_loss"), 0.17454,
          Tolerance("relative", 0.1, BETA_LOSS), study_note="1745.3988 summed over 10,000 curves"),
    Claim("mnist_bottleneck", "a 2-D code reconstructs \"just OK\": test MSE", Read("test_mse")),
    Claim("mnist_bottleneck", "a net is \"much more powerful\" than PCA (non-linear): test MSE / PCA's with the "
          "same 2-D code",
          Ratio(Read("final_val_loss"), Read("baseline_pca_loss")), "much more powerful than PCA",
          Tolerance("below", 1.0, "a direction: the net must at least beat PCA of the same code size")),
    Claim("mnist_bottleneck", "the 2-D codes form clear, overlapping digit groups: 5-NN accuracy on them",
          Read("latent_knn_accuracy")),
    Claim("mnist_wide", "a 128-D code and 256 hidden units: test MSE", Read("test_mse")),
    Claim("mnist_wide", "\"a more expressive version of PCA\": test MSE / PCA's with the same 128-D code",
          Ratio(Read("final_val_loss"), Read("baseline_pca_loss")), "a more expressive version of PCA",
          Tolerance("below", 1.0, "a direction: the net must at least beat PCA of the same code size")),
    Claim("mnist_wide", "the first 3 of 128 code coordinates mix the digits (figure); all 128: 5-NN accuracy",
          Read("latent_knn_accuracy")),
    Claim("mnist_denoising", "from inputs with 20% of pixels masked: test MSE against the clean images",
          Read("test_mse_noisy_input")),
    Claim("rectangle_capacity", "pca converges much more slowly: final MSE, pca / big",
          Ratio(Read("final_val_loss", {"model": "pca"}), Read("final_val_loss", {"model": "big"})),
          "much slower convergence for PCA",
          Tolerance("above", 2.0, "\"much slower\": after the same 1000 epochs, at least twice the big net's MSE")),
    Claim("rectangle_capacity", "more capacity, more bends: data within 0.1 of the decoder's curve, big / small",
          Ratio(Read("data_near_curve_share", {"model": "big"}), Read("data_near_curve_share", {"model": "small"})),
          "more breakpoints in the curve", Tolerance("above", 1.0, "a direction: big covers more data than small")),
    Claim("rectangle_frozen_decoder", "a new encoder for a frozen decoder: mean code shift on the data",
          Read("shift_mean_data")),
    Claim("rectangle_frozen_decoder", "the further from the decoder's image, the larger the shift: "
          "mean shift > 1 from the curve / < 0.1 from it",
          Ratio(Read("shift_mean_far_from_curve"), Read("shift_mean_near_curve")),
          "the further from the image of the decoder, the higher the change",
          Tolerance("above", 1.0, "a direction: far points move more than near ones")),
    Claim("rectangle_frozen_decoder", "the same as a rank correlation of shift with distance to the curve",
          Read("shift_distance_rank_correlation"), "the further, the higher the change",
          Tolerance("above", 0.0, "a direction: a positive rank correlation")),
    Claim("rectangle_gd_vs_sgd", "SGD (batch 1) oscillates, GD is smooth: std of the step-to-step change "
          "of log loss, SGD / GD",
          Ratio(Read("step_log_loss_change_std", {"variant": "sgd"}),
                Read("step_log_loss_change_std", {"variant": "gd"})),
          "SGD loss is highly oscillatory", Tolerance("above", 10.0, "\"highly\": an order of magnitude at least")),
    Claim("activation_penalty", "both penalties shrink the activations: mean |h|, L1 / none",
          Ratio(Read("mean_abs_activation", {"regularizer": "activation_l1"}),
                Read("mean_abs_activation", {"regularizer": "none"})),
          "smaller activations on average (both)", Tolerance("below", 1.0, "a direction: smaller than no penalty")),
    Claim("activation_penalty", "the same for L2: mean |h|, L2 / none",
          Ratio(Read("mean_abs_activation", {"regularizer": "activation_l2"}),
                Read("mean_abs_activation", {"regularizer": "none"})),
          "smaller activations on average (both)", Tolerance("below", 1.0, "a direction: smaller than no penalty")),
    Claim("activation_penalty", "an L1 activation penalty makes activations sparse: share |h| < 1e-3, L1 / none",
          Ratio(Read("sparsity", {"regularizer": "activation_l1"}), Read("sparsity", {"regularizer": "none"})),
          "sparse activations with L1", Tolerance("above", 1.0, "a direction: L1 sparser than no penalty")),
    Claim("activation_penalty", "an L2 penalty barely differs from none: sparsity, L2 / none",
          Ratio(Read("sparsity", {"regularizer": "activation_l2"}), Read("sparsity", {"regularizer": "none"})),
          "minimal difference from no penalty",
          Tolerance("relative", 0.1, "\"minimal difference\": within 10% of no penalty's sparsity", target=1.0)),
)  # fmt: skip


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


def is_sweep(name: str) -> bool:
    """Whether the experiment's YAML sweeps (hydra.sweeper.params): it then runs with `-m`."""
    from omegaconf import OmegaConf

    return OmegaConf.select(OmegaConf.load(experiment_file(name)), "hydra.sweeper.params") is not None


def hydra_path(path: Path) -> str:
    """A folder as a Hydra override value: quoted when it holds anything but plain path characters."""
    text = str(path)
    if re.fullmatch(r"[\w/.\-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def command(name: str, out: Path, fast: bool, extra: Sequence[str]) -> list[str]:
    """The aecli command line of one experiment, as a user would type it (after `python`)."""
    sweep = is_sweep(name)
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    return [
        "-m",
        "aecli",
        *(["-m"] if sweep else []),
        f"experiment={name}",
        *(FAST_OVERRIDES if fast else ()),
        f"{key}={hydra_path(out / name)}",
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
    if previous is None or {k: previous.get(k) for k in ("fast", "overrides")} != {
        k: settings[k] for k in ("fast", "overrides")
    }:
        return None
    record = previous["experiments"].get(name)
    if not isinstance(record, dict) or record.get("status") != "completed":
        return None
    known = {k: record[k] for k in vars(Outcome()) if k in record}
    return Outcome(**{**known, "note": "kept from the previous reproduction"})


# ------------------------------------------------------------------------------------ the loop
def reproduce(out: Path, fast: bool, overrides: Sequence[str], resume: bool = False) -> int:
    """Run every experiment into `out`, then write the reports; 0 when all completed, 1 when one
    failed, 130 when stopped by a signal (the report is written in every case)."""
    previous = claim_out_dir(out, resume)
    (out / "logs").mkdir(exist_ok=True)
    settings = {"aecli_reproduce": 1, "fast": fast, "overrides": list(overrides), "started": _now()}
    outcomes = {
        name: Outcome(command="python " + " ".join(command(name, out, fast, overrides))) for name in EXPERIMENTS
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
                outcomes[name] = run_one(runner, name, out, fast, overrides)
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


def run_one(runner: Runner, name: str, out: Path, fast: bool, overrides: Sequence[str]) -> Outcome:
    """One experiment as a child process, its output in logs/<name>.log; its outcome from the exit
    code and the run folder's summaries."""
    argv = command(name, out, fast, overrides)
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


# ------------------------------------------------------------------------------------ numbers and verdicts
REPRODUCED, NOT_REPRODUCED, FIGURE_ONLY, NO_NUMBER = "✓ reproduced", "✗ not reproduced", "figure only", "no number"
RAN, FAILED, NOT_RUN = "ran", "failed", "not run in this reproduction"


def read_value(value: Value, out: Path, experiment: str) -> Optional[float]:
    """Our number for a claim, read from the run folders under `out`; None when a run or metric is missing."""
    if isinstance(value, Ratio):
        top, bottom = read_value(value.top, out, experiment), read_value(value.bottom, out, experiment)
        return None if top is None or not bottom else top / bottom
    summary = find_summary(value, out, experiment)
    if summary is None or summary.get("status") != "completed":
        return None
    found = number(summary.get(value.metric, summary.get("metrics", {}).get(value.metric)))
    return None if found is None else found * value.scale


def find_summary(read: Read, out: Path, experiment: str) -> Optional[dict[str, Any]]:
    """The summary.json a Read reads: the run's, or that of the one sweep job whose overrides include
    `read.job` (None when there is none, or more than one: a claim must name its job exactly)."""
    folder = out / (read.experiment or experiment) / read.folder
    if not read.job:
        return read_summary(folder / "summary.json")[0] if (folder / "summary.json").is_file() else None
    jobs = [j for j in read_jobs(folder) if read.job.items() <= j["overrides"].items()] if folder.is_dir() else []
    return jobs[0]["summary"] if len(jobs) == 1 else None


def experiments_of(value: Value, experiment: str) -> set[str]:
    """Every experiment a claim's number reads from (a ratio may compare two experiments)."""
    if isinstance(value, Ratio):
        return experiments_of(value.top, experiment) | experiments_of(value.bottom, experiment)
    return {value.experiment or experiment}


def verdict(claim: Claim, ours: Optional[float], statuses: dict[str, str], fast: bool) -> str:
    """The claim's verdict: the experiments it reads first (not run, failed; "ran" for a smoke
    run), then "figure only" when the study gives no number or words, "no number" when ours is
    missing, else whether ours lies within the tolerance."""
    needed = [statuses.get(name, "not run") for name in sorted(experiments_of(claim.ours, claim.experiment))]
    if any(s == "failed" for s in needed):
        return FAILED
    if any(s != "completed" for s in needed):
        return NOT_RUN
    if fast:
        return RAN
    if claim.study is None:
        return FIGURE_ONLY
    if ours is None or claim.tolerance is None:
        return NO_NUMBER
    reference = claim.study if isinstance(claim.study, float) else None
    return REPRODUCED if claim.tolerance.accepts(ours, reference) else NOT_REPRODUCED


def rows(out: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The manifest and one row of text cells per claim: what the reports show."""
    manifest = read_manifest(out) or {"experiments": {}}
    statuses = {k: v.get("status", "not run") for k, v in manifest["experiments"].items() if isinstance(v, dict)}
    fast = bool(manifest.get("fast"))
    table = []
    for claim in CLAIMS:
        ours = None if fast else read_value(claim.ours, out, claim.experiment)
        table.append(
            {
                "experiment": claim.experiment,
                "claim": claim.text,
                "study": study_text(claim),
                "ours": "" if ours is None else ours_text(claim, ours, out),
                "metric": claim.ours.label(),
                "tolerance": "" if claim.tolerance is None else claim.tolerance.text(),
                "why": "" if claim.tolerance is None else claim.tolerance.why,
                "verdict": verdict(claim, ours, statuses, fast),
            }
        )
    return manifest, table


def ours_text(claim: Claim, ours: float, out: Path) -> str:
    """Our number; for a ratio also the two numbers it divides, so the reader sees both sides."""
    if not isinstance(claim.ours, Ratio):
        return f"{ours:.4g}"
    top, bottom = (read_value(r, out, claim.experiment) for r in (claim.ours.top, claim.ours.bottom))
    return f"{ours:.4g} ({top:.4g} / {bottom:.4g})"


def study_text(claim: Claim) -> str:
    if claim.study is None:
        return "figure only"
    if isinstance(claim.study, str):
        return f"\u201c{claim.study}\u201d"
    return f"{claim.study:.4g}" + (f" ({claim.study_note})" if claim.study_note else "")


# ------------------------------------------------------------------------------------ reports
def links(out: Path, name: str) -> tuple[list[str], list[str]]:
    """(report files, figures) of one experiment that exist, as paths relative to `out`: a sweep's
    index.html, summary.md and comparison figures; a single run's summary.json and figures (and its
    transfer source's summary); and the experiment's log."""
    folder = out / name
    reports = [f"{name}/{f}" for f in ("index.html", "summary.md", "summary.json", "source/summary.json")]
    reports.append(f"logs/{name}.log")
    figures = sorted(p.relative_to(out).as_posix() for p in folder.glob("*.png")) if folder.is_dir() else []
    return [r for r in reports if (out / r).is_file()], figures


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def claims_markdown(table: list[dict[str, str]], readme: bool = False) -> list[str]:
    """The claims table; for the README without links into the reproduction folder and without the
    tolerances' reasons (reproduction.md and CLAIMS give them)."""
    lines = [
        "| study | claim | the study | ours | tolerance | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        name = f"`{row['experiment']}`" if readme else f"[`{row['experiment']}`](#{row['experiment']})"
        ours = f"{row['ours']} ({row['metric']})" if row["ours"] else f"— ({row['metric']})"
        tolerance = f"{row['tolerance']}: {row['why']}" if row["tolerance"] and not readme else row["tolerance"]
        cells = [name, row["claim"], row["study"], ours, tolerance, row["verdict"]]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return lines


def summary_line(manifest: dict[str, Any], table: list[dict[str, str]]) -> str:
    counts: dict[str, int] = {}
    for row in table:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    mode = "smoke runs (--fast: verdicts say only whether it ran)" if manifest.get("fast") else "full runs"
    verdicts = ", ".join(f"{n} {v}" for v, n in counts.items())
    return (
        f"{len(table)} claims ({verdicts}); {mode}; started {manifest.get('started', '?')}, "
        f"total wall time {duration(manifest.get('wall_seconds')) or '?'}"
    )


def reproduction_markdown(out: Path) -> str:
    manifest, table = rows(out)
    extra = " ".join(manifest.get("overrides", []))
    lines = ["# Reproduction of the studies", "", summary_line(manifest, table) + ".", ""]
    if extra:
        lines += [f"Overrides given to every experiment: `{extra}`.", ""]
    lines += claims_markdown(table) + ["", "## Experiments", ""]
    for name in EXPERIMENTS:
        record = manifest["experiments"].get(name, {})
        reports, figures = links(out, name)
        lines += [f"### {name}", "", f"`{record.get('command', '')}`", ""]
        lines.append(
            f"{record.get('status', 'not run')}"
            + (f" in {duration(record['seconds'])}" if record.get("seconds") else "")
        )
        if record.get("note"):
            lines[-1] += f": {record['note']}"
        lines += ["", "Files: " + " · ".join(f"[{r}]({quote(r)})" for r in reports)]
        if figures:
            lines += ["", "Figures: " + " · ".join(f"[{Path(f).name}]({quote(f)})" for f in figures)]
        lines.append("")
    return "\n".join(lines)


def reproduction_html(out: Path) -> str:
    manifest, table = rows(out)
    esc = html.escape
    head = "".join(f"<th>{h}</th>" for h in ("study", "claim", "the study", "ours", "tolerance", "verdict"))
    body = []
    for row in table:
        metric = re.sub(r"`([^`]*)`", r"<code>\1</code>", esc(row["metric"]))
        ours = f"{esc(row['ours']) or '—'}<br><small>{metric}</small>"
        tol = f"{esc(row['tolerance'])}<br><small>{esc(row['why'])}</small>" if row["tolerance"] else ""
        cells = [
            f"<a href='#{row['experiment']}'>{row['experiment']}</a>",
            esc(row["claim"]),
            esc(row["study"]),
            ours,
            tol,
        ]
        mark = {REPRODUCED: "ok", NOT_REPRODUCED: "bad", FAILED: "bad", RAN: "ok"}.get(row["verdict"], "")
        body.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td class='{mark}'>{esc(row['verdict'])}</td></tr>"
        )
    sections = [experiment_html(out, name, manifest["experiments"].get(name, {})) for name in EXPERIMENTS]
    return HTML_PAGE.format(
        summary=esc(summary_line(manifest, table)),
        head=head,
        body="\n".join(body),
        sections="\n".join(sections),
    )


def experiment_html(out: Path, name: str, record: dict[str, Any]) -> str:
    esc = html.escape
    reports, figures = links(out, name)
    status = esc(str(record.get("status", "not run"))) + (
        f" in {duration(record['seconds'])}" if record.get("seconds") else ""
    )
    note = f": {esc(record['note'])}" if record.get("note") else ""
    report_links = " · ".join(f"<a href='{quote(r)}'>{esc(r)}</a>" for r in reports)
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
body {{ font: 14px/1.4 sans-serif; margin: 1.5em; max-width: 1400px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 6px; vertical-align: top; }}
th {{ background: #f2f2f2; text-align: left; cursor: pointer; }} small {{ color: #555; }}
td.ok {{ color: #106010; }} td.bad {{ color: #a01010; font-weight: bold; }}
.thumbs img {{ height: 160px; margin: 2px; border: 1px solid #ddd; }}
</style></head><body>
<h1>Reproduction of the studies</h1>
<p>{summary}</p>
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


def write_reports(out: Path) -> None:
    for name, text in (("reproduction.md", reproduction_markdown(out)), ("index.html", reproduction_html(out))):
        atomic_write(out / name, lambda f, text=text: f.write(text.encode()))


def readme_table(out: Path) -> str:
    """The README's studies table, from a finished reproduction in `out` (links point into the
    reproduction folder only where the README is read beside it, so it names none)."""
    manifest, table = rows(out)
    if manifest.get("fast"):
        raise ConfigError(f"{out} holds a --fast reproduction: its numbers are smoke runs; give a full one")
    stamp = "python -m aecli.reproduce --readme-table DIR` after `aecli-reproduce --out DIR"
    lines = [f"<!-- reproduction table: generated by `{stamp}`; do not edit by hand -->", ""]
    lines += claims_markdown(table, readme=True)
    lines += ["", summary_line(manifest, table) + "."]
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
                                   "final_train_loss", "best_val_loss", "wall_seconds")),
    "mnist_wide": ("mnist", ("test_mse", "baseline_mean_loss", "baseline_pca_loss", "latent_knn_accuracy",
                             "final_train_loss", "best_val_loss", "wall_seconds")),
    "mnist_denoising": ("mnist", ("test_mse", "test_mse_noisy_input", "test_mse_masked_vs_clean", "baseline_mean_loss",
                                  "baseline_pca_loss", "final_train_loss", "best_val_loss", "best_epoch",
                                  "wall_seconds")),
    "rectangle_capacity": ("rectangle", ("final_val_loss", "data_near_curve_share", "curve_length_in_box",
                                         "untrained_data_near_curve_share", "untrained_curve_length_in_box",
                                         "wall_seconds")),
    "rectangle_frozen_decoder": ("rectangle", ("final_val_loss", "shift_mean_data", "shift_mean_near_curve",
                                               "shift_mean_far_from_curve", "shift_distance_rank_correlation",
                                               "wall_seconds")),
    "rectangle_gd_vs_sgd": ("rectangle", ("steps", "final_val_loss", "step_log_loss_change_std", "wall_seconds")),
    "activation_penalty": ("rectangle", ("sparsity", "mean_abs_activation", "sparsity_layer1", "sparsity_layer2",
                                         "sparsity_layer3", "final_val_loss", "wall_seconds")),
}  # fmt: skip


def labelled_runs(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """(label, summary) of every run in an experiment's folder: a sweep's jobs by what they vary, or
    the run itself and its transfer source."""
    from aecli.reporting.jobs import swept_keys

    if (folder / "summary.json").is_file():
        found = [("run", folder / "summary.json"), ("source", folder / "source" / "summary.json")]
        return [(label, read_summary(path)[0] or {}) for label, path in found if path.is_file()]
    jobs = read_jobs(folder) if folder.is_dir() else []
    keys = swept_keys(jobs)
    return [
        (", ".join(f"{k}={job['overrides'].get(k)}" for k in keys) or job["dir"].name, job["summary"]) for job in jobs
    ]


def doc_table(out: Path, experiment: str) -> str:
    """One experiment's numbers as a markdown table, marked as generated, from the runs in `out`."""
    manifest = read_manifest(out) or {}
    columns = DOC_TABLES[experiment][1]
    stamp = (
        f"<!-- generated by `python -m aecli.reproduce --docs DIR` from the reproduction of {manifest.get('started')}"
    )
    lines = [stamp + "; do not edit by hand -->", ""]
    runs = labelled_runs(out / experiment)
    if not runs or any(summary.get("status") != "completed" for _, summary in runs):
        return "\n".join(lines + [f"*`{experiment}`: {NOT_RUN} (or it did not complete).*"])
    lines += ["| run | " + " | ".join(f"`{c}`" for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, summary in runs:
        values = [number(summary.get(c, summary.get("metrics", {}).get(c))) for c in columns]
        lines.append(f"| {cell(label)} | " + " | ".join("" if v is None else f"{v:.4g}" for v in values) + " |")
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


# ------------------------------------------------------------------------------------ command line
def main(argv: Optional[Sequence[str]] = None) -> int:
    """`aecli-reproduce [--fast] [--out DIR] [--resume] [OVERRIDES...]`."""
    parser = argparse.ArgumentParser(
        prog="aecli-reproduce",
        description="Run every study experiment and write DIR/reproduction.md and DIR/index.html: "
        "one row per study claim, with the study's number, ours, the tolerance and a verdict.",
    )
    parser.add_argument("--fast", action="store_true", help="smoke runs (trainer.fast_dev_run=true): verdicts 'ran'")
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
        if args.readme_table is not None:
            print(readme_table(args.readme_table))
            return 0
        if args.docs is not None:
            from aecli.docs import REPO, write_block

            written = write_docs(args.docs, REPO / "docs" / "studies")
            if not write_block("reproduction", readme_table(args.docs)):
                written.append(str(REPO / "README.md"))
            print("\n".join(written) or "the README's table and the study pages are up to date")
            return 0
        if args.report is not None:
            write_reports(args.report)
            print(f"rewrote {args.report / 'reproduction.md'} and {args.report / 'index.html'}")
            return 0
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out = (args.out or Path("outputs") / f"reproduce-{stamp}").resolve()
        return reproduce(out, args.fast, args.overrides, args.resume)
    except ConfigError as err:
        print(f"aecli-reproduce: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full or read-only disk while writing the manifest, the reports or a log
        where = f" {err.filename}" if err.filename else ""
        print(f"aecli-reproduce: error: cannot write{where}: {err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
