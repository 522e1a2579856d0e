"""Bad inputs end in one clear message and a non-zero exit, never in a traceback or a "completed" run.

Three layers:
- a table of bad command lines, each run through the real `aecli` entry point (`aecli.cli.main`)
  in this process (fast: torch is imported once), with stderr captured;
- a few of them again as real `python -m aecli` subprocesses, run concurrently, proving the exit
  status and stderr a user sees;
- a hypothesis property: random overrides of known and made-up keys end in a handled outcome
  (a Hydra composition error, a ConfigError, or a valid config), never an unhandled exception;
- then one section per kind of check: `+key`s no schema has, unknown group options, generated data that
  overflows, sizes that cannot fit in memory (refused by estimate) and builders that fail.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import logging
import os
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf, open_dict

from aecli.config import compose
from aecli.errors import ConfigError
from aecli.overrides import check_overrides
from aecli.validation import validate

# The one-line message of aecli, Hydra's own short report of a composition error (a few lines, no
# traceback), and a sweep's: each failed job's one line, then the line saying how many did not complete.
AECLI, HYDRA, SWEEP = "aecli", "hydra", "sweep"
MAX_LINES = {AECLI: 1, HYDRA: 8, SWEEP: 2}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # command-line arguments; {name} is replaced by the path of asset `name`
    expect: str  # a substring stderr must contain: the key, the value or the problem
    kind: str = AECLI


def case(id: str, *args: str, expect: str, kind: str = AECLI):
    return pytest.param(Case(args, expect, kind), id=id)


# Each row runs `aecli ARGS` through the real entry point (aecli.cli.main) in this process.
CASES = [
    # --- ranges and choices (aecli.validation.validate, the plug-ins' specs): one sentence naming key, value
    # and what is allowed;
    # more of them in VALUE_CASES below, checked at the validate layer (the CLI prints every ConfigError alike)
    case("epochs-negative", "trainer.epochs=-1", expect="trainer.epochs=-1"),
    case("batch-size-zero", "trainer.batch_size=0", expect="trainer.batch_size=0"),
    case("lr-zero", "optimizer.lr=0", expect="optimizer.lr=0.0"),
    case("dropout-one", "model.dropout=1.0", expect="model.dropout=1.0"),
    case("device-unknown", "trainer.device=gpu", expect="trainer.device='gpu'"),
    case("activation-unknown", "model.activation=swish", expect="model.activation='swish'"),
    case("hidden-size-zero", "model.hidden_sizes=[4,0]", expect="model.hidden_sizes=[4, 0]"),
    case(
        "grid-extent-unordered", "dataset.grid_extent=[2,-2,-2,2]", expect="dataset.grid_extent=[2.0, -2.0, -2.0, 2.0]"
    ),
    case("interpolation-unknown-key", "trainer.epochs=${nope}", expect="trainer.epochs='${nope}'"),
    case("group-deleted", "~dataset", expect="dataset=???"),
    case(
        "analysis-file-escapes",
        "+analyses.x._target_=aecli.analyses.activations.activation_histograms",
        "+analyses.x.file=../../escaped.png",
        expect="analyses.x.file='../../escaped.png'",
    ),
    case(
        "source-bad-value",
        "transfer.decoder_from=train",
        "+transfer.source.optimizer.lr=0",
        expect="transfer.source.optimizer.lr=0.0",
    ),
    case(
        "analysis-unknown-setting",
        "+analyses.x._target_=aecli.analyses.activations.activation_histograms",
        "+analyses.x.nope=1",
        expect="analyses.x has settings ['nope']",
    ),
    case("delete-list-element", "~dataset.grid_extent.0", expect="~dataset.grid_extent.0 is not allowed"),
    # --- config groups set to no option: Hydra itself would answer with a traceback
    case("group-null", "dataset=null", expect="dataset=null is not allowed"),
    case("no-key", "=3", expect="'=3' is not allowed"),
    case("hydra-node-number", "hydra=3", expect="hydra=3 is not allowed: set Hydra's own keys instead"),
    case("added-no-key", "+=polynomial", expect="'+=polynomial' is not allowed: an override needs a key"),
    # --- settings that moved out of the model and the root (aecli.overrides): one sentence naming the new key
    case(
        "decoder-from-moved",
        "model.decoder_from=x",
        expect="model.decoder_from is not a setting of model: it moved to transfer.decoder_from",
    ),
    case(
        "source-moved",
        "+source.seed=3",
        expect="source.seed is not a setting at the top level: it moved to transfer.source.seed",
    ),
    # --- wrong types, unknown keys, bad grammar: Hydra's own short report
    case("type-int-from-text", "trainer.epochs=abc", expect="trainer.epochs", kind=HYDRA),
    case("type-bool-from-text", "trainer.shuffle=maybe", expect="trainer.shuffle", kind=HYDRA),
    case("unknown-key", "trainer.epoch=3", expect="epoch", kind=HYDRA),
    case(
        "dataset-key-of-another-option",
        "dataset=polynomial",
        "dataset.theta_max=40",
        expect="dataset.theta_max is not a setting of dataset=polynomial",
    ),
    case("model-key-misspelt", "model=relu", "model.activaton=tanh", expect="did you mean model.activation?"),
    case(
        "sweep-key-of-one-option",
        "-m",
        "dataset=file,polynomial",
        "dataset.path=x.csv",
        expect="dataset.path is not a setting of dataset=polynomial (only of dataset=file",
    ),
    case("grammar-open-bracket", "trainer.epochs=[1", expect="'[1'", kind=HYDRA),
    case("sweep-without-multirun", "trainer.epochs=1,2", expect="trainer.epochs=1,2", kind=HYDRA),
    # --- unknown group options (aecli.overrides.check_overrides): one line with the options, not Hydra's 14
    case(
        "unknown-model",
        "model=relu_bias",
        expect="model=relu_bias is not an option of model (did you mean model=relu_nobias?); choose one of beta_mlp,",
    ),
    case(
        "unknown-dataset",
        "dataset=nosuchdata",
        expect="dataset=nosuchdata is not an option of dataset; choose one of beta, digits, file, mnist, polynomial, "
        "rectangle, spiral, swiss_roll",
    ),
    case("unknown-dataset-in-sweep", "-m", "dataset=polynomial,nosuch", expect="dataset=nosuch is not an option"),
    case("unknown-experiment", "experiment=nope", expect="experiment=nope is not an option of experiment"),
    case(
        "unknown-launcher", "hydra/launcher=nosuch", expect="hydra/launcher=nosuch is not an option of hydra/launcher"
    ),
    case("unknown-logger-in-list", "logger=[csv,tensorbord]", expect="(did you mean logger=tensorboard?)"),
    case("unknown-added-group", "+variant=gdd", expect="variant=gdd is not an option of variant"),
    # --- `+key` past a schema's struct flag (aecli.validation.validate; the plug-in groups: their specs'
    # fields, aecli.plugins.build_spec): a misspelt setting is no silent no-op
    case(
        "plus-unknown-key",
        "experiment=swiss_roll",
        "+trainer.fast_dev_runs=true",
        expect="trainer.fast_dev_runs is not a setting of trainer (did you mean trainer.fast_dev_run?)",
    ),
    case(
        "plus-plus-unknown-key-in-sweep",
        "-m",
        "++dataset.nn=3",
        expect="dataset.nn is not a setting of dataset=polynomial (did you mean dataset.n?)",
        kind=SWEEP,
    ),
    case(
        "plus-unknown-key-in-plug-in",
        "+model.hiden_sizes=[3]",
        expect="model.hiden_sizes is not a setting of model=tanh (did you mean model.hidden_sizes?)",
    ),
    # --- generated data that overflows: one line naming the data set and the likeliest setting
    case(
        "rectangle-width-overflows-float32",
        "dataset=rectangle",
        "dataset.width=1e300",
        expect="dataset=rectangle makes non-finite points in float32 (dataset.width=1e+300 is too large); "
        "use smaller values",
    ),
    case(
        "polynomial-noise-overflows-std",
        "dataset.noise=1e300",
        expect="dataset=polynomial makes points it cannot scale: column 1's standard deviation overflows float64 "
        "(dataset.noise=1e+300 is too large)",
    ),
    case(
        "polynomial-noise-1e200",
        "dataset=polynomial",
        "dataset.noise=1e200",
        expect="(dataset.noise=1e+200 is too large)",
    ),
    # --- sizes that cannot fit in memory: refused before anything is allocated
    case("n-too-large-for-memory", "dataset.n=10000000000", expect="dataset.n=10000000000 needs about 596 GiB"),
    case(
        "hidden-size-too-large-for-memory",
        "model.hidden_sizes=[10000000000]",
        expect="model.hidden_sizes=[10000000000] needs about",
    ),
    # --- cross-field checks, found while building the run
    case("input-dim-mismatch", "model.input_dim=3", expect="model.input_dim=3"),
    case(
        "conv-on-2d-data",
        "model=conv",
        "dataset=spiral",
        expect="model=conv needs image data (dataset=mnist, digits, or dataset=file with images), but dataset=spiral "
        "has rows of 2 values",
    ),
    case("file-without-path", "dataset=file", expect="dataset.path=??? is not allowed"),
    case(
        "drop-last-batch-too-big", "trainer.drop_last=true", "trainer.batch_size=5000", expect="trainer.batch_size=5000"
    ),
    pytest.param(
        Case(("trainer.device=cuda",), "trainer.device=cuda"),
        id="device-cuda-missing",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
    ),
    case("decoder-from-missing", "transfer.decoder_from={outside}/no_such_run", expect="transfer.decoder_from="),
    case("decoder-from-incompatible", "transfer.decoder_from={big_run}", expect="do not match"),
    case("decoder-from-garbage", "transfer.decoder_from={garbage_pt}", expect="not a readable aecli checkpoint"),
    case("decoder-from-truncated", "transfer.decoder_from={truncated_pt}", expect="not a readable aecli checkpoint"),
    case(
        "source-run-diverges",
        "dataset=rectangle",
        "transfer.decoder_from=train",
        "+transfer.source.optimizer.lr=1e30",
        "+transfer.source.trainer.epochs=2",
        expect="transfer.decoder_from=train",
    ),
    # --- bad MNIST files (dataset.download=false: never the network)
    case(
        "mnist-no-files",
        "dataset=mnist",
        "dataset.download=false",
        "dataset.root={mnist_empty}",
        expect="4 of the 4 MNIST files are missing",
    ),
    case(
        "mnist-root-is-a-file",
        "dataset=mnist",
        "dataset.download=false",
        "dataset.root={garbage_pt}",
        expect="is not a folder",
    ),
    case(
        "mnist-wrong-magic",
        "dataset=mnist",
        "dataset.download=false",
        "dataset.root={mnist_bad_magic}",
        expect="magic number is 1234",
    ),
    case(
        "mnist-truncated",
        "dataset=mnist",
        "dataset.download=false",
        "dataset.root={mnist_truncated}",
        expect="truncated",
    ),
    case(
        "mnist-sizes-mismatch",
        "dataset=mnist",
        "dataset.download=false",
        "dataset.root={mnist_mismatch}",
        expect="20 images but",
    ),
    # --- resume (continuing a run that does not exist)
    case("resume-missing-folder", "resume=/nonexistent/folder", expect="/nonexistent/folder"),
    case("resume-from-missing-checkpoint", "trainer.resume_from=/nonexistent.pt", expect="/nonexistent.pt"),
    # --- the sweep report's figure names are file names in the job folders
    case(
        "sweep-figure-escapes",
        "-m",
        "hydra.callbacks.sweep_comparison.figures=[../../escaped.png]",
        expect="hydra.callbacks.sweep_comparison.figures",
        kind=HYDRA,
    ),
]

# More bad values, each composed and validated in this process (milliseconds each: the CLI's handling
# of a ConfigError is the same for all of them and is proven end to end by the rows above).
VALUE_CASES = [
    case("lr-negative", "optimizer.lr=-1e-3", expect="optimizer.lr=-0.001"),
    case("lr-nan", "optimizer.lr=nan", expect="optimizer.lr=nan"),
    case("lr-inf", "optimizer.lr=inf", expect="optimizer.lr=inf"),
    case("lr-decay-above-1", "optimizer.lr_decay=1.5", expect="optimizer.lr_decay=1.5"),
    case("weight-decay-negative", "optimizer.weight_decay=-1", expect="optimizer.weight_decay=-1.0"),
    case("adam-beta-1", "optimizer.betas=[1.0,0.999]", expect="optimizer.betas=[1.0, 0.999]"),
    case("adam-one-beta", "optimizer.betas=[0.9]", expect="optimizer.betas=[0.9]"),
    case("sgd-momentum-negative", "optimizer=sgd", "optimizer.momentum=-0.5", expect="optimizer.momentum=-0.5"),
    case("sgd-nesterov-no-momentum", "optimizer=sgd", "optimizer.nesterov=true", expect="optimizer.nesterov"),
    case("optimizer-name-not-option", "optimizer.name=sgd", expect="optimizer.name='sgd'"),
    case("latent-dim-zero", "model.latent_dim=0", expect="model.latent_dim=0"),
    case("input-dim-zero", "model.input_dim=0", expect="model.input_dim=0"),
    case("decoder-size-negative", "model.decoder_hidden_sizes=[-3]", expect="model.decoder_hidden_sizes=[-3]"),
    case("code-dropout-negative", "model.code_dropout=-0.1", expect="model.code_dropout=-0.1"),
    case("init-unknown", "model.init=xavier", expect="model.init='xavier'"),
    case("freeze-without-source", "transfer.freeze_decoder=true", expect="transfer.freeze_decoder"),
    case("decoder-from-empty", "transfer.decoder_from=''", expect="transfer.decoder_from=''"),
    case("mask-rate-one", "regularizer.mask_rate=1", expect="regularizer.mask_rate=1 is not allowed"),
    case("weight-l2-negative", "regularizer.weight_l2=-1", expect="regularizer.weight_l2=-1 is not allowed"),
    case("weight-l2-text", "regularizer.weight_l2=abc", expect="regularizer.weight_l2='abc' is not allowed"),
    case("activation-l1-inf", "regularizer.activation_l1=inf", expect="regularizer.activation_l1=inf"),
    case("loss-unknown", "trainer.loss=mae", expect="trainer.loss='mae'"),
    case("dtype-unknown", "trainer.dtype=float16", expect="trainer.dtype='float16'"),
    case("threads-negative", "trainer.num_threads=-1", expect="trainer.num_threads=-1"),
    case("checkpoint-every-zero", "trainer.checkpoint_every=0", expect="trainer.checkpoint_every=0"),
    case("error-map-resolution-1", "plots.error_map_resolution=1", expect="plots.error_map_resolution=1"),
    case("error-map-resolution-huge", "plots.error_map_resolution=100000", expect="plots.error_map_resolution=100000"),
    case("error-threshold-zero", "plots.error_threshold=0", expect="plots.error_threshold=0.0"),
    case("dpi-tiny", "plots.dpi=5", expect="plots.dpi=5"),
    case("seed-negative", "seed=-1", expect="seed=-1"),
    case("seed-too-big", "seed=4294967296", expect="seed=4294967296"),
    case("data-seed-negative", "dataset.seed=-3", expect="dataset.seed=-3"),
    case("n-one", "dataset.n=1", expect="dataset.n=1"),
    case("noise-negative", "dataset.noise=-1", expect="dataset.noise=-1.0"),
    case("noise-inf", "dataset.noise=inf", expect="dataset.noise=inf"),
    case("train-fraction-above-1", "dataset.train_fraction=1.5", expect="dataset.train_fraction=1.5"),
    case(
        "train-fraction-empty-split", "dataset.n=2", "dataset.train_fraction=0.1", expect="dataset.train_fraction=0.1"
    ),
    case(
        "digits-train-fraction-zero", "dataset=digits", "dataset.train_fraction=0", expect="dataset.train_fraction=0.0"
    ),
    case("grid-extent-two-values", "dataset.grid_extent=[0,1]", expect="dataset.grid_extent=[0.0, 1.0]"),
    case(
        "grid-extent-infinite", "dataset.grid_extent=[-inf,inf,0,1]", expect="dataset.grid_extent=[-inf, inf, 0.0, 1.0]"
    ),
    case("spiral-a-zero", "dataset=spiral", "dataset.a=0", expect="dataset.a=0.0"),
    case("spiral-theta-negative", "dataset=spiral", "dataset.theta_max=-1", expect="dataset.theta_max=-1.0"),
    case("spiral-overflows", "dataset=spiral", "dataset.b=100", expect="dataset.b=100.0"),
    case("beta-one-point", "dataset=beta", "dataset.points=1", expect="dataset.points=1"),
    case("beta-grid-at-0", "dataset=beta", "dataset.grid_min=0", expect="dataset.grid_min=0.0"),
    case(
        "beta-grid-reversed",
        "dataset=beta",
        "dataset.grid_min=0.9",
        "dataset.grid_max=0.1",
        expect="dataset.grid_max=0.1",
    ),
    case("beta-param-max-zero", "dataset=beta", "dataset.param_max=0", expect="dataset.param_max=0.0"),
    case("rectangle-width-zero", "dataset=rectangle", "dataset.width=0", expect="dataset.width=0.0"),
    case("rectangle-height-negative", "dataset=rectangle", "dataset.height=-2", expect="dataset.height=-2.0"),
    case("mnist-train-limit-zero", "dataset=mnist", "dataset.train_limit=0", expect="dataset.train_limit=0"),
    case("mnist-test-limit-negative", "dataset=mnist", "dataset.test_limit=-5", expect="dataset.test_limit=-5"),
    case("file-scale-zero", "dataset=file", "dataset.path=x.csv", "dataset.scale=0", expect="dataset.scale=0.0"),
    case(
        "file-not-a-table",
        "dataset=file",
        "dataset.path=x.txt",
        expect="dataset.path='x.txt' is not allowed: use a .csv, .npy or .npz file",
    ),
    case("vae-beta-negative", "model=vae", "model.beta=-1", expect="model.beta=-1.0 is not allowed"),
    case(
        "vae-latent-activation",
        "model=vae",
        "model.latent_activation=tanh",
        expect="model.latent_activation='tanh' is not allowed: a VAE's encoder outputs a mean and a log-variance",
    ),
    case("conv-kernel-even", "model=conv", "model.kernel_size=2", expect="model.kernel_size=2 is not allowed"),
    case("conv-no-channels", "model=conv", "model.channels=[]", expect="model.channels=[] is not allowed"),
    case("hidden-sizes-text", "model.hidden_sizes=[a]", expect="model.hidden_sizes=['a'] is not allowed"),
    case("interpolation-wrong-type", "trainer.batch_size=${oc.env:HOME}", expect="trainer.batch_size"),
    case("analysis-not-a-mapping", "+analyses.x=1", expect="analyses.x=1"),
    case(
        "analysis-file-absolute",
        "+analyses.x._target_=aecli.analyses.activations.activation_histograms",
        "+analyses.x.file=/tmp/escaped.png",
        expect="analyses.x.file='/tmp/escaped.png'",
    ),
    case("group-number", "model=3", expect="model=3 is not allowed"),
    case("analysis-unknown-target", "+analyses.x._target_=aecli.analyses.nope", expect="analyses.x._target_="),
    case(
        "list-from-interpolation",
        "model.hidden_sizes=${model.activation}",
        expect="model.hidden_sizes='relu' is not allowed",  # the plug-in's spec sees the resolved value
    ),
    case("group-from-interpolation", "plots=${trainer}", expect="plots='${trainer}'"),
    case(
        "keys-under-interpolation", "plots=${dataset.seed}", "++plots.dpi=100", expect="++plots.dpi=100 is not allowed"
    ),
    case("part-deleted", "~plots", expect="plots='<deleted>'"),
    # found while attacking the paths above: each crashed or ran on collapsed data before
    case("threads-segfault", "trainer.num_threads=100000", expect="trainer.num_threads=100000"),
    case("threads-overflow", f"trainer.num_threads={10**30}", expect=f"trainer.num_threads={10**30}"),
    case(
        "grid-extent-beyond-float32",
        "dataset.grid_extent=[-1e308,1e308,-1,1]",
        expect="dataset.grid_extent=[-1e+308, 1e+308, -1.0, 1.0]",
    ),
    case("rectangle-width-rounds-to-0", "dataset=rectangle", "dataset.width=1e-320", expect="dataset.width=1e-320"),
]

# Run again as real subprocesses: the exit status and stderr exactly as a user sees them (numpy's
# overflow warnings, which pytest would swallow in-process, included), under an address-space limit.
SUBPROCESS_CASES = [
    "lr-zero",
    "type-int-from-text",
    "unknown-dataset",
    "plus-unknown-key",
    "rectangle-width-overflows-float32",
    "polynomial-noise-overflows-std",
    "n-too-large-for-memory",
    "hidden-size-too-large-for-memory",
    "decoder-from-moved",
]
SUBPROCESS_MEMORY_LIMIT = 8 * 2**30  # RLIMIT_AS: torch's import fits; allocating a refused size would not


# ----------------------------------------------------------------------------- assets
def write_idx(path: Path, magic: int, dims: tuple[int, ...], truncate: bool = False) -> None:
    """A gzipped IDX file of unsigned bytes (aecli/mnist_files.py reads these)."""
    count = 1
    for d in dims:
        count *= d
    payload = struct.pack(f">{1 + len(dims)}I", magic, *dims) + bytes(i % 10 for i in range(count))
    data = gzip.compress(payload)
    path.write_bytes(data[: len(data) // 2] if truncate else data)


def write_mnist(
    folder: Path,
    train: int = 20,
    test: int = 10,
    train_labels: int | None = None,
    image_magic: int = 2051,
    truncate: bool = False,
) -> Path:
    folder.mkdir(parents=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", image_magic, (train, 28, 28), truncate=truncate)
    write_idx(folder / "train-labels-idx1-ubyte.gz", 2049, (train if train_labels is None else train_labels,))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", 2051, (test, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, (test,))
    return folder


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    """Folders and files the bad inputs point at (module-scoped: built once)."""
    from aecli.pipeline import run

    root = tmp_path_factory.mktemp("bad_input_assets")
    (root / "mnist_empty").mkdir()
    big_run = root / "big_run"  # a finished run of another architecture: its decoder does not fit
    cfg = compose(
        ["dataset=rectangle", "model=big", "trainer.epochs=0", "plots.enabled=false", "trainer.progress=false"]
    )
    assert run(cfg, big_run).status == "completed"
    checkpoint = (big_run / "checkpoints" / "last.pt").read_bytes()
    (root / "truncated.pt").write_bytes(checkpoint[: len(checkpoint) // 2])
    (root / "garbage.pt").write_bytes(b"this is not a checkpoint\n" * 10)
    (root / "sklearn_data").mkdir()  # an empty scikit-learn data home: no OpenML MNIST to fall back on
    return {
        "outside": str(root / "outside"),
        "big_run": str(big_run),
        "truncated_pt": str(root / "truncated.pt"),
        "garbage_pt": str(root / "garbage.pt"),
        "mnist_empty": str(root / "mnist_empty"),
        "mnist_bad_magic": str(write_mnist(root / "mnist_bad_magic", image_magic=1234)),
        "mnist_truncated": str(write_mnist(root / "mnist_truncated", truncate=True)),
        "mnist_mismatch": str(write_mnist(root / "mnist_mismatch", train_labels=15)),
        "sklearn_data": str(root / "sklearn_data"),
    }


def command_line(c: Case, assets: dict[str, str], run_dir: Path) -> list[str]:
    args = [a.format(**assets) if "{" in a and "${" not in a else a for a in c.args]
    folder = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
    return [*args, f"{folder}={run_dir}", "trainer.progress=false", "plots.enabled=false"]


def check_report(c: Case, code: object, stderr: str, run_dir: Path) -> None:
    """What every bad input must give: a non-zero exit, a short stderr without a traceback that names
    the problem, and no run folder claiming `completed`."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code not in (0, None), f"exit status {code!r}; stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert c.expect in stderr, stderr
    assert 1 <= len(lines) <= MAX_LINES[c.kind], stderr
    if c.kind in (AECLI, SWEEP):
        assert lines[0].startswith("aecli: error: "), stderr
    for summary in run_dir.rglob("summary.json"):
        assert json.loads(summary.read_text())["status"] != "completed", summary


def _restore_logging(handlers: list, level: int) -> None:
    """Undo what an in-process `aecli` run leaves behind: Hydra's logging set-up (handlers on streams this
    test captured, a file in its run folder) and its HydraConfig (read by aecli.trackers in later runs)."""
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    HydraConfig.instance().cfg = None


# ----------------------------------------------------------------------------- in-process table
@pytest.mark.parametrize("c", CASES)
def test_bad_input_gives_one_clear_error(c: Case, assets, tmp_path, monkeypatch, capsys):
    from aecli.cli import main

    run_dir = tmp_path / "run"
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", assets["sklearn_data"])
    monkeypatch.setattr(sys, "argv", ["aecli", *command_line(c, assets, run_dir)])
    monkeypatch.chdir(tmp_path)
    handlers, level = list(logging.getLogger().handlers), logging.getLogger().level
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        _restore_logging(handlers, level)
    check_report(c, exit_info.value.code, capsys.readouterr().err, run_dir)
    assert exit_info.value.code == (2 if c.kind == AECLI else 1)  # a bad value 2; Hydra's report, a sweep's job 1


def test_there_are_at_least_30_bad_inputs():
    ids = [p.id for p in CASES + VALUE_CASES]
    assert len(CASES) >= 30 and len(set(ids)) == len(ids)


# ----------------------------------------------------------------------------- validate layer
GROUP_NAMES = {"dataset", "model", "optimizer", "regularizer", "trainer", "experiment"}


@functools.cache
def composed(groups: tuple[str, ...]) -> DictConfig:
    """The config these group choices compose (cached: composing costs ~0.3 s)."""
    return compose(list(groups))


@pytest.mark.parametrize("c", VALUE_CASES)
def test_bad_value_is_one_sentence(c: Case):
    groups = tuple(a for a in c.args if a.split("=", 1)[0] in GROUP_NAMES)
    values = [a for a in c.args if a not in groups]
    with pytest.raises(ConfigError) as info:
        validate(apply_overrides(composed(groups), values))
    message = str(info.value)
    assert "\n" not in message and c.expect in message, message
    assert " is not allowed" in message, message  # key=value is not allowed: what is


# ----------------------------------------------------------------------------- real subprocesses
# `python -m aecli ARGS` under an address-space limit (a thread-safe stand-in for preexec_fn)
LIMITED_AECLI = (
    "import resource, runpy; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({SUBPROCESS_MEMORY_LIMIT}, {SUBPROCESS_MEMORY_LIMIT})); "
    "runpy.run_module('aecli', run_name='__main__', alter_sys=True)"
)
subprocess_seconds: dict[str, float] = {}  # wall seconds of each subprocess case


@pytest.fixture(scope="module")
def subprocess_results(assets, tmp_path_factory) -> dict[str, tuple[Case, subprocess.CompletedProcess, Path]]:
    """`python -m aecli ...` for SUBPROCESS_CASES (and one with HYDRA_FULL_ERROR=1), run concurrently."""
    by_id = {p.id: p.values[0] for p in CASES}
    jobs = {name: (by_id[name], {}) for name in SUBPROCESS_CASES}
    jobs["full-error"] = (by_id["type-int-from-text"], {"HYDRA_FULL_ERROR": "1"})
    root = tmp_path_factory.mktemp("bad_input_subprocesses")
    seconds = subprocess_seconds

    def launch(name: str) -> tuple[Case, subprocess.CompletedProcess, Path]:
        c, extra_env = jobs[name]
        run_dir = root / name / "run"
        run_dir.parent.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env.update(PYTHONUNBUFFERED="1", SCIKIT_LEARN_DATA=assets["sklearn_data"], **extra_env)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", LIMITED_AECLI, *command_line(c, assets, run_dir)],
            cwd=run_dir.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        seconds[name] = time.perf_counter() - started
        return c, proc, run_dir

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(jobs, pool.map(launch, jobs)))


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_as_a_real_command(name, subprocess_results):
    c, proc, run_dir = subprocess_results[name]
    check_report(c, proc.returncode, proc.stderr, run_dir)
    assert proc.returncode == (2 if c.kind == AECLI else 1), proc.stderr
    # the sizes that cannot fit are refused by estimate: nothing large is allocated (RLIMIT_AS would turn
    # that into "could not be built"), and the answer takes no longer than any other bad value's
    assert subprocess_seconds[name] < 60, subprocess_seconds


def test_hydra_full_error_shows_the_traceback(subprocess_results):
    c, proc, _ = subprocess_results["full-error"]
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigCompositionException" in proc.stderr and c.expect in proc.stderr


def test_hydra_full_error_raises_config_errors_too(tmp_path, monkeypatch, capsys):
    from aecli.cli import main

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "aecli",
            "optimizer.lr=0",
            f"hydra.run.dir={tmp_path / 'run'}",
            "trainer.progress=false",
            "plots.enabled=false",
        ],
    )
    handlers, level = list(logging.getLogger().handlers), logging.getLogger().level
    try:
        with pytest.raises(ConfigError, match="optimizer.lr=0.0"):
            main()
    finally:
        _restore_logging(handlers, level)


def test_aecli_report_rejects_figures_outside_the_folders(tmp_path, capsys):
    from aecli.reporting.report import main

    (tmp_path / "sweep" / "0").mkdir(parents=True)
    assert main([str(tmp_path / "sweep"), "--figures", "../../escaped.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'../../escaped.png'" in err
    assert not list(tmp_path.rglob("*.png")) and not (tmp_path / "sweep" / "summary.csv").exists()


def test_confined_keeps_config_file_names_inside_the_run_folder(tmp_path):
    from aecli.run_files import confined

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "link").symlink_to(tmp_path)
    assert confined(run_dir, "figure.png") == (run_dir / "figure.png").resolve()
    assert confined(run_dir, "sub/figure.png") == (run_dir / "sub" / "figure.png").resolve()
    for name in ["../figure.png", str(tmp_path / "figure.png"), "", ".", "sub/../..", "link/figure.png", "a\0b"]:
        with pytest.raises(ConfigError, match="is not allowed"):
            confined(run_dir, name, "analyses.x.file")


# ----------------------------------------------------------------------------- property: random overrides
BASE_OVERRIDES = [
    [],
    ["dataset=spiral"],
    ["dataset=beta"],
    ["dataset=rectangle", "optimizer=sgd"],
    ["dataset=mnist"],
    ["dataset=digits", "model=mnist_bottleneck"],
    ["dataset=digits", "model=conv"],
    ["dataset=file", "dataset.path=/nonexistent/points.csv"],
    ["model=vae", "regularizer=[denoising,weight_l2]"],
    ["experiment=rectangle_frozen_decoder"],
    ["experiment=swiss_roll"],
]
GROUPS = {
    "dataset",
    "model",
    "optimizer",
    "regularizer",
    "trainer",
    "transfer",
    "callbacks",
    "experiment",
    "hparams_search",
    "logger",
    "hydra",
    "schema",
    "variant",
    "",
}


def test_the_property_knows_every_config_group():
    """A group missing from GROUPS would be overridden as a plain key, and never drawn as a group."""
    from aecli.config import config_options

    assert {group.split("/")[0] for group in config_options()} <= GROUPS


def leaf_keys(node: object, prefix: str = "") -> list[str]:
    """Every key of a composed config, inner nodes and list elements included (`model.hidden_sizes.0`)."""
    keys = [prefix[:-1]] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            keys += leaf_keys(v, f"{prefix}{k}.")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            keys += leaf_keys(v, f"{prefix}{i}.")
    return keys


@pytest.fixture(scope="module")
def bases() -> list[tuple[DictConfig, list[str]]]:
    """Composed configs and their keys."""
    out = []
    for overrides in BASE_OVERRIDES:
        cfg = composed(tuple(overrides))
        keys = [k for k in leaf_keys(OmegaConf.to_container(cfg, resolve=False)) if k not in GROUPS]
        out.append((cfg, keys))
    return out


def apply_overrides(base: DictConfig, overrides: list[str]) -> DictConfig:
    """What `aecli.config.compose` does with value overrides once the defaults list is composed, with
    Hydra's own functions (parse, reject sweeps outside -m, merge into the struct config), on a copy of
    an already composed config: milliseconds instead of ~0.3 s per example."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    check_overrides(overrides)
    parsed = OverridesParser.create().parse_overrides(overrides)
    ConfigLoaderImpl.validate_sweep_overrides_legal(parsed, run_mode=RunMode.RUN, from_shell=True)
    cfg = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    return cfg


def handled(outcome: BaseException | None) -> bool:
    """What the CLI reports without a traceback: Hydra's compact errors and aecli's ConfigError."""
    from hydra.errors import CompactHydraException

    return outcome is None or isinstance(outcome, (CompactHydraException, ConfigError))


NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-0", "1", "-1", "1e400", "-1e-400", "nan", "-inf", "0x10", "1_000", "007"]),
)
TEXT = st.text(st.sampled_from("abz09 _-.,:;/\\'\"$@#%^&*()[]{}<>=+~?!|`\t"), max_size=12)
SPECIAL = st.sampled_from(
    [
        "",
        "null",
        "true",
        "False",
        "''",
        "'a b'",
        "[]",
        "{}",
        "relu",
        "tanh",
        "cuda",
        "cpu",
        "mse",
        "float64",
        "train",
        "/nonexistent",
        "../x.png",
        "[1,2,3]",
        "[0.5,-1]",
    ]
)


def interpolations(keys: list[str]) -> st.SearchStrategy[str]:
    """${...} values: to other keys (of other types), to nothing, through resolvers."""
    return st.one_of(
        st.sampled_from(keys).map(lambda k: "${" + k + "}"),
        st.sampled_from(
            [
                "${nope}",
                "${oc.env:HOME}",
                "${oc.env:NOPE_AECLI}",
                "${oc.env:NOPE_AECLI,3}",
                "${oc.decode:'[1'}",
                "${oc.decode:'3'}",
                "${dataset}",
                "${now:%Y}",
                "${aecli_pid:}",
                "${oc.select:nope,1}",
            ]
        ),
    )


def values(keys: list[str]) -> st.SearchStrategy[str]:
    scalars = st.one_of(NUMBERS, TEXT, SPECIAL, interpolations(keys))
    return st.one_of(
        scalars,
        interpolations(keys),
        SPECIAL,
        st.lists(scalars, max_size=4).map(lambda v: "[" + ",".join(v) + "]"),
        st.dictionaries(st.sampled_from(["a", "b", "_target_"]), scalars, max_size=2).map(
            lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
        ),
    )


@st.composite
def override_lines(draw, keys: list[str]) -> str:
    key = draw(
        st.one_of(
            st.sampled_from(keys),
            st.sampled_from(keys),
            st.sampled_from(keys),
            st.sampled_from(keys).map(lambda k: k + draw(TEXT)),
            TEXT.filter(lambda k: k.strip(" \t") not in GROUPS),
        )
    )
    prefix = draw(st.sampled_from(["", "", "", "", "+", "++", "~"]))
    if prefix == "~" and draw(st.booleans()):
        return f"~{key}"
    return f"{prefix}{key}={draw(values(keys))}"


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_overrides_end_in_a_handled_outcome(bases, data):
    base, keys = data.draw(st.sampled_from(bases), label="base")
    overrides = data.draw(st.lists(override_lines(keys), min_size=1, max_size=3), label="overrides")
    outcome: BaseException | None = None
    try:
        validate(apply_overrides(base, overrides))
    except Exception as err:  # noqa: BLE001  (the property is about which exceptions)
        outcome = err
    assert handled(outcome), f"{overrides}: unhandled {type(outcome).__name__}: {outcome}"


GROUP_VALUES = st.one_of(
    st.sampled_from(
        ["polynomial", "spiral", "null", "3", "1.5", "true", "[]", "{}", "''", "relu", "nope", "[polynomial]", "mnist"]
        + ["file", "vae", "conv", "none", "[denoising,weight_l2]"]
    ),
    TEXT,
)


@settings(max_examples=8, deadline=None, database=None)
@given(
    group=st.sampled_from(sorted(GROUPS - {"hydra", "schema", ""}) + ["", "hydra/launcher"]),
    value=GROUP_VALUES,
    prefix=st.sampled_from(["", "+", "~"]),
)
def test_random_group_choices_end_in_a_handled_outcome(group, value, prefix):
    """Group overrides need the full composition (~0.3 s each): fewer examples."""
    overrides = [f"{prefix}{group}={value}"]
    outcome: BaseException | None = None
    try:
        validate(compose(overrides))
    except Exception as err:  # noqa: BLE001
        outcome = err
    assert handled(outcome), f"{overrides}: unhandled {type(outcome).__name__}: {outcome}"


def test_error_map_on_data_that_is_not_2d_is_skipped_with_a_log_note(tmp_path, caplog):
    """Not an error: a 3-D data set (even with a grid_extent set) gets every figure but the error map."""
    from aecli.pipeline import run

    cfg = compose(
        [
            "dataset=swiss_roll",
            "dataset.n=60",
            "dataset.grid_extent=[-1,1,-1,1]",
            "trainer.epochs=1",
            "trainer.progress=false",
            "plots.dpi=20",
        ]
    )
    with caplog.at_level(logging.INFO, logger="aecli"):
        summary = run(cfg, tmp_path / "run").as_dict()
    assert summary["status"] == "completed"
    assert "error_map.png skipped: the error map needs 2-D data with a dataset.grid_extent, swiss_roll is 3-D" in (
        caplog.text
    )
    assert (tmp_path / "run" / "loss_curve.png").is_file() and not (tmp_path / "run" / "error_map.png").exists()


# ----------------------------------------------------------------------------- `+key`: unknown settings
# A `+key` or `++key` in every part of the config whose settings are known, each with the one sentence it
# gets (before the fix, each was silently kept and ignored): the root's dataclass schemas, checked by
# aecli.validation; each data set's and model family's spec, whose fields aecli.plugins.build_spec matches a
# typo against; the regularizer's terms (aecli.training.regularizers.build_regularizers).
SCHEMA_TYPOS = [
    (
        ("experiment=swiss_roll",),
        ["+trainer.fast_dev_runs=true"],
        "trainer.fast_dev_runs is not a setting of trainer (did you mean trainer.fast_dev_run?)",
    ),
    ((), ["++dataset.nn=3"], "dataset.nn is not a setting of dataset=polynomial (did you mean dataset.n?)"),
    (
        ("dataset=beta",),
        ["+dataset.pionts=3"],
        "dataset.pionts is not a setting of dataset=beta (did you mean dataset.points?)",
    ),
    (
        ("dataset=spiral",),
        ["+dataset.thetamax=3"],
        "dataset.thetamax is not a setting of dataset=spiral (did you mean dataset.theta_max?)",
    ),
    (
        ("dataset=swiss_roll",),
        ["+dataset.nosie=0.1"],
        "dataset.nosie is not a setting of dataset=swiss_roll (did you mean dataset.noise?)",
    ),
    (
        ("dataset=rectangle",),
        ["+dataset.widht=3"],
        "dataset.widht is not a setting of dataset=rectangle (did you mean dataset.width?)",
    ),
    (
        ("dataset=mnist",),
        ["+dataset.train_limt=3"],
        "dataset.train_limt is not a setting of dataset=mnist (did you mean dataset.train_limit?)",
    ),
    (
        ("dataset=digits",),
        ["+dataset.train_fractoin=0.5"],
        "dataset.train_fractoin is not a setting of dataset=digits (did you mean dataset.train_fraction?)",
    ),
    (
        ("dataset=file",),
        ["dataset.path=points.csv", "+dataset.colums=[x]"],
        "dataset.colums is not a setting of dataset=file (did you mean dataset.columns?)",
    ),
    ((), ["+model.latent_dims=3"], "model.latent_dims is not a setting of model=tanh (did you mean model.latent_dim?)"),
    (
        (),
        ["+model.hiden_sizes=[3]"],
        "model.hiden_sizes is not a setting of model=tanh (did you mean model.hidden_sizes?)",
    ),
    (("model=vae",), ["+model.bta=4"], "model.bta is not a setting of model=vae (did you mean model.beta?)"),
    (
        ("model=conv",),
        ["+model.chanels=[8]"],
        "model.chanels is not a setting of model=conv (did you mean model.channels?)",
    ),
    (
        (),
        ["+model.decoder_from=train"],
        "model.decoder_from is not a setting of model: it moved to transfer.decoder_from",
    ),
    (
        (),
        ["+optimizer.betaz=[0.9,0.99]"],
        "optimizer.betaz is not a setting of optimizer (did you mean optimizer.betas?)",
    ),
    (
        ("optimizer=sgd",),
        ["+optimizer.momentun=0.9"],
        "optimizer.momentun is not a setting of optimizer (did you mean optimizer.momentum?)",
    ),
    (
        (),
        ["+regularizer.weight_l3=1"],
        "regularizer.weight_l3 is not a regularizer term (did you mean regularizer.weight_l2?)",
    ),
    ((), ["+plots.dpii=300"], "plots.dpii is not a setting of plots (did you mean plots.dpi?)"),
    (
        (),
        ["+transfer.decoder_frm=x"],
        "transfer.decoder_frm is not a setting of transfer (did you mean transfer.decoder_from?)",
    ),
    ((), ["+seeed=3"], "seeed is not a setting at the top level (did you mean seed?)"),
    (
        (),
        ["logger=[csv,tensorboard]", "+logger.tensorboard.root_dirr=x"],
        "logger.tensorboard.root_dirr is not a setting of logger.tensorboard "
        "(did you mean logger.tensorboard.root_dir?)",
    ),
    ((), ["+trainer.zzzz=1"], "trainer.zzzz is not a setting of trainer; remove it, or use one of epochs, batch_size,"),
    (
        (),
        ["transfer.decoder_from=train", "+transfer.source.trainer.epochz=1"],
        "transfer.source.trainer.epochz is not a setting of trainer (did you mean transfer.source.trainer.epochs?)",
    ),
    (
        (),
        ["transfer.decoder_from=train", "+transfer.source.model.hiden_sizes=[3]"],
        "transfer.source.model.hiden_sizes is not a setting of model=tanh "
        "(did you mean transfer.source.model.hidden_sizes?)",
    ),
]
PLUG_IN_GROUPS = {"dataset": "DataSpec", "model": "ModelSpec"}  # group -> the base class its options' specs extend


@pytest.mark.parametrize(("groups", "overrides", "message"), SCHEMA_TYPOS, ids=[o[-1] for _, o, _ in SCHEMA_TYPOS])
def test_an_added_key_a_schema_does_not_have_is_one_sentence(groups, overrides, message):
    if overrides[0].startswith("logger="):  # a group choice: compose it
        groups, overrides = (*groups, overrides[0]), overrides[1:]
    with pytest.raises(ConfigError) as info:
        validate(apply_overrides(composed(groups), overrides))
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def option_spec(group: str, groups: tuple[str, ...]) -> type:
    """The Spec class the `group` node of the config `groups` compose names (its _target_)."""
    import aecli.data
    import aecli.models
    from aecli.plugins import spec_class

    base = getattr(aecli.data if group == "dataset" else aecli.models, PLUG_IN_GROUPS[group])
    return spec_class(composed(groups)[group]._target_, group, base)


def test_every_schema_part_has_a_typo_case():
    """The parts found from the schemas and options themselves, not from a list kept by hand: the root's
    dataclass parts (OmegaConf.get_type), the regularizer's terms, and the spec of every shipped option of
    the plug-in groups (a new data set or model family needs a case of its own)."""
    from dataclasses import is_dataclass

    from aecli.config import config_options

    cfg = composed(())
    roots = {k for k in cfg if OmegaConf.is_config(cfg[k]) and is_dataclass(OmegaConf.get_type(cfg[k]))}
    assert roots == {"optimizer", "trainer", "plots", "transfer"}
    options = [(group, option) for group in PLUG_IN_GROUPS for option in config_options()[group]]
    specs = {option_spec(group, (f"{group}={option}",)) for group, option in options}
    assert len(specs) >= 11  # 8 data sets; mlp (and its presets), vae, conv
    covered = set()
    for groups, overrides, _ in SCHEMA_TYPOS:
        part = overrides[-1].lstrip("+").split(".")[0].split("=")[0]
        covered.add(option_spec(part, groups) if part in PLUG_IN_GROUPS else part)
    missing = (roots | {"regularizer"} | specs) - covered
    assert not missing, f"no typo case for {sorted(map(str, missing))}"


@pytest.mark.parametrize(
    "overrides",
    [
        ["+analyses.x._target_=aecli.analyses.activations.activation_histograms"],
        ["+logger.mine._target_=aecli.reporting.trackers.Tracker"],
        ["transfer.decoder_from=train", "+transfer.source.seed=3", "+transfer.source.trainer.epochs=2"],
        ["++trainer.epochs=3"],
    ],
)
def test_free_form_mappings_stay_open(overrides):
    validate(apply_overrides(composed(()), overrides))


@pytest.mark.parametrize("path", ["command line", "config file"])
def test_a_setting_that_moved_out_of_the_model_names_its_new_key(path):
    """On the command line aecli.overrides answers before Hydra's struct config does; in a config file (an old
    experiment, a saved config) the model's spec does (aecli.plugins.MOVED)."""
    cfg = copy.deepcopy(composed(()))
    with pytest.raises(ConfigError) as info:
        if path == "command line":
            validate(apply_overrides(cfg, ["model.freeze_decoder=true"]))
        with open_dict(cfg.model):
            cfg.model.freeze_decoder = True
        validate(cfg)
    message = str(info.value)
    assert message.startswith("model.freeze_decoder is not a setting of model"), message
    assert message.endswith(": it moved to transfer.freeze_decoder") and "\n" not in message, message


def test_presets_of_the_regularizer_group_combine():
    """`regularizer=[denoising,weight_l2]` switches on both terms, each with its preset's weight."""
    from aecli.training.regularizers import build_regularizers

    plan = validate(copy.deepcopy(composed(("regularizer=[denoising,weight_l2]",))))
    terms = {term.key: term.weight for term in build_regularizers(plan.cfg.regularizer)}
    assert terms == {"mask_rate": 0.2, "weight_l2": 0.01}, terms


def test_the_python_api_refuses_an_unknown_key_too(tmp_path):
    import aecli

    with pytest.raises(ConfigError, match=r"^trainer\.fast_dev_runs is not a setting of trainer"):
        aecli.run(["+trainer.fast_dev_runs=true", "trainer.progress=false"], output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # validated before any folder is made: nothing claims to be a run
    with pytest.raises(ConfigError, match=r"^model\.hiden_sizes is not a setting of model=tanh"):
        aecli.run(["+model.hiden_sizes=[3]", "trainer.progress=false"], output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- unknown group options
@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset=spiral", "model=relu", "trainer.epochs=3", "seed=7"],
        ["dataset=spiral.yaml"],  # Hydra takes the file name too
        ["logger=[csv,tensorboard]"],
        ["dataset=polynomial,spiral", "model=glob(*)"],
        ["hydra/launcher=joblib", "hparams_search=optuna", "+variant=gd", "experiment=swiss_roll"],
        ["~dataset", "~model=nosuch"],  # deletes are left to Hydra
    ],
)
def test_real_group_options_pass_the_check(overrides):
    check_overrides(overrides)


def test_aecli_groups_are_checked_without_the_config_repository(monkeypatch):
    """check_overrides runs before every command (--cfg job, --help): aecli's own groups are judged from its
    shipped files, in milliseconds; Hydra's config repository (0.1 s) only for hydra/... groups."""
    import aecli.overrides

    def no_repository():
        raise AssertionError("the config repository was built")

    monkeypatch.setattr(aecli.overrides, "_config_repository", no_repository)
    started = time.perf_counter()
    check_overrides(["dataset=spiral", "model=vae", "experiment=swiss_roll", "logger=[csv]", "seed=3"])
    check_overrides(["transfer.decoder_from=train", "regularizer=[denoising,weight_l2]", "dataset=file"])
    assert time.perf_counter() - started < 0.2
    with pytest.raises(ConfigError, match="^model=nope is not an option of model; choose one of beta_mlp"):
        check_overrides(["model=nope"])


# ----------------------------------------------------------------------------- data that overflows
DATA_CASES = [
    case(
        "spiral-a-overflows",
        "dataset=spiral",
        "dataset.a=1e300",
        expect="dataset=spiral makes points it cannot scale: column 0's standard deviation overflows float64 "
        "(dataset.a=1e+300 is too large); use smaller values",
    ),
    case(
        "spiral-a-underflows",
        "dataset=spiral",
        "dataset.a=1e-320",
        expect="column 0's standard deviation is 0, its values over- or underflowed to one number (dataset.a=",
    ),
    case(
        "swiss-roll-noise-overflows",
        "dataset=swiss_roll",
        "dataset.noise=1e308",
        expect="dataset=swiss_roll makes points it cannot scale: column 0's range overflows float64 "
        "(dataset.noise=1e+308 is too large)",
    ),
    case(
        "beta-param-max-overflows",
        "dataset=beta",
        "dataset.n=50",
        "dataset.param_max=1e300",
        expect="dataset=beta makes non-finite points in float32 (dataset.param_max=1e+300 is too large)",
    ),
    case(
        "beta-noise-overflows",
        "dataset=beta",
        "dataset.n=50",
        "dataset.noise=1e300",
        expect="dataset=beta makes non-finite points in float32 (dataset.noise=1e+300 is too large)",
    ),
    case(
        "rectangle-noise-overflows",
        "dataset=rectangle",
        "dataset.noise=1e300",
        expect="dataset=rectangle makes non-finite points in float32 (dataset.noise=1e+300 is too large)",
    ),
]


@pytest.mark.parametrize("c", DATA_CASES)
def test_data_that_overflows_is_refused_before_training(c: Case, run_in_process, tmp_path):
    with pytest.raises(ConfigError) as info:
        run_in_process(*c.args)
    message = str(info.value)
    assert "\n" not in message and c.expect in message, message
    summary = json.loads((tmp_path / "run0" / "summary.json").read_text())
    assert (
        summary["status"] == "failed" and summary["phase"] == "data" and summary["error"] == f"ConfigError: {message}"
    )


def test_standardize_refuses_columns_it_cannot_scale():
    import numpy as np

    from aecli.data import UnscalableData, standardize

    with np.errstate(over="ignore"), pytest.raises(UnscalableData, match="column 1's standard deviation overflows"):
        standardize(np.array([[0.0, 1e300], [1.0, -1e300]]))
    with pytest.raises(UnscalableData, match="column 0's standard deviation is 0"):
        standardize(np.array([[1e-320, 1.0], [1e-320, 2.0]]))
    assert standardize(np.array([[0.0, 1.0], [2.0, 3.0]])).tolist() == [[-1.0, -1.0], [1.0, 1.0]]


# ----------------------------------------------------------------------------- memory
MEMORY_CASES = [
    case("beta-points", "dataset=beta", "dataset.points=1000000000", expect="dataset.points=1000000000 needs about"),
    case("latent-dim", "model.latent_dim=10000000000", expect="model.latent_dim=10000000000 needs about 1.09 TiB"),
    case("decoder-size", "model.decoder_hidden_sizes=[100000000000]", expect="model.decoder_hidden_sizes=["),
    case(
        "error-map-pass",
        "model.hidden_sizes=[1000000]",
        expect="model.hidden_sizes=[1000000] needs about 2.73 TiB to pass 250000 points through the model at once "
        "(the error map's plots.error_map_resolution=500 squared)",
    ),
    case(
        "source-n",
        "transfer.decoder_from=train",
        "+transfer.source.dataset.n=10000000000",
        expect="transfer.source.dataset.n=10000000000 needs about",
    ),
]


@pytest.mark.parametrize("c", MEMORY_CASES)
def test_sizes_that_cannot_fit_are_refused_by_estimate(c: Case):
    groups = tuple(a for a in c.args if a.split("=", 1)[0] in GROUP_NAMES)
    values = [a for a in c.args if a not in groups]
    with pytest.raises(ConfigError) as info:
        validate(apply_overrides(composed(groups), values))
    message = str(info.value)
    assert "\n" not in message and c.expect in message and "; this machine has " in message, message


def test_a_huge_input_dim_is_refused_before_the_model_is_built(run_in_process, tmp_path):
    """model.input_dim must be the data's width (null: taken from it), so a huge one is refused as a mismatch,
    before anything is built (the generated data's width is known from its settings)
    before any weight is allocated, not by a memory estimate."""
    with pytest.raises(ConfigError) as info:
        run_in_process("model.input_dim=100000000000")
    message = str(info.value)
    assert message.startswith(
        "model.input_dim=100000000000 does not match the 2-D data of dataset=polynomial; set model.input_dim=null"
    ), message
    summary = json.loads((tmp_path / "run0" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["phase"] == "setup"


def test_a_model_too_large_for_data_read_from_files_is_refused_once_the_data_is_built(run_in_process, tmp_path):
    """digits' (and mnist's) size is fixed by files, so validate leaves it to the check before the model is built."""
    with pytest.raises(ConfigError) as info:
        run_in_process("dataset=digits", "model.hidden_sizes=[10000000000]")
    message = str(info.value)
    assert message.startswith("model.hidden_sizes=[10000000000] needs about 29.7 TiB for the model's weights"), message
    summary = json.loads((tmp_path / "run0" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["phase"] == "model"


def test_shipped_experiments_fit_a_small_machine(monkeypatch):
    """The estimates refuse only what cannot fit: every study passes on a 4 GiB machine, MNIST's 70,000 x 784
    and the mnist_wide model included (its data size is fixed by files: judged once built)."""
    import aecli.memory
    from aecli.config import config_options
    from aecli.data import DataShape, Mnist
    from aecli.memory import check_model_memory

    monkeypatch.setattr(aecli.memory, "machine_memory", lambda: 4 * 2**30)
    mnist = DataShape(784, (28, 28))
    checked = 0
    for experiment in config_options()["experiment"]:
        cfg = copy.deepcopy(composed((f"experiment={experiment}",)))
        # the studies' analyses are another test's business; the error map (every run's) counts in the estimate
        cfg.analyses = {name: spec for name, spec in cfg.analyses.items() if name == "error_map"}
        plan = validate(cfg)
        if isinstance(plan.data, Mnist):
            check_model_memory(plan.model, mnist, 60000, 10000, plan.cfg)
            checked += 1
    assert checked >= 3  # mnist_bottleneck, mnist_denoising, mnist_wide
    for model in ("mnist_wide", "conv", "vae"):
        plan = validate(copy.deepcopy(composed(("dataset=mnist", f"model={model}"))))
        check_model_memory(plan.model, mnist, 60000, 10000, plan.cfg)


def test_machine_memory_has_a_fallback(monkeypatch):
    from aecli.memory import FALLBACK_MEMORY, machine_memory

    def no_sysconf(name):
        raise ValueError(name)

    monkeypatch.setattr(os, "sysconf", no_sysconf)
    machine_memory.cache_clear()
    try:
        assert 0 < machine_memory() <= FALLBACK_MEMORY
    finally:
        machine_memory.cache_clear()


# ----------------------------------------------------------------------------- a builder that fails
@pytest.mark.parametrize(
    ("group", "target", "error", "message"),
    [
        (
            "dataset=rectangle",
            "aecli.data.synthetic.Rectangle.build",
            MemoryError("Unable to allocate 149. GiB for an array with shape (10000000000, 2) and data type float64"),
            "dataset=rectangle could not be built: MemoryError: Unable to allocate 149. GiB for an array with shape "
            "(10000000000, 2) and data type float64",
        ),
        pytest.param(
            "model=tanh",
            "aecli.models.mlp.MLPAutoencoder",
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried "
                "to allocate 40000000000 bytes.\nException raised from ..."
            ),
            "model=tanh could not be built: RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. "
            "DefaultCPUAllocator: not enough memory: you tried to allocate 40000000000 bytes.",
        ),
    ],
    ids=["dataset-memory-error", "model-allocation-error"],
)
def test_a_builder_error_is_one_sentence_with_its_real_cause(
    group, target, error, message, run_in_process, tmp_path, monkeypatch
):
    """Not Hydra's InstantiationException report (4-5 lines), and summary.json's error says the real cause."""

    def failing_builder(*args, **kwargs):
        raise error

    monkeypatch.setattr(target, failing_builder)
    with pytest.raises(ConfigError) as info:
        run_in_process(group)
    assert str(info.value) == message
    summary = json.loads((tmp_path / "run0" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == f"ConfigError: {message}"
