"""The `aecli` command end to end, as a user runs it (subprocesses in temporary folders)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import pytest
import torch
from conftest import REPO, read_summary, run_cli
from omegaconf import OmegaConf

FIGURES = ["loss_curve.png", "latent.png", "reconstruction.png", "error_map.png"]


def only_run_dir(root: Path) -> Path:
    """The single run folder under root/outputs/<date>/."""
    runs = [p for p in (root / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_end_to_end_run_writes_a_complete_folder(tmp_path):
    run_cli("dataset=spiral", "model=tanh_nobias", "trainer.epochs=3", cwd=tmp_path)
    run_dir = only_run_dir(tmp_path)
    # Hydra's timestamped folder under outputs/ in the working directory
    assert run_dir.parent.name == time.strftime("%Y-%m-%d")
    for name in [
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/last.pt",
        "metrics.csv",
        "summary.json",
        *FIGURES,
    ]:
        assert (run_dir / name).is_file(), name
    for name in FIGURES:
        image = matplotlib.image.imread(run_dir / name)
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0.01, name

    summary = read_summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["epochs"] == 3 and summary["steps"] == 3 * 54  # ceil(1700 / 32) = 54 steps an epoch
    assert summary["device"] == "cpu" and summary["steps_per_second"] > 0
    assert 0 <= summary["metrics"]["error_map_share_below_threshold"] <= 1  # the error map's number

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    # the five columns, then every loss term, train and validation (this model has one: reconstruction)
    assert list(rows[0]) == [
        "epoch",
        "train_loss",
        "val_loss",
        "lr",
        "seconds",
        "train_reconstruction",
        "val_reconstruction",
    ]
    assert float(rows[-1]["val_loss"]) == pytest.approx(summary["final_val_loss"], rel=1e-12)

    # The checkpoint loads without unpickling code, and its weights give the logged val loss.
    from aecli.data import LogSpiral
    from aecli.models import MLPAutoencoder
    from aecli.training.loop import evaluate

    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and len(ckpt["metrics"]) == 4 and "optimizer" in ckpt
    cfg = OmegaConf.create(ckpt["config_yaml"])
    assert cfg.model.name == "tanh_nobias" and cfg.model.bias is False
    data = LogSpiral(**{k: v for k, v in cfg.dataset.items() if k != "_target_"}).build()
    model_kwargs = {k: v for k, v in cfg.model.items() if k not in ("_target_", "input_dim", "name")}
    model = MLPAutoencoder(input_dim=2, **model_kwargs)
    model.load_state_dict(ckpt["model"])
    assert evaluate(model, data.val)["reconstruction"] == pytest.approx(summary["final_val_loss"], rel=1e-6)


def test_epochs_zero_writes_the_untrained_models_artifacts(tmp_path):
    run_cli("trainer.epochs=0", cwd=tmp_path)
    run_dir = only_run_dir(tmp_path)
    summary = read_summary(run_dir)
    assert summary["status"] == "completed" and summary["epochs"] == 0 and summary["steps"] == 0
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["val_loss"]) == pytest.approx(summary["final_val_loss"])
    for name in FIGURES + ["checkpoints/last.pt"]:
        assert (run_dir / name).is_file(), name


def test_cfg_job_composes_without_importing_torch(tmp_path):
    code = (
        "import sys; sys.argv = ['aecli', 'dataset=spiral', 'model=relu_nobias', '--cfg', 'job'];"
        "from aecli.cli import main; main();"
        "heavy = [m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.dataset.name == "spiral" and cfg.dataset.grid_extent == [-4, 4, -4, 4]
    assert cfg.model.bias is False and cfg.model.latent_activation == "relu" and cfg.trainer.epochs == 60
    assert not (tmp_path / "outputs").exists()  # composing writes nothing


def test_help_and_info_show_groups_and_the_packaged_search_path(tmp_path):
    help_text = run_cli("--help", cwd=tmp_path).stdout
    for group in ["dataset", "model", "optimizer", "regularizer", "experiment"]:
        options = sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))
        assert f"\n{group}: {', '.join(options)}\n" in help_text, group
    assert "Traceback" not in help_text and "\ntrainer:\n  epochs: 60\n" in help_text
    info = run_cli("--info", "searchpath", cwd=tmp_path).stdout
    assert "pkg://aecli.conf" in info


def test_help_shows_the_config_its_overrides_compose_and_reports_bad_ones(tmp_path):
    assert (
        "\nmodel:\n  _target_: aecli.models.mlp.MLPSpec\n  name: relu\n"
        in run_cli("model=relu", "--help", cwd=tmp_path).stdout
    )
    bad = run_cli("model=nope", "--help", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "model=nope is not an option of model" in bad.stderr
    assert "Traceback" not in bad.stderr
    import aecli

    assert run_cli("--version", cwd=tmp_path).stdout.strip() == f"aecli {aecli.__version__}"


def test_run_from_another_directory_goes_to_that_directorys_outputs(tmp_path):
    elsewhere = tmp_path / "some" / "other" / "dir"
    elsewhere.mkdir(parents=True)
    script = Path(sys.executable).with_name("aecli")  # the installed console script, not python -m
    proc = subprocess.run(
        [str(script), "trainer.epochs=1", "plots.enabled=false"], cwd=elsewhere, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert read_summary(only_run_dir(elsewhere))["status"] == "completed"
    assert not (REPO / "some").exists()


def test_runs_started_together_never_share_a_folder(tmp_path):
    cmd = [sys.executable, "-m", "aecli", "trainer.epochs=0", "plots.enabled=false"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    runs = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 3
    assert all(read_summary(r)["status"] == "completed" for r in runs)


def test_hydra_run_dir_and_multirun_sweep_dir(tmp_path):
    run_cli("trainer.epochs=1", "plots.enabled=false", f"hydra.run.dir={tmp_path / 'mine'}", cwd=tmp_path)
    assert read_summary(tmp_path / "mine")["status"] == "completed"

    run_cli("-m", "model=linear,relu", "trainer.epochs=1", "plots.enabled=false", cwd=tmp_path)
    sweeps = list((tmp_path / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1, sweeps  # sweeps live under outputs/ too
    run_cli(
        "-m",
        "dataset=polynomial,spiral",
        "trainer.epochs=1",
        "plots.enabled=false",
        f"hydra.sweep.dir={tmp_path / 'my_sweep'}",
        cwd=tmp_path,
    )
    for sweep, key, values in [
        (sweeps[0], "model", ["linear", "relu"]),
        (tmp_path / "my_sweep", "dataset", ["polynomial", "spiral"]),
    ]:
        jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
        assert [read_summary(j)[key] for j in jobs] == values
        assert all(read_summary(j)["status"] == "completed" for j in jobs)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("trainer.epochs=-1", "trainer.epochs=-1"),
        ("optimizer.lr=0", "optimizer.lr=0"),
        ("trainer.device=gpu", "trainer.device='gpu'"),
        ("model.latent_activation=swish", "model.latent_activation='swish'"),
    ],
)
def test_bad_values_give_one_sentence_and_no_completed_run(tmp_path, override, fragment):
    proc = run_cli(override, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and fragment in proc.stderr, proc.stderr
    summaries = list((tmp_path / "outputs").glob("*/*/summary.json"))
    assert all(json.loads(s.read_text())["status"] != "completed" for s in summaries)


def test_typos_and_bad_types_are_caught_while_composing(tmp_path):
    for override, fragment in [
        ("trainer.epoch=3", "epoch"),
        ("trainer.epochs=abc", "epochs"),
        ("model=relu_bias", "relu_nobias"),
    ]:
        proc = run_cli(override, cwd=tmp_path, check=False)
        assert proc.returncode != 0 and fragment in proc.stderr, (override, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_non_editable_install_finds_its_packaged_configs(tmp_path):
    """pip-install a real wheel build into a folder and run it from elsewhere: conf/ ships inside."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert (target / "aecli" / "conf" / "model" / "tanh_nobias.yaml").is_file()
    env = {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import aecli; print(aecli.__file__)"],
        cwd=tmp_path,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(target)), where
    info = run_cli("--info", "searchpath", cwd=tmp_path, env=env).stdout
    assert "pkg://aecli.conf" in info
    run_cli("dataset=spiral", "trainer.epochs=1", "plots.enabled=false", cwd=tmp_path, env=env)
    assert read_summary(only_run_dir(tmp_path))["status"] == "completed"


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stop_after_the_step_with_everything_written(tmp_path, signum):
    import signal

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aecli",
            "trainer.epochs=100000",
            "plots.enabled=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.1)
    proc.send_signal(getattr(signal, signum))
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in proc.stderr.read().splitlines()[-1]
    summary = read_summary(tmp_path / "run")
    rows = list(csv.DictReader(open(metrics)))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert summary["status"] == "interrupted" and summary["epochs"] >= 2
    assert int(rows[-1]["epoch"]) == summary["epochs"] == ckpt["epoch"]  # nothing lost, nothing half-written
    state = ckpt["train_state"]  # where, inside the next epoch, a resume picks up
    assert state["epoch"] == summary["epochs"] and state["steps"] == summary["steps"] == (
        state["epoch"] * state["n_batches"] + state["batch"]
    )
