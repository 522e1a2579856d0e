"""Hydra callbacks: `RunFolderGuard` before a run or sweep writes anything, `SweepComparison`
(the sweep report) when a multirun ends.

Both run in the launching process, whatever the launcher (basic, joblib, submitit). The
report itself (aecli/reporting/report.py) reads only the job folders, so `aecli-report <sweep dir>`
rebuilds it later from the same files.
"""

from __future__ import annotations

import logging
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
        from aecli.folders import prepare_run_folder

        resuming = config.get("resume") is not None
        if not resuming:  # a bad value is one sentence before any folder is made
            guarded(lambda: validate_task(config))
        guarded(lambda: prepare_run_folder(str(config.hydra.run.dir), resuming=resuming))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from aecli import signals
        from aecli.folders import prepare_run_folder

        sweep_dir = guarded(lambda: prepare_run_folder(str(config.hydra.sweep.dir), key="hydra.sweep.dir"))
        last_sweep.update(dir=sweep_dir, reported=False, unfinished=0)
        signals.on_stop(lambda: (sweep_dir / signals.STOP_FILE).touch())


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
