"""Hydra callbacks: `RunFolderGuard` before a run or sweep writes anything, `SweepComparison`
(the sweep report) when a multirun ends.

Both run in the launching process, whatever the launcher (basic, joblib, submitit). The
report itself (aecli/reporting/report.py) reads only the job folders, so `aecli-report <sweep dir>`
rebuilds it later from the same files.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from aecli.summary import Status

log = logging.getLogger("aecli")

# The last multirun of this process: its folder, whether its report was written, and how many of
# its jobs did not complete (the CLI exits non-zero if any).
last_sweep: dict[str, Any] = {"dir": None, "reported": False, "unfinished": 0}


class RunFolderGuard(Callback):
    """Before Hydra makes a folder or writes a file: a run (or sweep) never lands in a folder that
    holds anything, unless it is `resume=` continuing that very run; the folder is locked for this
    process, so a second aecli on it is refused naming this one. A sweep's folder also gets its
    stop file on the first signal, which stops every job of the sweep, in any process."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from aecli.folders import claim_folder

        resume = config.get("resume")
        if resume is None:  # a bad value is one sentence before any folder is made
            guarded(lambda: validate_task(config))
        guarded(lambda: claim_folder(str(config.hydra.run.dir), resume_of=resume))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from aecli import signals
        from aecli.folders import claim_folder

        guarded(lambda: check_job_subdir(config))
        cap_parallelism(config)
        sweep_dir = guarded(lambda: claim_folder(str(config.hydra.sweep.dir), key="hydra.sweep.dir"))
        last_sweep.update(dir=sweep_dir, reported=False, unfinished=0)
        signals.on_stop(lambda: (sweep_dir / signals.STOP_FILE).touch())

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A sweep job's folder, claimed when Hydra chose it (aecli.config's hydra.output_subdir), is released."""
        from aecli.folders import release_job_folder

        release_job_folder(Path(config.hydra.runtime.output_dir))


def check_job_subdir(config: DictConfig) -> None:
    """hydra.sweep.subdir, before any job runs: one folder per job (it names ${hydra.job.num} or
    ${hydra.job.id}), inside the sweep folder (no absolute path, no `..`), named only from the job's own
    keys (hydra.job.*). Each job's folder is claimed again when Hydra resolves it (aecli.folders)."""
    from omegaconf import OmegaConf

    from aecli.errors import ConfigError

    raw = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir"))  # type: ignore[union-attr]
    for inner in re.findall(r"\$\{([^}]*)\}", raw):
        if not inner.startswith("hydra.job."):
            raise ConfigError(
                f"hydra.sweep.subdir={raw} uses ${{{inner}}}; a job's folder is named from the job's own keys "
                f"only (hydra.job.num, hydra.job.id, hydra.job.override_dirname)"
            )
    literal = re.sub(r"\$\{[^}]*\}", "x", raw)
    if literal.startswith(("/", "~", "\\")) or ".." in re.split(r"[/\\]", literal):
        raise ConfigError(f"hydra.sweep.subdir={raw} leads out of the sweep folder; name a folder inside it")
    if not re.search(r"\$\{hydra\.job\.(num|id)\}", raw):
        raise ConfigError(
            f"hydra.sweep.subdir={raw} gives every job the same folder (a later job would write over an earlier "
            f"one's); include ${{hydra.job.num}}, e.g. its default ${{hydra.job.num}}"
        )


# Launcher settings that start that many processes at once: each imports torch (about 350 MB), so more
# than the cores this process may use only fills the memory (100 of them took a 24 GB machine down).
PARALLEL_SETTINGS = {"processes": "worker processes", "figure_workers": "figure workers", "n_jobs": "job processes"}


def cap_parallelism(config: DictConfig) -> None:
    """Cap every launcher setting that starts processes (the vectorized launcher's processes and
    figure_workers, joblib's n_jobs) at the cores this process may use, before the launcher is built
    from `config`; the log says so, so that it says what will start."""
    from omegaconf import open_dict, read_write

    from aecli.memory import cores

    launcher, limit = config.hydra.launcher, cores()
    for key, what in PARALLEL_SETTINGS.items():
        value = launcher.get(key) if key in launcher else None
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            with read_write(launcher), open_dict(launcher):
                launcher[key] = limit
            log.warning(f"hydra.launcher.{key}={value} is more than the {limit} cores here: {limit} {what} start")


def validate_task(config: DictConfig) -> None:
    """The run's own config (without Hydra's node), checked as the pipeline will check it."""
    import copy

    from omegaconf import open_dict

    from aecli.validation import validate

    task = copy.deepcopy(config)
    with open_dict(task):
        del task["hydra"]
    validate(task)


def guarded(prepare: Any) -> Any:
    """`prepare()`, its ConfigError as one line and exit 2; a stop asked for already: exit 130, nothing written."""
    from aecli import signals
    from aecli.errors import ConfigError, fail

    if signals.requested():
        print(f"aecli: stopped by {signals.reason()} before the run began; nothing was written", file=sys.stderr)
        sys.exit(130)
    try:
        return prepare()
    except ConfigError as err:
        fail(err)


def report_stopped_sweep() -> None:
    """After a second signal cut a sweep short: its report, from whatever the job folders hold."""
    if last_sweep["dir"] is None or last_sweep["reported"]:
        return
    from aecli.reporting.report import build_report

    try:
        result = build_report(last_sweep["dir"])
        last_sweep.update(reported=True, unfinished=result["jobs"] - result["statuses"].get(Status.completed, 0))
        log.info("report of the stopped sweep: %s", last_sweep["dir"] / "index.html")
    except Exception as err:  # the report is a courtesy here; the job folders hold everything
        log.warning("could not write the report of the stopped sweep: %s", err)


class SweepComparison(Callback):
    """After a multirun: the report files of aecli.reporting.report in the sweep folder. `figures`: the
    per-job figures to compare (error_map.png from the jobs' data on one colour scale, others tiled);
    the loss curves are always compared, from metrics.csv."""

    def __init__(self, figures: Sequence[str] = ("error_map.png",), sort_by: str = "final_val_loss") -> None:
        from aecli.reporting.report import check_figure_names

        check_figure_names(figures, "hydra.callbacks.sweep_comparison.figures")  # before any job runs
        self.figures = list(figures)
        self.sort_by = sort_by

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from aecli.reporting import drawing
        from aecli.reporting.report import build_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:  # the report's figures in the launcher's figure pool, if one is open; closed after it
            if not sweep_dir.is_dir() or not any(p.name.isdigit() for p in sweep_dir.iterdir()):
                log.warning("the sweep in %s has no job folders: no report", sweep_dir)
                return
            result = build_report(sweep_dir, self.figures, self.sort_by)
        finally:
            drawing.close_pool()
        last_sweep.update(reported=True, unfinished=result["jobs"] - result["statuses"].get(Status.completed, 0))
        log.info(
            "sweep of %d jobs (%s) reported in %s: %s",
            result["jobs"],
            ", ".join(f"{n} {s}" for s, n in result["statuses"].items()),
            sweep_dir / "index.html",
            ", ".join(result["files"]),
        )
