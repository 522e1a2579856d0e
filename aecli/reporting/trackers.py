"""Experiment trackers: where a run's metrics, figures and results go besides its own folder.

`cfg.logger` names any number of them (`aecli logger=[csv,tensorboard,mlflow]`), each built
with hydra.utils.instantiate from conf/logger/<name>.yaml. metrics.csv and summary.json
(aecli/run_files.py) are written whatever `logger` says, since resume and the sweep report
read them; the `csv` option only names them as the default.

aecli.pipeline.run tells every tracker four things: `start` (config and where the run sits),
each epoch's metrics.csv row, the figures the run drew, and the final summary (also of a failed
or interrupted run). A tracker imports its package when it is built, so a missing one is a
ConfigError naming the extra to install, before any data is built.

A tracker that fails while the run goes on (a tracking server down, a full disk) must neither
stop a long training run nor go unnoticed: `Trackers` logs a warning, stops calling it, still
tries its `finish` once (to close files and runs), and names the error in summary.json's
`tracker_errors`. The run folder has everything either way.

In a Hydra multirun every job is one run of a sweep: TensorBoard gets one log dir per sweep
with one run per job, MLflow one parent run per sweep with the jobs nested under it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from aecli.errors import ConfigError
from aecli.folders import open_append
from aecli.reporting.jobs import flatten
from aecli.run_files import CHECKPOINT_DIR
from aecli.summary import Status
from aecli.training.state import EpochRecord

if TYPE_CHECKING:
    from mlflow.entities import Experiment

log = logging.getLogger("aecli")

# Summary numbers every tracker reports as results (besides the analyses' own `metrics`).
FINAL_KEYS = ("final_train_loss", "final_val_loss", "best_val_loss", "train_seconds", "steps_per_second")


def require(module: str, extra: str) -> None:
    """Import `module`, or stop with one sentence naming the extra that installs it."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f'logger={extra} needs the {module} package, which is not installed: pip install "aecli[{extra}]"'
        ) from None


@dataclass(frozen=True)
class RunPlace:
    """Where a run sits: its folder, the directory relative paths resolve against (where aecli was
    started), and in a multirun its sweep folder and its name within the sweep."""

    run_dir: Path
    cwd: Path
    sweep_dir: Optional[Path] = None  # None: a single run
    name: str = ""  # in a sweep "<job number>_<overrides>", else "<date>/<time>" of the run folder

    def resolve(self, path: str | Path) -> Path:
        return (self.cwd / Path(path).expanduser()).resolve()


def locate(run_dir: str | Path) -> RunPlace:
    """Ask Hydra's runtime config where `run_dir` sits. A folder that is not the current Hydra job's
    (run() called from tests or a notebook), or no Hydra at all, is a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    run_dir = Path(run_dir).resolve()
    single = RunPlace(run_dir, Path.cwd(), None, "/".join(run_dir.parts[-2:]))
    if not HydraConfig.initialized():
        return single
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir).resolve()
    if run_dir != output_dir and output_dir not in run_dir.parents:
        return single
    cwd = Path(hc.runtime.cwd)
    if hc.mode != RunMode.MULTIRUN:
        return RunPlace(run_dir, cwd, None, single.name)
    # the job folder's number, then its overrides, so TensorBoard's run filter finds e.g. model=relu
    job = f"{hc.job.num}_{hc.job.override_dirname}" if hc.job.override_dirname else str(hc.job.num)
    job = re.sub(r"[^\w.,=+\-\[\]]", "_", job)[:150]
    inner = run_dir.relative_to(output_dir).as_posix()  # "." for the job itself, "source" for its source run
    sweep_dir = Path(hc.sweep.dir)
    return RunPlace(run_dir, cwd, (cwd / sweep_dir).resolve(), job if inner == "." else f"{job}/{inner}")


def config_values(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config flattened to `a.b` keys; lists and None as text (trackers take scalars)."""
    flat = flatten(cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True)))  # a DictConfig: a dict
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}


def final_numbers(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's result numbers: final and best losses (every loss term's too), speed, and the
    analyses' metrics."""
    numbers = {k: summary[k] for k in summary if k in FINAL_KEYS or k.startswith(("final_train_", "final_val_"))}
    numbers.update(summary.get("metrics") or {})
    return {k: float(v) for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Tracker:
    """The interface, doing nothing; also the `csv` option, since run_files always writes metrics.csv
    and summary.json."""

    def start(self, cfg: DictConfig, place: RunPlace) -> None:
        """Before training: open the run (the config is final here)."""

    def log_epoch(self, record: EpochRecord) -> None:
        """After every epoch (epoch 0: the untrained model): one metrics.csv row."""

    def log_figures(self, paths: Sequence[Path]) -> None:
        """After the figures and analyses: the PNG files the run wrote."""

    def finish(self, summary: dict[str, Any]) -> None:
        """Last, whatever the outcome: summary["status"] is completed, diverged, interrupted or failed."""


class Trackers:
    """The run's trackers, called together. One that raises is warned about once, gets no further
    logging calls, and is named in summary.json's `tracker_errors`; the run goes on."""

    def __init__(self, trackers: dict[str, Tracker]) -> None:
        self.trackers = dict(trackers)
        self.failed: dict[str, str] = {}  # name -> "<method>: <error>"

    def _call(self, method: str, *args: Any, failed_too: bool = False) -> None:
        for name, tracker in self.trackers.items():
            if name in self.failed and not failed_too:
                continue
            try:
                getattr(tracker, method)(*args)
            except Exception as err:  # not KeyboardInterrupt: Ctrl-C still stops the run
                message = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                log.debug("logger %s failed in %s", name, method, exc_info=True)
                if name not in self.failed:
                    self.failed[name] = f"{method}: {message}"
                    log.warning(
                        "logger %s failed in %s (%s); it is off for the rest of this run, which goes on "
                        "(metrics.csv and summary.json have everything)",
                        name,
                        method,
                        message,
                    )

    def start(self, cfg: DictConfig, run_dir: Path) -> None:
        self._call("start", cfg, locate(run_dir))

    def log_epoch(self, record: EpochRecord) -> None:
        self._call("log_epoch", record)

    def log_figures(self, paths: Sequence[Path]) -> None:
        self._call("log_figures", list(paths))

    def finish(self, summary: dict[str, Any]) -> None:
        """Every tracker's finish, a failed one's too (it closes its files and runs); errors go into `summary`."""
        if self.failed:
            summary["tracker_errors"] = dict(self.failed)
        self._call("finish", summary, failed_too=True)
        if self.failed:
            summary["tracker_errors"] = dict(self.failed)


# ----------------------------------------------------------------- TensorBoard
class TensorBoardTracker(Tracker):
    """Event files for TensorBoard: each metrics.csv column per epoch, the figures as images, the config
    as text, and at the end hparams (the flattened config and status) with the final numbers, which
    TensorBoard's HParams tab compares across the runs of a log dir, i.e. the jobs of a sweep."""

    def __init__(self, root_dir: Optional[str] = None) -> None:
        require("tensorboard", "tensorboard")
        self.root_dir = root_dir
        self.writer: Any = None
        self.step = 0

    def start(self, cfg: DictConfig, place: RunPlace) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self.root_dir is not None:
            log_dir = place.resolve(self.root_dir) / place.name
        elif place.sweep_dir is not None:
            log_dir = place.sweep_dir / "tensorboard" / place.name
        else:
            log_dir = place.run_dir / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.config = {k: v for k, v in config_values(cfg).items() if not k.endswith("_target_")}
        yaml = OmegaConf.to_yaml(cfg, resolve=True)
        self.writer.add_text("config", "".join(f"    {line}\n" for line in yaml.splitlines()))  # markdown code

    def log_epoch(self, record: EpochRecord) -> None:
        self.step = record.epoch
        for key, value in record.row().items():
            if key != "epoch":
                self.writer.add_scalar(key, value, record.epoch)

    def log_figures(self, paths: Sequence[Path]) -> None:
        import numpy as np
        from PIL import Image

        for path in paths:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"figures/{path.stem}", pixels, self.step, dataformats="HWC")

    def finish(self, summary: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        if self.writer is None:
            return
        numbers = final_numbers(summary)
        for summary_proto in hparams({**self.config, "status": summary.get("status", "failed")}, numbers):
            self.writer.file_writer.add_summary(summary_proto, self.step)
        for key, value in numbers.items():  # the values the HParams tab shows
            self.writer.add_scalar(key, value, self.step)
        self.writer.close()


# ---------------------------------------------------------------------- MLflow
SWEEP_TAG = "aecli.sweep_dir"  # on a sweep's parent run: the sweep folder, how every job finds it
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag
MLFLOW_STATUS = {Status.completed: "FINISHED", Status.interrupted: "KILLED"}  # anything else: FAILED


class MLflowTracker(Tracker):
    """One MLflow run per aecli run: the flattened config as params, each metrics.csv column per epoch,
    the final numbers, the config, figures, summary.json and checkpoints as artifacts. In a multirun
    the jobs nest under one parent run per sweep, which the first job creates and later ones find by
    its `aecli.sweep_dir` tag: jobs may run in separate processes (joblib, submitit, SLURM)."""

    def __init__(
        self, tracking_uri: str, artifact_location: str, experiment_name: str = "aecli", log_checkpoint: bool = True
    ) -> None:
        require("mlflow", "mlflow")
        if tracking_uri.startswith("sqlite:"):  # mlflow-skinny leaves out what its SQL store needs
            require("sqlalchemy", "mlflow")
            require("alembic", "mlflow")
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.experiment_name = experiment_name
        self.log_checkpoint = log_checkpoint
        self.run_id: Optional[str] = None
        self.parent_id: Optional[str] = None

    def start(self, cfg: DictConfig, place: RunPlace) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.place = place
        self.uri = resolve_tracking_uri(self.tracking_uri, place.cwd)
        with store_lock(self.uri):  # the first client creates the database; the parent is found or made once
            self.client = MlflowClient(self.uri)
            self.experiment_id = self._experiment(place.resolve(self.artifact_location).as_uri())
            tags = {"aecli.run_dir": str(place.run_dir)}
            if place.sweep_dir is not None:
                self.parent_id = self._parent(self.experiment_id, place.sweep_dir)
                tags[PARENT_TAG] = self.parent_id
            self.run_id = self.client.create_run(self.experiment_id, run_name=place.name, tags=tags).info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in config_values(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per call
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self.client.log_text(self.run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")

    def _experiment(self, artifact_uri: str) -> str:
        """The experiment's id; created (files under `artifact_location`) by the first run that needs it."""
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                return self.client.create_experiment(self.experiment_name, artifact_location=artifact_uri)
            except MlflowException:  # a job in another process (an unlocked remote store) was first
                experiment = self.client.get_experiment_by_name(self.experiment_name)
        experiment = cast("Experiment", experiment)  # found, or created by the other job
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def _sweep_runs(self, experiment_id: str, sweep_dir: Path) -> list[Any]:
        quote = '"' if "'" in str(sweep_dir) else "'"
        runs = self.client.search_runs([experiment_id], f"tags.`{SWEEP_TAG}` = {quote}{sweep_dir}{quote}")
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _parent(self, experiment_id: str, sweep_dir: Path) -> str:
        """The sweep's parent run, set RUNNING. A local store is locked around this; on a remote one two
        jobs can both create a parent in the same instant, so each looks again after creating, all
        take the oldest, and a job whose own is not the oldest deletes it."""
        runs = self._sweep_runs(experiment_id, sweep_dir)
        if not runs:
            name = f"sweep {sweep_dir.parent.name}/{sweep_dir.name}"
            own = self.client.create_run(experiment_id, run_name=name, tags={SWEEP_TAG: str(sweep_dir)})
            runs = self._sweep_runs(experiment_id, sweep_dir)
            if runs[0].info.run_id != own.info.run_id:
                self.client.delete_run(own.info.run_id)
        parent = runs[0]
        if parent.info.status != "RUNNING":  # closed by the job before this one (a sequential launcher)
            self.client.update_run(parent.info.run_id, status="RUNNING")
        return parent.info.run_id

    def log_epoch(self, record: EpochRecord) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, record.epoch) for k, v in record.row().items() if k != "epoch"]
        self.client.log_batch(cast(str, self.run_id), metrics=metrics)  # set by start, which succeeded

    def log_figures(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), "figures")

    def finish(self, summary: dict[str, Any]) -> None:
        """Final numbers, tags, summary.json and checkpoints; then the run's status, and the parent's
        FINISHED when no other job of the sweep is still running (each job ends its own run first, so
        of two jobs ending at once at least the later one sees the other ended)."""
        from mlflow.entities import Metric, RunTag

        if self.run_id is None:
            return
        status = summary.get("status", "failed")
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, int(summary.get("epochs") or 0)) for k, v in final_numbers(summary).items()]
        tags = [RunTag("aecli.status", status)]
        tags += [RunTag("aecli.error", summary["error"][:5000])] if summary.get("error") else []
        tags += (
            [RunTag("aecli.tracker_errors", str(summary["tracker_errors"])[:5000])]
            if summary.get("tracker_errors")
            else []
        )
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        self.client.log_dict(self.run_id, summary, "summary.json")
        if self.log_checkpoint:
            for checkpoint in sorted((self.place.run_dir / CHECKPOINT_DIR).glob("*.pt")):
                self.client.log_artifact(self.run_id, str(checkpoint), CHECKPOINT_DIR)
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))
        if self.parent_id is not None:
            with store_lock(self.uri):
                running = f"tags.`{PARENT_TAG}` = '{self.parent_id}' and attributes.status = 'RUNNING'"
                if not self.client.search_runs([self.experiment_id], running):
                    self.client.set_terminated(self.parent_id, "FINISHED")


def resolve_tracking_uri(uri: str, cwd: Path) -> str:
    """`uri` with a relative SQLite or local path made absolute against `cwd` (where aecli was
    started, not the run folder); the database's folder is created. Server URIs stay as they are."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:":
            db = Path(path) if path.startswith("/") else (cwd / path).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{db}"
    elif urlparse(uri).scheme in ("", "file"):
        return str((cwd / urlparse(uri).path).resolve())  # a local folder store
    return uri


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """An exclusive file lock beside a local store (SQLite file or folder), held by one process at a
    time: the jobs of a parallel sweep create the database and the sweep's parent run only once.
    Remote stores (and systems without fcntl) get no lock; see MLflowTracker._parent."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    if uri.startswith("sqlite:///"):
        lock_path = Path(uri[len("sqlite:///") :] + ".lock")
    elif urlparse(uri).scheme == "" and os.path.isabs(uri):
        lock_path = Path(uri) / ".aecli.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    else:
        yield
        return
    with open_append(lock_path) as f:  # never through a planted link, never a FIFO
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
