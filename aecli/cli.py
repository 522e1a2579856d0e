"""The `aecli` command: Hydra composes the config, then `pipeline.run` does the work.

Only Hydra, OmegaConf and the schemas are imported here, so `aecli --help`
and `aecli --cfg job` answer without loading torch or matplotlib.
"""

from __future__ import annotations

import logging
import math
import os
import sys

import hydra
from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from aecli.config import ConfigError, check_overrides, config_options, register_schemas

register_schemas()
log = logging.getLogger("aecli")


@hydra.main(version_base="1.3", config_path="pkg://aecli.conf", config_name="config")
def _app(cfg: DictConfig) -> float:
    """One run. In a sweep a failed job returns NaN instead of raising, so the other jobs and the
    sweep report still run (Hydra's basic sweeper would re-raise the first failure and stop)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from aecli.pipeline import run  # heavy imports (torch, matplotlib) only when training

    output_dir = HydraConfig.get().runtime.output_dir
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        if cfg.resume is not None:  # continue that run, in its folder (the run dir), with its saved config
            if in_sweep:
                raise ConfigError(
                    "resume= continues one run; resume the jobs of a sweep one by one, e.g. aecli resume=<sweep dir>/0"
                )
            from aecli.pipeline import resumed_config

            cfg = resumed_config(cfg.resume, list(HydraConfig.get().overrides.task))
        summary = run(cfg, output_dir)
    except ConfigError as err:
        # A bad value gets one sentence and exit status 2; HYDRA_FULL_ERROR=1 shows the traceback.
        if full_error:
            raise
        print(f"aecli: error: {err}", file=sys.stderr)
        if in_sweep:
            return math.nan
        sys.exit(2)
    except Exception as err:
        if not in_sweep or full_error:
            raise
        log.exception("job failed: %s", output_dir)
        print(
            f"aecli: job failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"see {output_dir}",
            file=sys.stderr,
        )
        return math.nan
    if summary["status"] != "completed":
        # The run folder holds everything up to the stop; say so and exit non-zero.
        print(f"aecli: run {summary['status']} after epoch {summary['epochs']}; see {output_dir}", file=sys.stderr)
        if in_sweep:
            return math.nan
        sys.exit(130 if summary["status"] == "interrupted" else 1)
    return summary["final_val_loss"]  # what a sweeper (e.g. Optuna) minimises


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
    args = sys.argv[1:]
    if "--version" in args:
        from aecli import __version__

        print(f"aecli {__version__}")
        return
    if "--help" in args or "-h" in args:
        try:
            print(render_help([a for a in args if not a.startswith("-")]))
        except Exception as err:  # a bad override: Hydra's own message (it lists the options)
            print(f"aecli: error: {err}", file=sys.stderr)
            sys.exit(1)
        return
    try:
        # The few bad overrides Hydra itself answers with a Python traceback (`dataset=null`, `model=3`,
        # `=3`) or acts on before reporting them (a `resume=` folder it would create) get one sentence.
        check_overrides(_override_args(args))
        _app()
    except ConfigError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"aecli: error: {err}", file=sys.stderr)
        sys.exit(2)
    except InterpolationResolutionError as err:  # in hydra.run.dir, which Hydra resolves outside its
        if os.environ.get("HYDRA_FULL_ERROR") == "1":  # error report (that report then fails on it)
            raise
        message = str(err).splitlines()[0]
        ours = f"{ConfigError.__name__} raised while resolving"  # e.g. from the resume= resolver
        print(f"aecli: error: {message.split(': ', 1)[1] if ours in message else message}", file=sys.stderr)
        sys.exit(2)
    from aecli.callbacks import last_sweep  # set by the sweep report after a multirun

    if last_sweep["unfinished"]:
        print(
            f"aecli: {last_sweep['unfinished']} job(s) of the sweep did not complete; "
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
