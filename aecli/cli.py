"""The `aecli` command: Hydra composes the config, then `pipeline.run` does the work.

Only Hydra, OmegaConf and the schemas are imported here, so `aecli --help`
and `aecli --cfg job` answer without loading torch or matplotlib.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import cast

import hydra
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from aecli import signals
from aecli.config import config_options, register_schemas
from aecli.errors import ConfigError, fail, first_line, full_error, say
from aecli.folders import job_refusal
from aecli.overrides import check_overrides
from aecli.summary import RunSummary, Status

register_schemas()
log = logging.getLogger("aecli")


@hydra.main(version_base="1.3", config_path="pkg://aecli.conf", config_name="config")
def _app(cfg: DictConfig) -> float:
    """One run. In a sweep a failed job returns NaN instead of raising, so the other jobs and the
    sweep report still run (Hydra's basic sweeper would re-raise the first failure and stop)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    in_sweep = hc.mode == RunMode.MULTIRUN
    stop_file = Path(hc.sweep.dir) / signals.STOP_FILE if in_sweep else None
    refusal = job_refusal(output_dir) if in_sweep else None
    if refusal is not None:  # the folder Hydra chose is not this job's (aecli.config's hydra.output_subdir)
        return refused(refusal, Path(hc.sweep.dir), hc.job.num)
    with signals.watch_file(stop_file):
        if in_sweep and signals.requested():  # the sweep was stopped before this job began
            return not_started(output_dir)
        try:
            from aecli.pipeline import run  # heavy imports (torch, matplotlib) only when training

            if cfg.resume is not None:  # continue that run, in its folder (the run dir), with its saved config
                if in_sweep:
                    raise ConfigError(
                        "resume= continues one run; resume the jobs of a sweep one by one, "
                        "e.g. aecli resume=<sweep dir>/0"
                    )
                from aecli.pipeline import resumed_config

                cfg = resumed_config(cfg.resume, list(hc.overrides.task))
            summary = run(cfg, output_dir)
        except ConfigError as err:  # a bad value: one sentence, exit status 2
            return job_error(err, err, in_sweep, output_dir, status=2)
        except OSError as err:  # the disk: full, read-only, gone; one sentence, the run folder as far as it got
            where = f" {err.filename}" if err.filename else ""
            message = f"cannot write{where}: {err.strerror or first_line(err)}"
            return job_error(err, message, in_sweep, output_dir, status=1)
        except Exception as err:  # a bug: its traceback, except in a sweep, which goes on with its other jobs
            if not in_sweep or full_error():
                raise
            log.exception("job failed: %s", output_dir)
            message = f"job failed ({type(err).__name__}: {first_line(err)}); see {output_dir}"
            return job_error(err, message, True, output_dir)
    if not summary.ok:  # the run folder holds everything up to the stop; say so and exit non-zero
        interrupted = summary.status == Status.interrupted
        where = f"during {summary.phase}" if interrupted else f"after epoch {summary.epochs}"
        print(f"aecli: run {summary.status} {where}; see {output_dir}", file=sys.stderr)
        if in_sweep:
            return math.nan
        sys.exit(130 if interrupted else 1)
    return float(cast(float, summary.final_val_loss))  # what a sweeper (e.g. Optuna) minimises


def job_error(err: BaseException, message: object, in_sweep: bool, job_dir: Path, status: int = 1) -> float:
    """One sentence: a single run then exits with `status`; a sweep's job returns NaN to the sweeper,
    so the other jobs and the report still run, and its folder says "failed" with the sentence (a job
    refused before its run began has no summary.json yet). HYDRA_FULL_ERROR=1 shows the traceback instead."""
    if full_error():
        raise err
    say(message)
    if not in_sweep:
        sys.exit(status)
    from aecli.run_files import SUMMARY_FILE, write_summary

    if not (job_dir / SUMMARY_FILE).exists():
        write_summary(job_dir, RunSummary(Status.failed, error=first_line(message)).as_dict())
    return math.nan


REFUSED_PREFIX = ".aecli-refused-"  # in a sweep folder: a job refused the folder Hydra chose, and why


def refused(refusal: str, sweep_dir: Path, job: int) -> float:
    """A sweep job whose folder is not its own: one sentence, nothing written there, and a note in the
    sweep folder (written by whichever process ran the job) that the launching process counts at the end."""
    from aecli.folders import atomic_write

    say(refusal)
    atomic_write(sweep_dir / f"{REFUSED_PREFIX}{job}", lambda f: f.write(refusal.encode()))
    return math.nan


def not_started(job_dir: Path) -> float:
    """A job of a stopped sweep: its folder (Hydra made it) says it never started; NaN to the sweeper."""
    from aecli.run_files import write_summary

    summary = RunSummary(Status.not_started, error=f"the sweep was stopped ({signals.reason()})")
    write_summary(job_dir, summary.as_dict())
    return math.nan


def _override_args(argv: list[str]) -> list[str]:
    """The overrides among the command-line arguments, as Hydra's own argument parser finds them;
    none when the flags are bad (Hydra's parser reports that itself, once)."""
    import contextlib
    import io

    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args, _ = get_args_parser().parse_known_args(argv)
    except SystemExit:
        return []
    return list(args.overrides or [])


def main() -> None:
    """The `aecli` command (aecli/__main__.py installs the stop handlers even earlier)."""
    with signals.handling():  # a signal during start-up is a stop request too, not a traceback
        command(sys.argv[1:])


def command(args: list[str]) -> None:
    if "--version" in args:
        from aecli import __version__

        print(f"aecli {__version__}")
        return
    if "--help" in args or "-h" in args:
        try:
            print(render_help([a for a in args if not a.startswith("-")]))
        except Exception as err:  # a bad override: Hydra's own message (it lists the options)
            fail(err, status=1)
        return
    try:
        # The few bad overrides Hydra itself answers with a Python traceback (`dataset=null`, `model=3`,
        # `=3`) or acts on before reporting them (a `resume=` folder it would create) get one sentence.
        check_overrides(_override_args(args))
        _app()
    except ConfigError as err:
        fail(err)
    except InterpolationResolutionError as err:  # in hydra.run.dir, which Hydra resolves outside its
        message = first_line(err)  # error report (that report then fails on it)
        ours = f"{ConfigError.__name__} raised while resolving"  # e.g. from the resume= resolver
        fail(ConfigError(message.split(": ", 1)[1] if ours in message else message))
    except KeyboardInterrupt:  # a second signal: the run or job wrote its summary on the way out
        from aecli.hydra_hooks import report_stopped_sweep

        report_stopped_sweep()
        print("aecli: stopped", file=sys.stderr)
        sys.exit(130)
    from aecli.hydra_hooks import last_sweep  # set by the sweep report after a multirun

    if last_sweep["dir"] is not None and signals.requested():
        print(
            f"aecli: the sweep was stopped by {signals.reason()}: running jobs were interrupted and jobs not "
            f"started were left unstarted; see summary.md in {last_sweep['dir']}",
            file=sys.stderr,
        )
        sys.exit(130)
    refusals = sorted(Path(last_sweep["dir"]).glob(f"{REFUSED_PREFIX}*")) if last_sweep["dir"] is not None else []
    if refusals:
        print(f"aecli: {len(refusals)} job(s) of the sweep were refused their folders (see above)", file=sys.stderr)
    if last_sweep["unfinished"] or refusals:
        print(
            f"aecli: {last_sweep['unfinished'] + len(refusals)} job(s) of the sweep did not complete; "
            "see summary.md in the sweep folder",
            file=sys.stderr,
        )
        sys.exit(1)


def render_help(overrides: list[str]) -> str:
    """`aecli [overrides] --help`: the help template of conf/config.yaml, filled with the config
    groups and the config these overrides compose (no torch import, under a second). The groups
    come from the shipped conf/ files: Hydra's own help asks its config repository once per group,
    deep-copying the ConfigStore each time (seconds instead of milliseconds)."""
    from omegaconf import OmegaConf, open_dict

    from aecli.config import compose

    cfg = compose(overrides, with_hydra=True)
    template = cfg.hydra.help.template
    groups = "\n".join(  # Hydra's own help lists the groups of conf/ but not Hydra's (hydra/launcher)
        f"{group}: {', '.join(options)}" for group, options in config_options().items() if not group.startswith("hydra")
    )
    with open_dict(cfg):
        del cfg["hydra"]
    return template.replace("$APP_CONFIG_GROUPS", groups + "\n").replace("$CONFIG", OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    main()
