"""The root config's schema, and composing it.

conf/config.yaml composes one option of each group. The groups aecli itself defines the
settings of (trainer, plots, optimizer, transfer, logger) have their dataclass schemas here,
registered in Hydra's ConfigStore, so Hydra checks their types and keys while it composes
(`trainer.epochs=abc` fails before anything runs). The plug-in groups (dataset, model) name a
spec class beside their code (aecli/data, aecli/models; see aecli/plugins.py), and the
regularizer group maps term names to weights (aecli/training/regularizers.py): those are
checked by `aecli.validation.validate`, before any data is built.

This module imports nothing heavy: `aecli --help` and `--cfg job` load it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from aecli.errors import ConfigError
from aecli.folders import claim_job_folder

DEVICES = ("auto", "cpu", "cuda", "mps")
LOSSES = ("mse", "sse")  # mean of squared errors per value, or their sum (per batch)
DTYPES = ("float32", "float64")


# ------------------------------------------------------------------- optimizer
@dataclass
class OptimizerConfig:
    name: str = MISSING  # one of aecli.training.optim.OPTIMIZERS
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: Optional[float] = None  # gamma of an ExponentialLR stepped each epoch
    fused: bool = True  # the fused (else foreach) kernel of the same algorithm: faster for small nets


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.0
    nesterov: bool = False


# --------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    epochs: int = 60
    batch_size: int = 32
    drop_last: bool = False
    shuffle: bool = True  # a fresh seeded permutation every epoch; false: the data's own order
    loss: str = "mse"  # one of LOSSES
    device: str = "auto"  # one of DEVICES; auto = cuda, then mps, then cpu
    num_threads: int = 1  # torch intra-op threads; 0 keeps torch's default
    checkpoint_every: int = 10  # epochs between checkpoints/last.pt writes (and always at the end)
    progress: bool = True  # a progress bar on a terminal (never in logs)
    dtype: str = "float32"  # one of DTYPES: data and model precision
    log_steps: bool = False  # also write steps.csv: the loss of every optimizer step
    compile: bool = False  # torch.compile the encoder and decoder calls (opt-in; see python -m aecli.bench)
    # a checkpoint (or run folder) to continue from: model, optimizer, schedule, epoch, data order
    # and RNG states are restored, so the resumed run ends bit-identical to an uninterrupted one
    resume_from: Optional[str] = None
    # a smoke run (Lightning's name): the whole pipeline (source run, figures on a coarse grid,
    # analyses, sweep report) on one epoch of at most 2 batches; summary.json says so
    fast_dev_run: bool = False
    limit_train_batches: Optional[int] = None  # at most this many optimizer steps per epoch
    limit_val_batches: Optional[int] = None  # evaluate on at most this many batches' worth of points


# ----------------------------------------------------------------------- plots
@dataclass
class PlotsConfig:
    enabled: bool = True  # false: no PNG at all (the analyses' numbers are still computed)
    error_map_resolution: int = 500  # grid points per axis of error_map.png (2-D data)
    error_threshold: float = 0.1  # the thresholded map shows ||x_hat - x|| below this
    dpi: int = 110


# -------------------------------------------------------------------- transfer
@dataclass
class TransferConfig:
    """Starting from another run's decoder (the rectangle_frozen_decoder study)."""

    # a run folder or checkpoint whose decoder weights this run's model starts from; "train"
    # trains that source run first (this config with `source` merged in) into <run dir>/source
    decoder_from: Optional[str] = None
    freeze_decoder: bool = False  # keep the decoder fixed: only the encoder trains
    # values merged into this run's config for the source run of decoder_from=train
    source: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- logger
# Experiment trackers (aecli/reporting/trackers.py); `logger=[csv,tensorboard,mlflow]` picks any number.
# Relative paths resolve against the directory aecli was started in, not the run folder.
@dataclass
class CsvLoggerConfig:
    """metrics.csv and summary.json are always written (resume and the sweep report read them);
    this option names them as the default tracker and adds nothing."""

    _target_: str = "aecli.reporting.trackers.Tracker"


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "aecli.reporting.trackers.TensorBoardTracker"
    # null: <run dir>/tensorboard, or <sweep dir>/tensorboard/<job> in a multirun;
    # a folder: <folder>/<run folder name or job>, e.g. to gather single runs in one place
    root_dir: Optional[str] = None


@dataclass
class MLflowLoggerConfig:
    _target_: str = "aecli.reporting.trackers.MLflowTracker"
    tracking_uri: str = "sqlite:///outputs/mlflow.db"  # a local SQLite store, or a server's http(s):// URI
    artifact_location: str = "outputs/mlartifacts"  # where a new experiment keeps its files
    experiment_name: str = "aecli"
    log_checkpoint: bool = True  # checkpoints/last.pt as an artifact


# A tracker's settings that choose where it writes or uploads, outside the run folder: per tracker
# target, the setting and aecli's default for it. A config read from a file (resume=) never chooses
# them: a saved value other than the default must be typed again on the command line.
TRACKER_PLACES: dict[str, dict[str, Any]] = {
    TensorBoardLoggerConfig._target_: {"root_dir": TensorBoardLoggerConfig.root_dir},
    MLflowLoggerConfig._target_: {
        "tracking_uri": MLflowLoggerConfig.tracking_uri,
        "artifact_location": MLflowLoggerConfig.artifact_location,
    },
}


def tracker_places(cfg: DictConfig) -> dict[str, Any]:
    """`logger.<name>.<setting>` -> value, for each tracker setting of `cfg` that chooses a place other
    than aecli's default (TRACKER_PLACES)."""
    found = {}
    for name, spec in (cfg.get("logger") or {}).items():
        for key, default in TRACKER_PLACES.get(str(spec.get("_target_")), {}).items():
            if spec.get(key, default) != default:
                found[f"logger.{name}.{key}"] = spec.get(key)
    return found


@dataclass
class AecliConfig:
    dataset: Any = MISSING  # a DataSpec's settings (aecli/data)
    model: Any = MISSING  # a ModelSpec's settings (aecli/models)
    optimizer: Any = MISSING
    regularizer: Any = MISSING  # term name -> weight (aecli/training/regularizers.py)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    plots: PlotsConfig = field(default_factory=PlotsConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    # name -> {_target_: callback, ...}: the per-epoch work (aecli/training/callbacks.py)
    callbacks: dict[str, Any] = field(default_factory=dict)
    # name -> {_target_: callable, ...}: analyses run after training (aecli/analyses/);
    # each writes its figures and returns numbers for summary.json's "metrics"
    analyses: dict[str, Any] = field(default_factory=dict)
    # name -> {_target_: tracker, ...}: where metrics, figures and results go besides the run folder
    logger: dict[str, Any] = field(default_factory=dict)
    seed: int = 1337
    # a run folder to continue in place (`aecli resume=outputs/...`) with its saved config; only
    # pipeline.RESUMABLE_OVERRIDES (e.g. trainer.epochs) may change on the command line
    resume: Optional[str] = None


def _resuming(resume: Optional[str], resuming: str, otherwise: str) -> str:
    """${aecli_resuming:${resume},A,B}: A when resuming a run, else B. Resolved by Hydra before it makes
    the run folder, so a resume= naming no run folder stops here instead of creating one."""
    if resume is None:
        return otherwise
    check_resume_folder(str(resume))
    return resuming


def _hydra_record(resume: Optional[str], *, _root_: DictConfig) -> Optional[str]:
    """${aecli_hydra_record:${resume}}, hydra.output_subdir: where Hydra keeps its record of a run
    (.hydra, or .hydra/resume for a resumed run, so the original record stays as it was).

    Hydra resolves it for every job right after choosing the job's folder and before writing anything
    into it, whatever the launcher and in whichever process the job runs: so a sweep job's folder is
    claimed here (aecli.folders.claim_job_folder: new, inside the sweep folder, locked). For a folder
    that is not the job's own it is None: Hydra then writes no record, and the job itself refuses to run
    (aecli.cli), writing nothing there."""
    from hydra.types import RunMode

    hydra = _root_.hydra
    if hydra.mode == RunMode.MULTIRUN and not OmegaConf.is_missing(hydra.runtime, "output_dir"):
        if claim_job_folder(Path(hydra.runtime.output_dir), Path(hydra.sweep.dir), hydra.job.num) is not None:
            return None
    return ".hydra/resume" if resume is not None else ".hydra"


def check_resume_folder(resume: str) -> None:
    """resume= must name a run folder with a last checkpoint, or the config.yaml of a run stopped
    before its first one; one sentence if it does not."""
    folder = os.path.expanduser(resume)
    if not any(os.path.isfile(os.path.join(folder, *name)) for name in (("checkpoints", "last.pt"), ("config.yaml",))):
        raise ConfigError(f"resume={resume!r} is not a run folder (it has no checkpoints/last.pt or config.yaml)")


def config_options() -> dict[str, list[str]]:
    """Config group -> its options, sorted, from the YAML files shipped as `aecli.conf` (nested
    groups as `hydra/launcher`): what `--help` and the README's generated tables list."""
    from importlib.resources import files
    from importlib.resources.abc import Traversable

    found: dict[str, list[str]] = {}

    def walk(folder: Traversable, group: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir() and entry.name != "__pycache__":
                walk(entry, f"{group}/{entry.name}" if group else entry.name)
            elif group and entry.name.endswith(".yaml"):
                found.setdefault(group, []).append(entry.name.removesuffix(".yaml"))

    walk(files("aecli.conf"), "")
    return {group: sorted(options) for group, options in sorted(found.items())}


def register_schemas() -> None:
    """Store the schemas under `schema/...` where the YAML options extend them, and register
    the `aecli_pid` resolver that makes run-folder names unique per process."""
    # cached: a sweep's folder name is resolved once, in the launching process, and every job of a
    # joblib or submitit sweep (other processes) gets that same name through Hydra's copied cache
    OmegaConf.register_new_resolver("aecli_pid", lambda: str(os.getpid()), use_cache=True, replace=True)
    OmegaConf.register_new_resolver("aecli_resuming", _resuming, replace=True)
    OmegaConf.register_new_resolver("aecli_hydra_record", _hydra_record, replace=True)
    # ${aecli_plus:${seed},1}: a whole number offset from another (a transfer source's seed from the run's)
    OmegaConf.register_new_resolver("aecli_plus", lambda a, b: int(a) + int(b), replace=True)
    cs = ConfigStore.instance()
    cs.store(name="aecli_schema", node=AecliConfig)
    for group, name, node in [
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "sgd", SGDConfig),
        ("trainer", "default", TrainerConfig),
        ("transfer", "none", TransferConfig),
        ("logger", "csv", CsvLoggerConfig),
        ("logger", "tensorboard", TensorBoardLoggerConfig),
        ("logger", "mlflow", MLflowLoggerConfig),
    ]:
        cs.store(group=f"schema/{group}", name=name, node=node)


def compose(overrides: Sequence[str] = (), with_hydra: bool = False) -> DictConfig:
    """The config `aecli <overrides>` would run, composed without Hydra's app runner (tests, notebooks).
    `with_hydra` keeps Hydra's own node (`hydra.run.dir`, `hydra.help`, ...) as the CLI sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from aecli.overrides import check_overrides

    register_schemas()
    check_overrides(overrides)  # the few bad overrides Hydra would answer with a traceback
    with initialize_config_module(config_module="aecli.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)
