"""The `aecli` command: Hydra composes the config, then `pipeline.run` does the work.

Only Hydra, OmegaConf and the schemas are imported here, so `aecli --help`
and `aecli --cfg job` answer without loading torch or matplotlib.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from aecli.config import ConfigError, register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://aecli.conf", config_name="config")
def _app(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from aecli.pipeline import run  # heavy imports (torch, matplotlib) only when training

    try:
        summary = run(cfg, HydraConfig.get().runtime.output_dir)
    except ConfigError as err:
        # A bad value gets one sentence and exit status 2; HYDRA_FULL_ERROR=1 shows the traceback.
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"aecli: error: {err}", file=sys.stderr)
        sys.exit(2)
    if summary["status"] != "completed":
        # The run folder holds everything up to the stop; say so and exit non-zero.
        print(f"aecli: run {summary['status']} after epoch {summary['epochs']}; "
              f"see {HydraConfig.get().runtime.output_dir}", file=sys.stderr)
        sys.exit(130 if summary["status"] == "interrupted" else 1)
    return summary["final_val_loss"]  # what a sweeper (e.g. Optuna) minimises


def main() -> None:
    _app()


if __name__ == "__main__":
    main()
