"""The launcher's config, registered as hydra/launcher=vectorized (Hydra imports every module of the
hydra_plugins namespace package, so registering here is all it takes to be found)."""

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class VectorizedLauncherConf:
    _target_: str = "hydra_plugins.aecli_vectorized_launcher.vectorized_launcher.VectorizedLauncher"
    # At most this many jobs train as one stacked model; more compatible jobs make more groups.
    # Memory grows linearly with it: each member adds its weights, optimizer state and data.
    max_members: int = 64
    # At most this many jobs wait, built, for their group to fill; past it the largest group
    # trains early (a sweep of many differently shaped jobs never holds them all in memory).
    max_waiting: int = 256
    # Worker processes that draw the members' figures while the next member finishes (null: one per
    # core; 0: every job draws its own figures, one after another, as under the basic launcher).
    figure_workers: Optional[int] = None
    # Worker processes the jobs are shared out over (round-robin), each stacking its share: one
    # process trains on one core, so a large sweep trains faster with one process per core.
    processes: int = 1


ConfigStore.instance().store(group="hydra/launcher", name="vectorized", node=VectorizedLauncherConf, provider="aecli")
