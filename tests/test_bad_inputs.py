"""Bad inputs end in one clear message and a non-zero exit, never in a traceback or a "completed" run.

Three layers:
- a table of bad command lines, each run through the real `aecli` entry point (`aecli.cli.main`)
  in this process (fast: torch is imported once), with stderr captured;
- a few of them again as real `python -m aecli` subprocesses, run concurrently, proving the exit
  status and stderr a user sees;
- a hypothesis property: random overrides of known and made-up keys end in a handled outcome
  (a Hydra composition error, a ConfigError, or a valid config), never an unhandled exception.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from aecli.config import ConfigError, check_overrides, compose, validate

# The one-line message of aecli, Hydra's own short report of a composition error (a few lines,
# no traceback), and Hydra's report of an unknown group option (it lists every option).
AECLI, HYDRA, OPTIONS = "aecli", "hydra", "options"
MAX_LINES = {AECLI: 1, HYDRA: 8, OPTIONS: 30}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # command-line arguments; {name} is replaced by the path of asset `name`
    expect: str  # a substring stderr must contain: the key, the value or the problem
    kind: str = AECLI


def case(id: str, *args: str, expect: str, kind: str = AECLI):
    return pytest.param(Case(args, expect, kind), id=id)


# Each row runs `aecli ARGS` through the real entry point (aecli.cli.main) in this process.
CASES = [
    # --- ranges and choices (aecli.config.validate): one sentence naming key, value and what is allowed;
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
    case("source-bad-value", "model.decoder_from=train", "+source.optimizer.lr=0", expect="source.optimizer.lr=0.0"),
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
    # --- wrong types, unknown keys, bad grammar: Hydra's own short report
    case("type-int-from-text", "trainer.epochs=abc", expect="trainer.epochs", kind=HYDRA),
    case("type-bool-from-text", "trainer.shuffle=maybe", expect="trainer.shuffle", kind=HYDRA),
    case("unknown-key", "trainer.epoch=3", expect="epoch", kind=HYDRA),
    case("grammar-open-bracket", "trainer.epochs=[1", expect="'[1'", kind=HYDRA),
    case("sweep-without-multirun", "trainer.epochs=1,2", expect="trainer.epochs=1,2", kind=HYDRA),
    # --- unknown group options: Hydra's message lists the options
    case("unknown-model", "model=relu_bias", expect="relu_nobias", kind=OPTIONS),
    case("unknown-dataset", "dataset=circle", expect="spiral", kind=OPTIONS),
    # --- cross-field checks, found while building the run
    case("input-dim-mismatch", "model.input_dim=3", expect="model.input_dim=3"),
    case(
        "drop-last-batch-too-big", "trainer.drop_last=true", "trainer.batch_size=5000", expect="trainer.batch_size=5000"
    ),
    pytest.param(
        Case(("trainer.device=cuda",), "trainer.device=cuda"),
        id="device-cuda-missing",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
    ),
    case("decoder-from-missing", "model.decoder_from={outside}/no_such_run", expect="model.decoder_from="),
    case("decoder-from-incompatible", "model.decoder_from={big_run}", expect="do not match"),
    case("decoder-from-garbage", "model.decoder_from={garbage_pt}", expect="not a readable aecli checkpoint"),
    case("decoder-from-truncated", "model.decoder_from={truncated_pt}", expect="not a readable aecli checkpoint"),
    case(
        "source-run-diverges",
        "dataset=rectangle",
        "model.decoder_from=train",
        "+source.optimizer.lr=1e30",
        "+source.trainer.epochs=2",
        expect="model.decoder_from=train",
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
    case("freeze-without-source", "model.freeze_decoder=true", expect="model.freeze_decoder"),
    case("decoder-from-empty", "model.decoder_from=''", expect="model.decoder_from=''"),
    case("mask-rate-one", "regularizer.mask_rate=1", expect="regularizer.mask_rate=1.0"),
    case("weight-l2-negative", "regularizer.weight_l2=-1", expect="regularizer.weight_l2=-1.0"),
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
    case("interpolation-wrong-type", "trainer.batch_size=${oc.env:HOME}", expect="trainer.batch_size"),
    case("analysis-not-a-mapping", "+analyses.x=1", expect="analyses.x=1"),
    case(
        "analysis-file-absolute",
        "+analyses.x._target_=aecli.analyses.activations.activation_histograms",
        "+analyses.x.file=/tmp/escaped.png",
        expect="analyses.x.file='/tmp/escaped.png'",
    ),
    case("source-unknown-key", "model.decoder_from=train", "+source.trainer.epochz=1", expect="source.trainer.epochz"),
    case("group-number", "model=3", expect="model=3 is not allowed"),
    case("analysis-unknown-target", "+analyses.x._target_=aecli.analyses.nope", expect="analyses.x._target_="),
    case(
        "list-from-interpolation",
        "model.hidden_sizes=${model.activation}",
        expect="model.hidden_sizes='${model.activation}'",
    ),
    case("group-from-interpolation", "plots=${trainer}", expect="plots='${trainer}'"),
    case(
        "keys-under-interpolation", "plots=${dataset.seed}", "++plots.dpi=100", expect="++plots.dpi=100 is not allowed"
    ),
    case("part-deleted", "~plots", expect="plots='<deleted>'"),
]

# Run again as real subprocesses: the exit status and stderr exactly as a user sees them.
SUBPROCESS_CASES = ["lr-zero", "type-int-from-text"]


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
    assert run(cfg, big_run)["status"] == "completed"
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
    if c.kind == AECLI:
        assert lines[0].startswith("aecli: error: "), stderr
    if c.kind == OPTIONS:
        assert "Available options in" in stderr, stderr
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
@pytest.fixture(scope="module")
def subprocess_results(assets, tmp_path_factory) -> dict[str, tuple[Case, subprocess.CompletedProcess, Path]]:
    """`python -m aecli ...` for SUBPROCESS_CASES (and one with HYDRA_FULL_ERROR=1), run concurrently."""
    by_id = {p.id: p.values[0] for p in CASES}
    jobs = {name: (by_id[name], {}) for name in SUBPROCESS_CASES}
    jobs["full-error"] = (by_id["type-int-from-text"], {"HYDRA_FULL_ERROR": "1"})
    root = tmp_path_factory.mktemp("bad_input_subprocesses")

    def launch(name: str) -> tuple[Case, subprocess.CompletedProcess, Path]:
        c, extra_env = jobs[name]
        run_dir = root / name / "run"
        run_dir.parent.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        env.update(PYTHONUNBUFFERED="1", SCIKIT_LEARN_DATA=assets["sklearn_data"], **extra_env)
        proc = subprocess.run(
            [sys.executable, "-m", "aecli", *command_line(c, assets, run_dir)],
            cwd=run_dir.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return c, proc, run_dir

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(jobs, pool.map(launch, jobs)))


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_as_a_real_command(name, subprocess_results):
    c, proc, run_dir = subprocess_results[name]
    check_report(c, proc.returncode, proc.stderr, run_dir)
    assert proc.returncode == (2 if c.kind == AECLI else 1), proc.stderr


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
    from aecli.report import main

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
    ["experiment=rectangle_frozen_decoder"],
    ["experiment=swiss_roll"],
]
GROUPS = {
    "dataset",
    "model",
    "optimizer",
    "regularizer",
    "trainer",
    "experiment",
    "hparams_search",
    "logger",
    "hydra",
    "schema",
    "variant",
    "",
}


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
        summary = run(cfg, tmp_path / "run")
    assert summary["status"] == "completed"
    assert "error_map.png skipped: the error map needs 2-D data, swiss_roll is 3-D" in caplog.text
    assert (tmp_path / "run" / "loss_curve.png").is_file() and not (tmp_path / "run" / "error_map.png").exists()
