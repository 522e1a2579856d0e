"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option in conf/ names its schema first in its defaults list, so Hydra
checks types and rejects unknown keys while it composes (`trainer.epochs=abc`
or `model.hiden_sizes=[4]` fail before anything runs). What that cannot catch is
checked by `validate`, before any data is built: keys added with `+` that no
schema has, ranges and choices, and sizes that cannot fit in this machine's
memory. `check_overrides` answers bad group choices (`dataset=nosuch`) in one line.

This module imports nothing heavy: `aecli --help` and `--cfg job` load it.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import ItemsView, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional, cast

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from aecli.errors import ConfigError

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "softplus")
DEVICES = ("auto", "cpu", "cuda", "mps")
LOSSES = ("mse", "sse")  # mean of squared errors, or their sum (per batch)
OPTIMIZERS = ("adam", "sgd")
DTYPES = ("float32", "float64")
INITS = ("default", "zeros")  # torch's default init, or every weight zero (biases keep torch's init)


# --------------------------------------------------------------------- dataset
@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    seed: int = "${seed}"  # type: ignore[assignment]  # data noise and split
    # [xmin, xmax, ymin, ymax] of the reconstruction-error map (2-D data only)
    grid_extent: Optional[list[float]] = None


@dataclass
class SyntheticConfig(DatasetConfig):
    n: int = 2000  # number of points generated
    noise: float = 0.0  # std of the Gaussian noise added
    # share of points that train; the rest validate. 1.0: train on all, validate on the same points
    train_fraction: float = 0.85


@dataclass
class PolynomialCurveConfig(SyntheticConfig):
    _target_: str = "aecli.data.polynomial_curve"
    name: str = "polynomial"
    noise: float = 1.0


@dataclass
class LogSpiralConfig(SyntheticConfig):
    _target_: str = "aecli.data.log_spiral"
    name: str = "spiral"
    a: float = 0.05
    b: float = 0.10
    theta_max: float = 50.0


@dataclass
class SwissRollConfig(SyntheticConfig):
    _target_: str = "aecli.data.swiss_roll"
    name: str = "swiss_roll"
    n: int = 1500
    noise: float = 0.05
    train_fraction: float = 1.0


@dataclass
class BetaCurvesConfig(SyntheticConfig):
    _target_: str = "aecli.data.beta_curves"
    name: str = "beta"
    n: int = 10000  # curves
    points: int = 100  # grid points per curve on [grid_min, grid_max]
    grid_min: float = 0.01
    grid_max: float = 0.99
    param_max: float = 5.0  # alpha, beta ~ U(0, param_max)
    train_fraction: float = 1.0


@dataclass
class RectangleConfig(SyntheticConfig):
    _target_: str = "aecli.data.rectangle"
    name: str = "rectangle"
    n: int = 100
    width: float = 4.0  # x in [-width/2, width/2]
    height: float = 2.0  # y in [-height/2, height/2]
    train_fraction: float = 1.0


@dataclass
class MnistConfig(DatasetConfig):
    _target_: str = "aecli.data.mnist"
    name: str = "mnist"
    # folder of the four standard IDX .gz files (aecli/mnist_files.py);
    # null: $AECLI_MNIST_DIR, else ~/.cache/aecli/mnist
    root: Optional[str] = None
    # missing files: scikit-learn's OpenML cache if present, else (true) the standard mirrors,
    # MD5/SHA-256 checked; false: stop with a message saying how to get them
    download: bool = True
    train_limit: Optional[int] = None  # use only the first N training images (quick runs)
    test_limit: Optional[int] = None  # use only the first N test images


@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's 8x8 digits: an offline stand-in for MNIST (pixels / 16, seeded split)."""

    _target_: str = "aecli.data.digits"
    name: str = "digits"
    train_fraction: float = 0.8  # share of the 1,797 images that train; the rest validate


# ----------------------------------------------------------------------- model
@dataclass
class MLPAutoencoderConfig:
    _target_: str = "aecli.models.MLPAutoencoder"
    name: str = "mlp"
    input_dim: Optional[int] = None  # null: taken from the data
    hidden_sizes: list[int] = field(default_factory=list)  # encoder hidden layers
    decoder_hidden_sizes: Optional[list[int]] = None  # null: the encoder's, reversed
    latent_dim: int = 2
    activation: str = "relu"  # after every hidden layer
    latent_activation: str = "identity"  # on the code itself
    bias: bool = True
    dropout: float = 0.0  # after every hidden activation, encoder and decoder
    code_dropout: float = 0.0  # on the code, as the decoder's first step
    latent_batchnorm: bool = False  # BatchNorm1d on the code, decoder side
    init: str = "default"  # one of INITS
    # a run folder or checkpoint whose decoder weights this model starts from; "train" trains
    # that source run first (the config with `source` merged in) into <run dir>/source
    decoder_from: Optional[str] = None
    freeze_decoder: bool = False  # keep the decoder fixed: only the encoder trains


# ------------------------------------------------------------------- optimizer
@dataclass
class OptimizerConfig:
    name: str = MISSING  # one of OPTIMIZERS
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


# ----------------------------------------------------------------- regularizer
@dataclass
class RegularizerConfig:
    """Every term is off at 0; the options in conf/regularizer switch on one each, and any
    mix can be set on the command line (`regularizer=denoising regularizer.weight_l2=1e-4`)."""

    _target_: str = "aecli.regularizers.Regularizer"
    name: str = "none"
    weight_l2: float = 0.0  # gamma * sum over Linear layers of mean(W^2)
    activation_l1: float = 0.0  # lambda * mean |h| over the hidden activations
    activation_l2: float = 0.0  # lambda * mean h^2 over the hidden activations
    mask_rate: float = 0.0  # denoising: zero each input entry with this probability (train only)


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
    enabled: bool = True
    error_map_resolution: int = 500  # grid points per axis of error_map.png (2-D data)
    error_threshold: float = 0.1  # the thresholded map shows ||x_hat - x|| below this
    dpi: int = 110


# ---------------------------------------------------------------------- logger
# Experiment trackers (aecli/trackers.py); `logger=[csv,tensorboard,mlflow]` picks any number.
# Relative paths resolve against the directory aecli was started in, not the run folder.
@dataclass
class CsvLoggerConfig:
    """metrics.csv and summary.json are always written (resume and the sweep report read them);
    this option names them as the default tracker and adds nothing."""

    _target_: str = "aecli.trackers.Tracker"


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "aecli.trackers.TensorBoardTracker"
    # null: <run dir>/tensorboard, or <sweep dir>/tensorboard/<job> in a multirun;
    # a folder: <folder>/<run folder name or job>, e.g. to gather single runs in one place
    root_dir: Optional[str] = None


@dataclass
class MLflowLoggerConfig:
    _target_: str = "aecli.trackers.MLflowTracker"
    tracking_uri: str = "sqlite:///outputs/mlflow.db"  # a local SQLite store, or a server's http(s):// URI
    artifact_location: str = "outputs/mlartifacts"  # where a new experiment keeps its files
    experiment_name: str = "aecli"
    log_checkpoint: bool = True  # checkpoints/last.pt as an artifact


@dataclass
class AecliConfig:
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    regularizer: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    plots: PlotsConfig = field(default_factory=PlotsConfig)
    # name -> {_target_: callable, ...}: study analyses run after training (aecli/analyses/);
    # each writes its figures and returns numbers for summary.json's "metrics"
    analyses: dict[str, Any] = field(default_factory=dict)
    # values merged into this config for the source run of model.decoder_from=train
    source: dict[str, Any] = field(default_factory=dict)
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
    cs = ConfigStore.instance()
    cs.store(name="aecli_schema", node=AecliConfig)
    for group, name, node in [
        ("dataset", "polynomial", PolynomialCurveConfig),
        ("dataset", "spiral", LogSpiralConfig),
        ("dataset", "swiss_roll", SwissRollConfig),
        ("dataset", "beta", BetaCurvesConfig),
        ("dataset", "rectangle", RectangleConfig),
        ("dataset", "mnist", MnistConfig),
        ("dataset", "digits", DigitsConfig),
        ("model", "mlp", MLPAutoencoderConfig),
        ("optimizer", "adam", AdamConfig),
        ("optimizer", "sgd", SGDConfig),
        ("regularizer", "none", RegularizerConfig),
        ("trainer", "default", TrainerConfig),
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

    register_schemas()
    check_overrides(overrides)  # the few bad overrides Hydra would answer with a traceback
    with initialize_config_module(config_module="aecli.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)


# ------------------------------------------------------------------ validation
SEED_LIMIT = 2**32  # numpy, torch and scikit-learn all take seeds in [0, 2**32)
DIGITS_IMAGES = 1797  # scikit-learn's 8x8 digits: what dataset=digits splits
MAX_ERROR_MAP_RESOLUTION = 4000  # 16 million grid points; beyond that the error map exhausts memory
MAX_DPI = 1000
MAX_THREADS = 1024  # torch's OpenMP pool fails to start (a segfault) somewhere beyond a few thousand
FLOAT32_MAX = 3.4028234663852886e38  # the error map's grid is made in the model's dtype, float32 at least
MIN_RECTANGLE_SIDE = 1e-30  # narrower sides round to 0 in the float32 data: a collapsed column


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}.")


def _finite(*values: Any) -> bool:
    """Every value a real number, neither nan nor inf."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def is_plain_file_name(name: Any) -> bool:
    """A file name with no folder part: what a config value may name inside the run folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _at(tree: Any, key: str) -> Any:
    """The value at a full key such as `model.hidden_sizes[0]` of a config or a plain container, or '?'."""
    try:
        node: Any = OmegaConf.to_container(tree, resolve=False) if OmegaConf.is_config(tree) else tree
        for part in re.findall(r"[^.\[\]]+", key):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node
    except Exception:
        return "?"


def _resolved(cfg: DictConfig) -> DictConfig:
    """`cfg` with every value set (no ???) and every ${...} interpolation resolved, then merged back into
    the typed config, so what an interpolation gives is checked against its key's type like a typed value
    (OmegaConf itself does not check an interpolation that stands for a whole list or group)."""
    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = getattr(err, "full_key", None) or "a config value"
        raise ConfigError(
            f"{key}=??? is not allowed: give it a value, e.g. {key}=<value>, or for a config group one of its options"
        ) from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "a config value"
        raise ConfigError(f"{key}={_at(cfg, key)!r} is not allowed: it does not resolve ({_first_line(err)})") from None
    try:
        return cast(DictConfig, OmegaConf.merge(cfg, values))  # merged into a DictConfig: a DictConfig
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "a config value"
        raise ConfigError(
            f"{key}={_at(cfg, key)!r} is not allowed: it resolves to {_at(values, key)!r}, "
            f"not a value of {key}'s type ({_first_line(err)})"
        ) from None


@functools.lru_cache(maxsize=1)
def _config_repository() -> Any:
    """Hydra's view of aecli's config groups and options (what `dataset=...` may name)."""
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.utils import create_config_search_path

    register_schemas()
    return ConfigRepository(create_config_search_path("pkg://aecli.conf"))


def check_overrides(overrides: Sequence[str]) -> None:
    """ConfigError for the overrides Hydra's composition answers with a Python traceback or a long report
    instead of a message: a config group set to a number, a bool or null (`dataset=null`, `model=3`) or to
    a name it has no option of (`dataset=nosuch`, also inside a sweep), a value with no key (`=3`), or a
    `resume=` naming no run folder (Hydra would make that folder first). Everything else is left to Hydra,
    which reports it in its own words. Runs before every command: no config repository unless needed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # bad grammar: Hydra's own message says where
        return
    _check_override_forms(parsed)
    _check_group_values(parsed)
    if not any(o.key_or_group == "hydra.searchpath" for o in parsed) and not _search_path_from_command_line():
        _check_group_options(parsed)


def _check_override_forms(parsed: Sequence[Any]) -> None:
    """resume= names a run folder; no keys under a group set to an interpolation; no list element deleted."""
    interpolated: dict[str, Optional[str]] = {}  # key -> the override that set it to a ${...} interpolation
    for o in parsed:
        if o.key_or_group == "resume" and not o.is_delete() and isinstance(o.value(), str):
            check_resume_folder(str(o.value()))
        parent = next((k for k in interpolated if o.key_or_group.startswith(k + ".")), None)
        if parent is not None and not o.is_delete():  # OmegaConf fails with an AssertionError
            raise ConfigError(
                f"{o.input_line} is not allowed after {interpolated[parent]}: that makes "
                f"{parent} an interpolation, which has no keys to set"
            )
        if isinstance(o.value(), str) and str(o.value()).startswith("${") and not o.is_delete():
            interpolated[o.key_or_group] = o.input_line
        if o.is_delete() and o.key_or_group.rpartition(".")[2].isdigit():  # Hydra fails with a TypeError
            whole = o.key_or_group.rpartition(".")[0]
            raise ConfigError(
                f"{o.input_line} is not allowed: one element of a list cannot be deleted; "
                f"set the whole list instead, e.g. {whole}=[...]"
            )


def _check_group_values(parsed: Sequence[Any]) -> None:
    """A config group set to a number, a bool, null or nothing at all (`=3`), which Hydra answers with a traceback."""
    suspects = []
    for o in parsed:
        if o.is_sweep_override() or o.is_force_add() or "." in o.key_or_group:  # config groups have no dots
            continue
        value = o.value()
        if o.is_delete() and value is not None and not isinstance(value, str):
            suspects.append(o)
        elif not o.is_delete() and not isinstance(value, (str, list, dict)):
            suspects.append(o)
    for o in suspects:
        group = o.key_or_group
        if group == "":
            raise ConfigError(f"{o.input_line!r} is not allowed: an override needs a key, as in trainer.epochs=10")
        if group == "hydra":
            raise ConfigError(f"{o.input_line} is not allowed: set Hydra's own keys instead, e.g. hydra.run.dir=out")
        options = _group_options(group)
        if options is None:
            continue  # a plain value, e.g. seed=3
        raise ConfigError(
            f"{o.input_line} is not allowed: {group} is a config group, so give it the name of "
            f"one of its options ({', '.join(options)})"
        )


def _check_group_options(parsed: Sequence[Any]) -> None:
    """`dataset=nosuch` (or one choice of a sweep, or of a list such as logger=[csv,nosuch]) in one line
    with the options, instead of Hydra's 14 lines of search path. Deletes (`~dataset`) are left to Hydra."""
    import difflib

    for o in parsed:
        group = o.key_or_group
        if o.is_delete() or not group or "." in group:
            continue
        names = _chosen_names(o.value())
        options = _group_options(group) if names else None
        if options is None:  # no option named, or no config group (a plain key such as seed)
            continue
        for name in names:
            if name.removesuffix(".yaml") not in options:  # Hydra takes `dataset=spiral.yaml` too
                close = difflib.get_close_matches(name, options, n=1)
                hint = f" (did you mean {group}={close[0]}?)" if close else ""
                raise ConfigError(
                    f"{group}={name} is not an option of {group}{hint}; choose one of {', '.join(options)}"
                )


def _chosen_names(value: Any) -> list[str]:
    """The option names a group override picks: one, a list of them, or a sweep's choices of either;
    none for glob, range or interval sweeps, interpolations and options in subfolders (left to Hydra)."""
    from hydra.core.override_parser.types import ChoiceSweep

    items = value.list if isinstance(value, ChoiceSweep) else value if isinstance(value, list) else [value]
    flat = [name for item in items for name in (item if isinstance(item, list) else [item])]
    return [name for name in flat if isinstance(name, str) and not name.startswith("${") and "/" not in name]


@functools.cache
def _group_options(group: str) -> Optional[tuple[str, ...]]:
    """The options of a config group, or None when `group` is no config group (a plain key such as seed).
    aecli's own groups come from its shipped files (a millisecond); groups that Hydra and its plugins add
    to (`hydra/launcher`) and the schema groups from Hydra's config repository (a tenth of a second)."""
    if not group.startswith(("hydra/", "schema")):
        options = config_options().get(group)
        return tuple(options) if options else None  # `hydra` itself is Hydra's node, no group to choose from
    repo = _config_repository()
    return tuple(sorted(repo.get_group_options(group))) if repo.group_exists(group) else None


def _search_path_from_command_line() -> bool:
    """Whether this command adds configs of its own (`--config-dir`, `--config-path`): then a group may
    have options aecli does not ship, and Hydra, which sees them, judges `dataset=...` alone."""
    flags = ("--config-dir", "-cd", "--config-path", "-cp")
    return any(arg.split("=", 1)[0] in flags for arg in sys.argv[1:])


# ---------------------------------------------------------------------- memory
# Estimated before anything is allocated, so a size that cannot fit is one sentence instead of a
# MemoryError (or the kernel's OOM killer) later. Coarse on purpose: they refuse only what cannot fit.
DATA_COPIES = 4  # float64 points, a temporary of their size while they are made, the split rows, float32 tensors
PARAM_COPIES = 6  # weights, gradients, Adam's two moments, the untrained copy and the best epoch's copy
ACTIVATION_COPIES = 3  # per layer and row: its linear output, its activation, and a dropout mask or input
EVAL_CHUNK = 16384  # rows per pass of train.evaluate
FALLBACK_MEMORY = 64 * 2**30  # where the OS does not say how much memory there is (no os.sysconf)
MEMORY_SHARE = 0.8  # of the machine's memory a run may plan on: the OS, other processes and the estimates' gaps
GENERATED_DIMS = {  # values per point of the data sets made from settings (mnist, digits: fixed files)
    "aecli.data.polynomial_curve": 2,
    "aecli.data.log_spiral": 2,
    "aecli.data.rectangle": 2,
    "aecli.data.swiss_roll": 3,
}


@functools.lru_cache(maxsize=1)
def machine_memory() -> int:
    """Bytes of memory this process may use: the physical memory, or the cgroup v2/v1 limit where lower
    (a container, a SLURM job); FALLBACK_MEMORY where the OS does not say."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        total = FALLBACK_MEMORY
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit():  # cgroup v2 says "max" when unlimited
            total = min(total, int(limit))
    return total


def _size(n_bytes: float) -> str:
    """Bytes in binary units: 596 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}" if n_bytes < 1000 or unit == "PiB" else f"{n_bytes:.0f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def _check_data_memory(cfg: DictConfig) -> None:
    """A generated data set (and the model on it) fits in memory, judged from the settings alone; data sets
    read from files (mnist, digits) have a fixed, small size and are judged once built (check_model_memory)."""
    d = cfg.dataset
    dim = d.points if d.get("_target_") == "aecli.data.beta_curves" else GENERATED_DIMS.get(d.get("_target_"))
    if dim is None:
        return
    need = d.n * dim * 8 * DATA_COPIES
    if need > machine_memory() * MEMORY_SHARE:
        key = "points" if "points" in d and d.points > d.n else "n"
        raise ConfigError(
            f"dataset.{key}={d[key]} needs about {_size(need)} for its points; {_machine()}; "
            f"use a smaller dataset.{key}"
        )
    n_train = d.n if d.train_fraction >= 1 else int(round(d.train_fraction * d.n))
    n_val = d.n if d.train_fraction >= 1 else d.n - n_train
    check_model_memory(cfg, dim, n_train, n_val, error_map=dim == 2 and d.grid_extent is not None)


def check_model_memory(cfg: DictConfig, dim: int, n_train: int, n_val: int, error_map: bool) -> None:
    """The model fits in memory with its optimizer state, copies and largest forward pass, on data of `dim`
    values per point: one sentence naming the widest layer's key otherwise, before torch allocates it."""
    m, t, p = cfg.model, cfg.trainer, cfg.plots
    decoder = m.decoder_hidden_sizes if m.decoder_hidden_sizes is not None else list(m.hidden_sizes)[::-1]
    widths = [m.input_dim or dim, *m.hidden_sizes, m.latent_dim, *decoder, m.input_dim or dim]
    per_value = 8 if t.dtype == "float64" else 4
    weights = sum((a + 1) * b for a, b in zip(widths, widths[1:])) * per_value * PARAM_COPIES
    # autograd keeps every layer of a training batch; passes without it (validation, figures) about one
    eval_rows = max(min(n_val, EVAL_CHUNK), n_val if p.enabled else 0, p.error_map_resolution**2 if error_map else 0)
    train_pass = min(t.batch_size, n_train) * sum(widths)
    eval_pass = eval_rows * max(widths)
    activations = max(train_pass, eval_pass) * ACTIVATION_COPIES * per_value
    memory = machine_memory() * MEMORY_SHARE
    if weights + activations <= memory:
        return
    candidates = [
        (max(m.hidden_sizes, default=0), f"model.hidden_sizes={list(m.hidden_sizes)}"),
        (max(decoder, default=0), f"model.decoder_hidden_sizes={list(decoder)}"),
        (m.latent_dim, f"model.latent_dim={m.latent_dim}"),
        (widths[0], f"model.input_dim={widths[0]}" if m.input_dim else f"dataset={cfg.dataset.name}'s {dim}-D data"),
    ]
    what = max(candidates, key=lambda c: c[0])[1]
    if weights > memory:
        need, why = weights, "for the model's weights, gradients and optimizer state"
    else:
        rows = eval_rows if eval_pass > train_pass else min(t.batch_size, n_train)
        need, why = weights + activations, f"to pass {rows} points through the model at once"
        if error_map and eval_pass > train_pass and rows == p.error_map_resolution**2:
            why += f" (the error map's plots.error_map_resolution={p.error_map_resolution} squared)"
    raise ConfigError(f"{what} needs about {_size(need)} {why}; {_machine()}; use smaller layers")


def _machine() -> str:
    """What the memory messages say about the machine."""
    return f"this machine has {_size(machine_memory())} (a run may plan on {MEMORY_SHARE:.0%} of it)"


def _check_known_keys(tree: Any, typed: Any, path: str = "", shown: str = "") -> None:
    """Every key of `tree` where `typed` (the same place of a composed config) comes from a dataclass schema
    is a field of that schema. A `+key` or `++key` override adds keys past the schema's struct flag, so a
    misspelt `+trainer.fast_dev_runs=true` would otherwise be silently ignored. Free-form mappings
    (analyses, source, logger) have no schema and stay open; `shown` prefixes keys in messages (source.)."""
    if not isinstance(typed, DictConfig) or typed._is_none() or typed._is_missing() or typed._is_interpolation():
        return
    if isinstance(tree, DictConfig) and (tree._is_none() or tree._is_missing() or tree._is_interpolation()):
        return
    if not isinstance(tree, (DictConfig, dict)):
        return
    schema = OmegaConf.get_type(typed)
    names = [f.name for f in fields(schema)] if is_dataclass(schema) else None
    for raw in tree.keys():
        key = str(raw)
        if names is not None and key not in names and not (path == "" and key == "hydra"):
            raise _unknown_key(f"{path}{key}", names, shown)
        child = tree._get_node(raw) if isinstance(tree, DictConfig) else tree[raw]
        _check_known_keys(child, typed._get_node(key, throw_on_missing_key=False), f"{path}{key}.", shown)


def _unknown_key(key: str, names: list[str], shown: str) -> ConfigError:
    """`trainer.fast_dev_runs is not a setting of trainer (did you mean trainer.fast_dev_run?)`."""
    import difflib

    parent, _, name = key.rpartition(".")
    where = f"of {parent}" if parent else "at the top level"
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        hint = f" (did you mean {shown}{parent + '.' if parent else ''}{close[0]}?)"
    else:
        hint = f"; remove it, or use one of {', '.join(n for n in names if not n.startswith('_'))}"
    return ConfigError(f"{shown}{key} is not a setting {where}{hint}")


def validate(cfg: DictConfig) -> None:
    """Check keys, ranges and choices of a composed config; raise ConfigError on the first bad value."""
    _check_known_keys(cfg, cfg)
    cfg = _resolved(cfg)
    for name in AecliConfig.__dataclass_fields__:  # `~plots` deletes a whole part aecli reads
        _check(name in cfg, name, "<deleted>", f"{name} is part of every aecli config; set it instead of deleting it")
    m = cfg.model
    seed_rule = f"use an integer in [0, {SEED_LIMIT - 1}]"
    _check(0 <= cfg.seed < SEED_LIMIT, "seed", cfg.seed, seed_rule)
    _validate_trainer(cfg.trainer)
    _validate_optimizer(cfg.optimizer)
    _validate_model(m)
    _validate_regularizer_and_plots(cfg)
    _validate_dataset(cfg.dataset)
    _check_data_memory(cfg)  # sizes that cannot fit in memory, before anything is allocated
    for name, spec in cfg.analyses.items():
        _check(
            isinstance(spec, DictConfig) and isinstance(spec.get("_target_"), str),
            f"analyses.{name}",
            OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else spec,
            "give a mapping with a _target_ (an analysis function) and its settings",
        )
        if "file" in spec:
            _check(
                is_plain_file_name(spec.file),
                f"analyses.{name}.file",
                spec.file,
                "use a plain file name such as figure.png: a run writes only inside its own folder",
            )
        _check_analysis_settings(f"analyses.{name}", spec)
    if m.decoder_from == "train":  # the source run trained first must be valid too
        source = source_config(cfg)  # its own messages name the source.* key
        try:
            validate(source)
        except ConfigError as err:
            raise ConfigError(f"source.{err}") from None


def _validate_trainer(t: DictConfig) -> None:
    """trainer.*: counts, choices and limits."""
    _check(t.epochs >= 0, "trainer.epochs", t.epochs, "use an integer >= 0")
    _check(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "use an integer >= 1")
    _check(t.loss in LOSSES, "trainer.loss", t.loss, f"choose one of {', '.join(LOSSES)}")
    _check(t.device in DEVICES, "trainer.device", t.device, f"choose one of {', '.join(DEVICES)}")
    _check(
        0 <= t.num_threads <= MAX_THREADS,
        "trainer.num_threads",
        t.num_threads,
        f"use 0 (torch's default) to {MAX_THREADS}, at most about the number of CPU cores",
    )
    _check(t.checkpoint_every >= 1, "trainer.checkpoint_every", t.checkpoint_every, "use an integer >= 1")
    for key in ("limit_train_batches", "limit_val_batches"):
        _check(t[key] is None or t[key] >= 1, f"trainer.{key}", t[key], "use an integer >= 1, or null for all")
    _check(t.dtype in DTYPES, "trainer.dtype", t.dtype, f"choose one of {', '.join(DTYPES)}")


def _validate_optimizer(o: DictConfig) -> None:
    """optimizer.*: the settings of the chosen optimizer, and that they belong to it."""
    _check(o.name in OPTIMIZERS, "optimizer.name", o.name, f"choose one of {', '.join(OPTIMIZERS)}")
    _check(
        ("betas" in o) == (o.name == "adam") and ("momentum" in o) == (o.name == "sgd"),
        "optimizer.name",
        o.name,
        "it must match the chosen optimizer option; switch optimizers with optimizer=adam or optimizer=sgd",
    )
    _check(_finite(o.lr) and o.lr > 0, "optimizer.lr", o.lr, "use a learning rate > 0")
    _check(
        _finite(o.weight_decay) and o.weight_decay >= 0,
        "optimizer.weight_decay",
        o.weight_decay,
        "use a finite value >= 0",
    )
    if o.lr_decay is not None:
        _check(0 < o.lr_decay <= 1, "optimizer.lr_decay", o.lr_decay, "use a gamma in (0, 1] or null")
    if "betas" in o:
        betas = list(o.betas)
        _check(
            len(betas) == 2 and all(0 <= b < 1 for b in betas),
            "optimizer.betas",
            betas,
            "use two values in [0, 1), e.g. [0.9, 0.999]",
        )
    if "momentum" in o:
        _check(_finite(o.momentum) and o.momentum >= 0, "optimizer.momentum", o.momentum, "use a finite value >= 0")
        _check(
            not o.nesterov or o.momentum > 0,
            "optimizer.nesterov",
            True,
            "Nesterov momentum needs optimizer.momentum > 0",
        )


def _validate_model(m: DictConfig) -> None:
    """model.*: layer sizes, activations, dropout, init and the decoder transfer."""
    if m.input_dim is not None:
        _check(
            m.input_dim >= 1, "model.input_dim", m.input_dim, "use an integer >= 1, or null to take it from the data"
        )
    _check(m.latent_dim >= 1, "model.latent_dim", m.latent_dim, "use an integer >= 1")
    for key in ("hidden_sizes", "decoder_hidden_sizes"):
        sizes = m[key] or []
        _check(all(s >= 1 for s in sizes), f"model.{key}", list(sizes), "use positive layer sizes")
    for key in ("activation", "latent_activation"):
        _check(m[key] in ACTIVATIONS, f"model.{key}", m[key], f"choose one of {', '.join(ACTIVATIONS)}")
    for key in ("dropout", "code_dropout"):
        _check(0 <= m[key] < 1, f"model.{key}", m[key], "use a probability in [0, 1)")
    _check(m.init in INITS, "model.init", m.init, f"choose one of {', '.join(INITS)}")
    _check(
        m.decoder_from is None or m.decoder_from.strip() != "",
        "model.decoder_from",
        m.decoder_from,
        "give a run folder, a checkpoint file, `train` or null",
    )
    _check(
        not m.freeze_decoder or m.decoder_from is not None,
        "model.freeze_decoder",
        True,
        "it needs model.decoder_from (a run folder, a checkpoint, or `train`)",
    )


def _validate_regularizer_and_plots(cfg: DictConfig) -> None:
    """regularizer.* weights and rate; plots.* resolution, threshold and dpi."""
    r = cfg.regularizer
    for key in ("weight_l2", "activation_l1", "activation_l2"):
        _check(_finite(r[key]) and r[key] >= 0, f"regularizer.{key}", r[key], "use a finite weight >= 0")
    _check(0 <= r.mask_rate < 1, "regularizer.mask_rate", r.mask_rate, "use a probability in [0, 1)")
    p = cfg.plots
    _check(
        2 <= p.error_map_resolution <= MAX_ERROR_MAP_RESOLUTION,
        "plots.error_map_resolution",
        p.error_map_resolution,
        f"use an integer from 2 to {MAX_ERROR_MAP_RESOLUTION}",
    )
    _check(
        _finite(p.error_threshold) and p.error_threshold > 0,
        "plots.error_threshold",
        p.error_threshold,
        "use a finite value > 0",
    )
    _check(10 <= p.dpi <= MAX_DPI, "plots.dpi", p.dpi, f"use an integer from 10 to {MAX_DPI}")


def source_config(cfg: DictConfig) -> DictConfig:
    """The config of the run `model.decoder_from=train` trains first: this one with `source` merged
    in, no decoder transfer and no analyses of its own."""
    try:
        _check_known_keys(OmegaConf.to_container(cfg.source, resolve=False), cfg, shown="source.")
        source = cast(
            DictConfig,  # merged into a DictConfig: a DictConfig
            OmegaConf.merge(cfg, {"model": {"decoder_from": None, "freeze_decoder": False}}, cfg.source),
        )
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        raise ConfigError(
            f"{'source.' + key if key else 'source'}={_at(cfg.source, key)!r} is not allowed: {_first_line(err)}; "
            f"source takes keys of the run's own config, e.g. source.optimizer.lr=1e-3"
        ) from None
    source.analyses, source.source = {}, {}  # assigned, not merged: merging {} keeps old keys
    return source


def _check_analysis_settings(key: str, spec: DictConfig) -> None:
    """The analysis function exists and takes these settings, checked before training rather than after it."""
    import inspect

    from hydra._internal.utils import _locate  # hydra.utils.get_method, without its log line

    try:
        signature = inspect.signature(_locate(spec._target_))
    except Exception as err:  # not importable, not callable, no signature
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ConfigError(
            f"{key}._target_={spec._target_!r} is not allowed: it must name an analysis function "
            f"such as aecli.analyses.activations.activation_histograms ({reason})"
        ) from None
    items = cast("ItemsView[str, Any]", spec.items())  # keys of a mapping of settings: names (OmegaConf: any key type)
    settings = {k: v for k, v in items if not (k.startswith("_") and k.endswith("_"))}
    try:
        signature.bind(None, **settings)  # None stands for the RunContext every analysis gets first
    except TypeError as err:
        takes = ", ".join(p for p in list(signature.parameters)[1:])
        raise ConfigError(
            f"{key} has settings {sorted(settings)}, which is not allowed: {spec._target_} takes "
            f"{takes or 'no settings'} ({_first_line(err)})"
        ) from None


def _validate_dataset(d: DictConfig) -> None:
    """The dataset group's values, each option's own keys included."""
    seed_rule = f"use an integer in [0, {SEED_LIMIT - 1}]"
    if "seed" in d:
        _check(0 <= d.seed < SEED_LIMIT, "dataset.seed", d.seed, seed_rule)
    if "n" in d:
        _check(d.n >= 2, "dataset.n", d.n, "use at least 2 points")
    if "noise" in d:
        _check(_finite(d.noise) and d.noise >= 0, "dataset.noise", d.noise, "use a finite standard deviation >= 0")
    if "train_fraction" in d:
        _check(
            0 < d.train_fraction <= 1,
            "dataset.train_fraction",
            d.train_fraction,
            "use a fraction in (0, 1], where 1 validates on the training points",
        )
        n_points = d.n if "n" in d else DIGITS_IMAGES if d.get("_target_") == "aecli.data.digits" else None
        if n_points is not None and d.train_fraction < 1:
            n_train = int(round(d.train_fraction * n_points))
            _check(
                1 <= n_train < n_points,
                "dataset.train_fraction",
                d.train_fraction,
                f"of {n_points} points it leaves no training or no validation point; use a fraction that "
                f"keeps at least one of each, or 1",
            )
    if d.grid_extent is not None:
        e = list(d.grid_extent)
        _check(
            len(e) == 4 and _finite(*e) and e[0] < e[1] and e[2] < e[3],
            "dataset.grid_extent",
            e,
            "use [xmin, xmax, ymin, ymax], finite, with xmin < xmax and ymin < ymax",
        )
        _check(
            all(abs(v) <= FLOAT32_MAX / 2 for v in e),
            "dataset.grid_extent",
            e,
            f"use values within +-{FLOAT32_MAX / 2:.3g}, so the error map's grid and its spans are finite in float32",
        )
    if "theta_max" in d:  # spiral: r = a exp(b theta), theta on [0, theta_max]
        _check(_finite(d.a) and d.a > 0, "dataset.a", d.a, "use a finite radius scale > 0")
        _check(_finite(d.b), "dataset.b", d.b, "use a finite growth rate")
        _check(_finite(d.theta_max) and d.theta_max > 0, "dataset.theta_max", d.theta_max, "use a finite angle > 0")
        _check(
            math.log(d.a) + d.b * d.theta_max < 700,
            "dataset.b",
            d.b,
            f"a * exp(b * theta_max) overflows with theta_max={d.theta_max}; keep b * theta_max below about 700",
        )
    if "param_max" in d:  # beta curves: log Beta(x; alpha, beta) on `points` x in [grid_min, grid_max]
        _check(d.points >= 2, "dataset.points", d.points, "use at least 2 grid points per curve")
        for key in ("grid_min", "grid_max"):
            _check(
                0 < d[key] < 1,
                f"dataset.{key}",
                d[key],
                "use a value strictly between 0 and 1, where every Beta log-density is finite",
            )
        _check(
            d.grid_min < d.grid_max, "dataset.grid_max", d.grid_max, f"use a value above dataset.grid_min={d.grid_min}"
        )
        _check(
            _finite(d.param_max) and d.param_max > 0,
            "dataset.param_max",
            d.param_max,
            "use a finite value > 0 (alpha and beta are drawn from U(0, param_max))",
        )
    for key in ("width", "height"):  # rectangle
        if key in d:
            _check(
                _finite(d[key]) and d[key] >= MIN_RECTANGLE_SIDE,
                f"dataset.{key}",
                d[key],
                f"use a finite size >= {MIN_RECTANGLE_SIDE:g} (smaller sides round to 0 in the float32 data)",
            )
    for key in ("train_limit", "test_limit"):  # mnist
        if key in d and d[key] is not None:
            _check(d[key] >= 1, f"dataset.{key}", d[key], "use a positive number of images, or null for all")
