"""Dataclass schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option in conf/ names its schema first in its defaults list, so Hydra
checks types and rejects unknown keys while it composes (`trainer.epochs=abc`
or `model.hiden_sizes=[4]` fail before anything runs). Ranges and choices that
types cannot express are checked by `validate`, before any data is built.

This module imports nothing heavy: `aecli --help` and `--cfg job` load it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "softplus")
DEVICES = ("auto", "cpu", "cuda", "mps")
LOSSES = ("mse", "sse")  # mean of squared errors, or their sum (per batch)
OPTIMIZERS = ("adam", "sgd")
DTYPES = ("float32", "float64")
INITS = ("default", "zeros")  # torch's default init, or every weight zero (biases keep torch's init)


class ConfigError(ValueError):
    """A config value that is well-typed but not allowed; the message is one sentence."""


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


# ----------------------------------------------------------------------- plots
@dataclass
class PlotsConfig:
    enabled: bool = True
    error_map_resolution: int = 500  # grid points per axis of error_map.png (2-D data)
    error_threshold: float = 0.1  # the thresholded map shows ||x_hat - x|| below this
    dpi: int = 110


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
    seed: int = 1337


def register_schemas() -> None:
    """Store the schemas under `schema/...` where the YAML options extend them, and register
    the `aecli_pid` resolver that makes run-folder names unique per process."""
    OmegaConf.register_new_resolver("aecli_pid", lambda: str(os.getpid()), replace=True)
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
    ]:
        cs.store(group=f"schema/{group}", name=name, node=node)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `aecli <overrides>` would run, composed without Hydra's app runner (tests, notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    register_schemas()
    with initialize_config_module(config_module="aecli.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


# ------------------------------------------------------------------ validation
def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}.")


def validate(cfg: DictConfig) -> None:
    """Check ranges and choices of a composed config; raise ConfigError on the first bad value."""
    t, m, o, d = cfg.trainer, cfg.model, cfg.optimizer, cfg.dataset
    _check(t.epochs >= 0, "trainer.epochs", t.epochs, "use an integer >= 0")
    _check(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "use an integer >= 1")
    _check(t.loss in LOSSES, "trainer.loss", t.loss, f"choose one of {', '.join(LOSSES)}")
    _check(t.device in DEVICES, "trainer.device", t.device, f"choose one of {', '.join(DEVICES)}")
    _check(t.num_threads >= 0, "trainer.num_threads", t.num_threads, "use 0 (torch default) or more")
    _check(t.checkpoint_every >= 1, "trainer.checkpoint_every", t.checkpoint_every, "use an integer >= 1")
    _check(t.dtype in DTYPES, "trainer.dtype", t.dtype, f"choose one of {', '.join(DTYPES)}")
    _check(o.name in OPTIMIZERS, "optimizer.name", o.name, f"choose one of {', '.join(OPTIMIZERS)}")
    _check(o.lr > 0, "optimizer.lr", o.lr, "use a learning rate > 0")
    _check(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "use a value >= 0")
    if o.lr_decay is not None:
        _check(0 < o.lr_decay <= 1, "optimizer.lr_decay", o.lr_decay, "use a gamma in (0, 1] or null")
    if "momentum" in o:
        _check(o.momentum >= 0, "optimizer.momentum", o.momentum, "use a value >= 0")
    _check(m.latent_dim >= 1, "model.latent_dim", m.latent_dim, "use an integer >= 1")
    for key in ("hidden_sizes", "decoder_hidden_sizes"):
        sizes = m[key] or []
        _check(all(s >= 1 for s in sizes), f"model.{key}", list(sizes), "use positive layer sizes")
    for key in ("activation", "latent_activation"):
        _check(m[key] in ACTIVATIONS, f"model.{key}", m[key], f"choose one of {', '.join(ACTIVATIONS)}")
    for key in ("dropout", "code_dropout"):
        _check(0 <= m[key] < 1, f"model.{key}", m[key], "use a probability in [0, 1)")
    _check(m.init in INITS, "model.init", m.init, f"choose one of {', '.join(INITS)}")
    _check(not m.freeze_decoder or m.decoder_from is not None, "model.freeze_decoder", True,
           "it needs model.decoder_from (a run folder, a checkpoint, or `train`)")
    r = cfg.regularizer
    for key in ("weight_l2", "activation_l1", "activation_l2"):
        _check(r[key] >= 0, f"regularizer.{key}", r[key], "use a weight >= 0")
    _check(0 <= r.mask_rate < 1, "regularizer.mask_rate", r.mask_rate, "use a probability in [0, 1)")
    p = cfg.plots
    _check(p.error_map_resolution >= 2, "plots.error_map_resolution", p.error_map_resolution, "use an integer >= 2")
    _check(p.error_threshold > 0, "plots.error_threshold", p.error_threshold, "use a value > 0")
    _check(p.dpi >= 10, "plots.dpi", p.dpi, "use an integer >= 10")
    if "n" in d:
        _check(d.n >= 2, "dataset.n", d.n, "use at least 2 points")
    if "noise" in d:
        _check(d.noise >= 0, "dataset.noise", d.noise, "use a standard deviation >= 0")
    if "train_fraction" in d:
        _check(0 < d.train_fraction <= 1, "dataset.train_fraction", d.train_fraction,
               "use a fraction in (0, 1], where 1 validates on the training points")
    if d.grid_extent is not None:
        e = list(d.grid_extent)
        _check(len(e) == 4 and e[0] < e[1] and e[2] < e[3], "dataset.grid_extent", e,
               "use [xmin, xmax, ymin, ymax] with xmin < xmax and ymin < ymax")
