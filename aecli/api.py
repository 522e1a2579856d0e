"""The Python API: train from a notebook, load a finished run or a sweep, use its model.

    import aecli

    run = aecli.run(["dataset=spiral", "trainer.epochs=5"])   # the same configs as the CLI
    run = aecli.load_run("outputs/2026-11-22/10-00-00.123456-4242")   # or its checkpoints/last.pt
    x_hat = run.reconstruct(run.data().val)                   # tensors in, tensors out; numpy likewise
    run.val_loss(), run.summary["final_val_loss"]             # the same number, recomputed
    sweep = aecli.load_sweep("outputs/multirun/2026-11-22/10-00-00.123456-4242")
    sweep.best().load().model

`aecli` exports `run`, `load_run` and `load_sweep` lazily, so `import aecli` alone stays light.
Everything here reads the files a run writes (aecli/run_files.py, aecli/reporting/report.py); nothing
is kept anywhere else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar, Union

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from aecli.config import DEVICES
from aecli.data import Dataset
from aecli.errors import ConfigError
from aecli.folders import atomic_write
from aecli.models import Autoencoder
from aecli.reporting import jobs as report_jobs
from aecli.reporting import report
from aecli.reporting.csv_files import read_columns
from aecli.run_files import CHECKPOINT_DIR, METRICS_FILE, SUMMARY_FILE, find_checkpoint, load_model
from aecli.summary import Status
from aecli.training.loop import evaluate, evaluating, model_loss, resolve_device

__all__ = ["Metrics", "Run", "Sweep", "SweepJob", "load_run", "load_sweep", "run"]

PathLike = Union[str, "os.PathLike[str]"]
Array = TypeVar("Array", np.ndarray, torch.Tensor)


# --------------------------------------------------------------------- metrics
class Metrics(dict[str, np.ndarray]):
    """metrics.csv as columns: name -> 1-D numpy array, one entry per epoch (`epoch` is int, the
    rest float64). `metrics["val_loss"][-1]` is the last epoch's validation loss; the repr is a
    short table for notebooks. `problem` says what of the file could not be read (None: all of it)."""

    problem: Optional[str] = None

    @classmethod
    def read(cls, path: Path) -> Metrics:
        """The columns of a metrics.csv (no columns when the file is missing). A torn or garbled row
        (a run killed in the middle of an append) is left out with a warning and noted in `problem`."""
        columns, problem = read_columns(path)
        metrics = cls(
            (name, values.astype(np.int64) if name == "epoch" else values) for name, values in columns.items()
        )
        metrics.problem = problem
        return metrics

    @property
    def rows(self) -> int:
        """The number of rows (epochs logged, epoch 0 included)."""
        return len(next(iter(self.values()))) if self else 0

    def __repr__(self) -> str:
        return self._table() + (f"\n(not read: {self.problem})" if self.problem else "")

    def _table(self) -> str:
        if not self.rows:
            return f"Metrics(no rows; columns: {', '.join(self) or 'none'})"
        names, n = list(self), self.rows
        shown = list(range(n)) if n <= 8 else [*range(5), -1, *range(n - 2, n)]
        cells = [names] + [["..."] * len(names) if i < 0 else [_cell(self[k][i]) for k in names] for i in shown]
        widths = [max(len(row[j]) for row in cells) for j in range(len(names))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
        return f"Metrics({n} rows)\n" + "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (float, np.floating)) else str(value)


# ------------------------------------------------------------------------- run
@dataclass(eq=False)
class Run:
    """A finished (or stopped) run: its folder, resolved config, metrics, summary and trained model.

    `encode`, `decode` and `reconstruct` take numpy arrays or tensors of any float dtype, one
    sample per row (a 1-D input is one sample), and return the kind they were given: numpy in,
    numpy out (in the input's dtype); tensor in, tensor out (on the input's device and dtype).
    They run the model in eval mode (no dropout, BatchNorm running statistics) without autograd.
    """

    path: Path  # the run folder
    checkpoint: Path  # the checkpoint the model was loaded from
    config: DictConfig = field(repr=False)  # the resolved config the run trained with
    metrics: Metrics = field(repr=False)  # metrics.csv: name -> one value per epoch
    summary: dict[str, Any] = field(repr=False)  # summary.json
    model: Autoencoder = field(repr=False)  # the trained model, in eval mode
    _data: Optional[Dataset] = field(default=None, repr=False)

    def __repr__(self) -> str:
        s = self.summary
        loss = s.get("final_val_loss")
        return (
            f"Run({str(self.path)!r}, status={s.get('status', '?')}, dataset={self.config.dataset.name}, "
            f"model={self.config.model.name}, epochs={s.get('epochs', '?')}, "
            f"final_val_loss={_cell(loss) if loss is not None else '?'})"
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode(self, x: Array) -> Array:
        """The codes of the rows of `x`: (n, latent_dim), or (latent_dim,) for one sample."""
        return self._apply(self.model.encode, x)

    def decode(self, z: Array) -> Array:
        """The decoder's output for the rows of `z`: (n, input_dim), or (input_dim,) for one code."""
        return self._apply(self.model.decode, z)

    def reconstruct(self, x: Array) -> Array:
        """decode(encode(x)), in one call."""
        return self._apply(self.model.reconstruct, x)

    def data(self) -> Dataset:
        """The run's data set, rebuilt from its config (the same seeded split); built once, then kept.
        `.train` and `.val` are float32 CPU tensors; `.val` is what the logged validation loss used."""
        if self._data is None:
            from aecli.data import DataSpec
            from aecli.plugins import build_spec

            spec = build_spec(self.config.dataset, "dataset", DataSpec).offline()  # a saved config downloads nothing
            self._data = spec.build()  # a missing file: one sentence
        return self._data

    def val_loss(self) -> float:
        """The validation loss of the loaded model, recomputed on `data().val` the way training logs
        it (aecli.training.loop.evaluate: the model's loss terms per sample, in eval mode); for a
        completed run from last.pt it equals summary["final_val_loss"]."""
        from aecli.training.regularizers import build_regularizers

        regularizers = build_regularizers(self.config.regularizer)
        for regularizer in regularizers:
            regularizer.attach(self.model)
        try:
            terms = evaluate(self.model, self.data().val.to(self.device, self.dtype), regularizers)
        finally:
            for regularizer in regularizers:
                regularizer.detach()
        return model_loss(terms, regularizers)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], x: Array) -> Array:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        single = t.ndim == 1
        with evaluating(self.model):
            out = fn((t.reshape(1, -1) if single else t).to(self.device, self.dtype))
        out = out[0] if single else out
        if isinstance(x, torch.Tensor):  # tensor in, tensor out: the input's device and (float) dtype
            return out.to(x.device, x.dtype if x.is_floating_point() else out.dtype)
        array = out.cpu().numpy()
        given = np.asarray(x).dtype
        return array.astype(given, copy=False) if np.issubdtype(given, np.floating) else array


def _device(device: Union[str, torch.device]) -> torch.device:
    """auto/cpu/cuda/mps as trainer.device names them (a missing GPU is a ConfigError), or any torch device."""
    return resolve_device(device) if isinstance(device, str) and device in DEVICES else torch.device(device)


def load_run(path: PathLike, device: Union[str, torch.device] = "cpu", checkpoint: str = "last") -> Run:
    """Load a run from its folder or from a checkpoint file inside it (<run>/checkpoints/last.pt or best.pt).

    For a folder, `checkpoint` names which file of checkpoints/ to load ("last" or, where the run
    wrote one, "best"). `device`: "cpu", "cuda", "mps", "auto" or any torch device string.
    A path with no checkpoint raises ValueError naming what is missing."""
    path = Path(path).expanduser()
    if path.is_dir() and checkpoint != "last":
        ckpt = path / CHECKPOINT_DIR / f"{checkpoint}.pt"
        if not ckpt.is_file():
            raise ValueError(f"no checkpoint at {ckpt}: this run has no {checkpoint}.pt")
    else:
        ckpt = find_checkpoint(path)
    run_dir = ckpt.parent.parent if ckpt.parent.name == CHECKPOINT_DIR else ckpt.parent
    model, config = load_model(ckpt, _device(device))
    summary_file = run_dir / SUMMARY_FILE
    summary = (report_jobs.read_summary(summary_file)[0] or {}) if summary_file.is_file() else {}
    return Run(
        path=run_dir,
        checkpoint=ckpt,
        config=config,
        metrics=Metrics.read(run_dir / METRICS_FILE),
        summary=summary,
        model=model,
    )


# ----------------------------------------------------------------------- sweep
@dataclass(eq=False)
class SweepJob:
    """One job of a sweep, as its files say; `load()` reads its model only when asked."""

    number: int
    path: Path
    overrides: dict[str, str]  # key -> value, from <job>/.hydra/overrides.yaml
    summary: dict[str, Any]  # summary.json; {"status": "missing"} while running or if it died first

    @property
    def status(self) -> str:
        return str(self.summary.get("status"))

    @property
    def ok(self) -> bool:
        """True when the job completed; a failed, diverged, interrupted, missing or unreadable job is False."""
        return self.status == Status.completed

    @property
    def problem(self) -> Optional[str]:
        """Why the job is "unreadable" (a corrupt summary.json or .hydra file, one line), else None."""
        return str(self.summary.get("error")) if self.status == Status.unreadable else None

    def load(self, device: Union[str, torch.device] = "cpu", checkpoint: str = "last") -> Run:
        """This job's Run (see load_run); ValueError when the job never wrote a checkpoint."""
        return load_run(self.path, device, checkpoint)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        loss = self.summary.get("final_val_loss")
        status = report_jobs.status_text({"summary": self.summary})
        return f"SweepJob({self.number}: {settings}; {status}" + (
            f", final_val_loss={_cell(loss)})" if loss is not None else ")"
        )


@dataclass(eq=False)
class Sweep:
    """A multirun folder's jobs in job-number order, failed ones included (check `job.ok`)."""

    path: Path
    jobs: list[SweepJob]

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Any:
        return iter(self.jobs)

    def __getitem__(self, index: int) -> SweepJob:
        return self.jobs[index]

    @property
    def completed(self) -> list[SweepJob]:
        return [j for j in self.jobs if j.ok]

    @property
    def failed(self) -> list[SweepJob]:
        """Jobs that did not complete: failed, diverged, interrupted, still missing their summary, or unreadable."""
        return [j for j in self.jobs if not j.ok]

    def best(self, metric: str = "final_val_loss", descending: bool = False, dataset: Optional[str] = None) -> SweepJob:
        """The completed job with the lowest (or highest) `metric`: a summary field or an analysis
        metric, as the sweep report sorts (aecli.reporting.report.sort_jobs). Jobs on different data
        sets never rank against each other: a sweep over several needs `dataset`, one of the labels
        the report uses ("spiral", or "polynomial (dataset.noise=0.1)" where dataset.* is swept)."""
        rows = [{"summary": j.summary, "overrides": j.overrides, "config": {}, "job": j} for j in self.completed]
        groups = report_jobs.by_dataset(rows, report_jobs.swept_keys(rows))
        if dataset is not None and dataset not in groups:
            raise ValueError(f"no completed job of {self.path} is on {dataset!r}; they are on {', '.join(groups)}")
        if dataset is None and len(groups) > 1:
            raise ValueError(
                f"{self.path} has jobs on {len(groups)} data sets ({', '.join(groups)}), which do not rank "
                f"against each other: name one, e.g. best(dataset={next(iter(groups))!r})"
            )
        ranked = [
            r
            for r in report.sort_jobs(groups[dataset] if dataset is not None else rows, metric, descending)
            if report_jobs.number(report_jobs.job_value(r, metric)) is not None
        ]
        if not ranked:
            raise ValueError(f"no completed job of {self.path} reports {metric!r}")
        return ranked[0]["job"]

    def __repr__(self) -> str:
        lines = [f"Sweep({str(self.path)!r}, {len(self.jobs)} jobs, {len(self.completed)} completed)"]
        return "\n".join(lines + [f"  {job!r}" for job in self.jobs])


def load_sweep(path: PathLike) -> Sweep:
    """Read a multirun folder (`<sweep>/<job number>/`): every job's overrides and summary, failed
    jobs included; models load lazily with `job.load()`. A job whose files are corrupt is listed with
    status "unreadable" (`ok` False, the reason in `problem`) instead of raising."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(f"no sweep folder at {path}")
    jobs = [SweepJob(int(j["dir"].name), j["dir"], j["overrides"], j["summary"]) for j in report_jobs.read_jobs(path)]
    if not jobs:
        raise ValueError(
            f"{path} has no job folders (0/, 1/, ...): give a multirun folder, or use aecli.load_run for a single run"
        )
    return Sweep(path, jobs)


# ------------------------------------------------------------------------ train
def run(
    overrides: Sequence[str] = (), output_dir: Optional[PathLike] = None, device: Union[str, torch.device, None] = None
) -> Run:
    """Train as `aecli <overrides>` would and return the finished Run.

    The run folder is `output_dir`, or a fresh outputs/<date>/<time>.<microseconds>-<pid> under the
    current directory, as the CLI names it; it gets the CLI's files (.hydra/config.yaml and
    overrides.yaml, aecli.log and everything the pipeline writes). `resume=<run dir>` continues that
    run in its folder, as `aecli resume=<run dir>` does (with `trainer.epochs=N` to train further).
    A bad key, type or value raises aecli.config.ConfigError before any data is built. A run that
    diverges or is interrupted still returns (see `run.summary["status"]`). The returned model is
    on `device` (default: the device the run trained on). torch's thread count is restored afterwards."""
    from hydra.errors import HydraException

    from aecli.config import compose
    from aecli.folders import claim_folder, unlock_folder
    from aecli.validation import validate

    overrides = list(overrides)
    try:
        cfg = compose(overrides, with_hydra=True)  # hydra.run.dir: the CLI's run folder name
    except HydraException as err:  # unknown key, wrong type, missing option, bad syntax: one sentence
        detail = " ".join(str(err).split("Config search path")[0].split())  # drop Hydra's search-path dump
        if err.__cause__ is not None:
            detail += f" ({' '.join(str(err.__cause__).splitlines()[0].split())})"
        raise ConfigError(detail) from err
    default_dir = Path(cfg.hydra.run.dir)
    with open_dict(cfg):
        del cfg["hydra"]
    if cfg.get("resume") is not None:  # as `aecli resume=<run dir>`: that run, continued in its own folder
        from aecli.pipeline import resumed_config

        run_dir = Path(cfg.resume).expanduser()
        claim_folder(Path(output_dir or run_dir), key="output_dir", resume_of=run_dir)  # only that folder, locked
        record = run_dir / ".hydra" / "resume"  # the original run's .hydra/ stays as it was
    else:
        validate(cfg)  # a bad value is one sentence before any folder is made
        run_dir = Path(output_dir) if output_dir is not None else default_dir
        claim_folder(run_dir, key="output_dir")  # refused if it holds anything; locked for this process
        record = run_dir / ".hydra"
    try:
        if cfg.get("resume") is not None:
            cfg = resumed_config(str(run_dir), overrides)
        return _run_in(run_dir, record, cfg, overrides, device)
    finally:
        unlock_folder(run_dir)


def _run_in(
    run_dir: Path, record: Path, cfg: DictConfig, overrides: list[str], device: Union[str, torch.device, None]
) -> Run:
    """The pipeline in a prepared folder, with the CLI's .hydra record and aecli.log."""
    from aecli.pipeline import run as run_pipeline
    from aecli.run_files import RunLogHandler

    record.mkdir(parents=True, exist_ok=True)
    atomic_write(record / "config.yaml", lambda f: f.write(OmegaConf.to_yaml(cfg).encode()))
    atomic_write(record / "overrides.yaml", lambda f: f.write(OmegaConf.to_yaml(OmegaConf.create(overrides)).encode()))
    log = logging.getLogger("aecli")
    handler = RunLogHandler(str(run_dir / "aecli.log"))
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    old_level, threads = log.level, torch.get_num_threads()
    log.addHandler(handler)
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        summary = run_pipeline(cfg, run_dir)
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(old_level)
        torch.set_num_threads(threads)
    return load_run(run_dir, device if device is not None else summary.device or "cpu")
