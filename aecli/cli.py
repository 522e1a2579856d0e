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

from aecli.config import ConfigError, register_schemas

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
        print(f"aecli: job failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
              f"see {output_dir}", file=sys.stderr)
        return math.nan
    if summary["status"] != "completed":
        # The run folder holds everything up to the stop; say so and exit non-zero.
        print(f"aecli: run {summary['status']} after epoch {summary['epochs']}; see {output_dir}", file=sys.stderr)
        if in_sweep:
            return math.nan
        sys.exit(130 if summary["status"] == "interrupted" else 1)
    return summary["final_val_loss"]  # what a sweeper (e.g. Optuna) minimises


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
    _app()
    from aecli.callbacks import last_sweep  # set by the sweep report after a multirun

    if last_sweep["unfinished"]:
        print(f"aecli: {last_sweep['unfinished']} job(s) of the sweep did not complete; "
              "see summary.md in the sweep folder", file=sys.stderr)
        sys.exit(1)


def config_groups() -> dict[str, list[str]]:
    """Group -> options, read from the shipped conf/ folder (Hydra's own --help asks its config
    repository once per group, deep-copying the ConfigStore each time: seconds instead of ms)."""
    from importlib.resources import files

    root = files("aecli.conf")
    groups: dict[str, list[str]] = {}
    for folder in sorted(root.iterdir(), key=lambda f: f.name):
        if folder.is_dir() and folder.name not in ("hydra", "__pycache__"):
            groups[folder.name] = sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))
    return groups


def render_help(overrides: list[str]) -> str:
    """`aecli [overrides] --help`: the help template of conf/config.yaml, filled with the config
    groups and the config these overrides compose (no torch import, under a second)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf, open_dict

    with initialize_config_module(config_module="aecli.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    template = cfg.hydra.help.template
    groups = "\n".join(f"{group}: {', '.join(options)}" for group, options in config_groups().items())
    with open_dict(cfg):
        del cfg["hydra"]
    return template.replace("$APP_CONFIG_GROUPS", groups + "\n").replace("$CONFIG", OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    main()
