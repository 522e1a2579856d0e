"""Study experiments: each composes, runs end to end with tiny epochs, and its sweep is compared."""

from __future__ import annotations

import csv
import json

import matplotlib.image
import numpy as np
from conftest import run_cli
from omegaconf import OmegaConf

from aecli.reporting.comparison import write_comparison_figure, write_curve_overlay
from aecli.reporting.jobs import read_jobs, swept_keys
from aecli.reporting.report import write_tables


def test_nonlinear_2d_sweeps_the_studys_grid_and_compares_it(tmp_path):
    run_cli(
        "-m",
        "experiment=nonlinear_2d",
        "trainer.epochs=1",
        "plots.error_map_resolution=40",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    sweep = tmp_path / "sweep"
    rows = sorted(csv.DictReader(open(sweep / "summary.csv")), key=lambda r: int(r["job"]))
    assert [(r["dataset"], r["model"]) for r in rows] == [
        (d, m) for d in ("polynomial", "spiral") for m in ("linear", "relu", "relu_nobias", "tanh", "tanh_nobias")
    ]
    assert all(r["status"] == "completed" and float(r["final_val_loss"]) > 0 for r in rows)
    job_cfg = OmegaConf.load(sweep / "7" / ".hydra" / "config.yaml")
    assert (job_cfg.seed, job_cfg.trainer.batch_size, job_cfg.optimizer.lr) == (1337, 32, 1e-3)
    assert job_cfg.dataset.grid_extent == [-4, 4, -4, 4] and job_cfg.model.bias is False
    for name in ("error_map", "reconstruction", "loss_curves"):
        image = matplotlib.image.imread(sweep / f"comparison_{name}.png")
        assert image.shape[1] > 2 * image.shape[0]  # a 2 x 5 grid, two panels of curves: wide
        assert 1100 <= image.shape[1] <= 1300  # readable at page width


def test_nonlinear_2d_composes_with_study_settings(tmp_path):
    cfg = OmegaConf.create(run_cli("experiment=nonlinear_2d", "--cfg", "all", cwd=tmp_path).stdout)
    assert dict(cfg.hydra.sweeper.params) == {
        "dataset": "polynomial,spiral",
        "model": "linear,relu,relu_nobias,tanh,tanh_nobias",
    }
    assert cfg.trainer.epochs == 60 and cfg.optimizer.name == "adam"


def fake_job(root, num, overrides, status, with_figure):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    (job / "summary.json").write_text(json.dumps({"status": status, "final_val_loss": 0.1}))
    if with_figure:
        matplotlib.image.imsave(job / "fig.png", np.full((20, 40, 3), num / 4.0))
    return job


def test_comparison_grid_takes_rows_and_columns_from_swept_keys_and_marks_failures(tmp_path):
    for num, (a, b) in enumerate([("x", "1"), ("x", "2"), ("y", "1"), ("y", "2")]):
        fake_job(tmp_path, num, [f"a={a}", f"b={b}", "fixed=0"], "failed" if num == 3 else "completed", num != 3)
    jobs = read_jobs(tmp_path)
    assert swept_keys(jobs) == ["a", "b"]  # `fixed` has one value: not a grid axis
    assert write_comparison_figure(jobs, ["a", "b"], "fig.png", tmp_path / "grid.png")
    assert not write_comparison_figure(jobs, ["a", "b"], "absent.png", tmp_path / "none.png")
    grid = matplotlib.image.imread(tmp_path / "grid.png")
    assert 0.5 < grid.shape[1] / grid.shape[0] < 2.5  # 2 rows x 2 columns


def test_summary_table_has_analysis_metrics_and_curves_overlay_every_job(tmp_path):
    for num, lr in enumerate(["0.1", "0.01"]):
        job = fake_job(tmp_path, num, [f"optimizer.lr={lr}"], "completed", False)
        summary = json.loads((job / "summary.json").read_text())
        summary["metrics"] = {"rmse": 0.5 + num} if num == 0 else {"rmse": 1.5, "residual": 0.25}
        (job / "summary.json").write_text(json.dumps(summary))
        (job / "metrics.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n0,1.0,1.1,0.1,0\n1,0.5,0.6,0.1,1\n")
        if num == 1:
            (job / "steps.csv").write_text("step,epoch,loss\n1,1,0.9\n2,1,0.7\n3,1,0.4\n")
    jobs = read_jobs(tmp_path)
    assert write_tables(jobs, swept_keys(jobs), tmp_path, "rmse", descending=True) == "1"
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))  # sorted by rmse, highest first
    assert [(r["optimizer.lr"], r["rmse"], r["residual"], r["best"]) for r in rows] == [
        ("0.01", "1.5", "0.25", "yes"),
        ("0.1", "0.5", "", ""),
    ]
    assert write_curve_overlay(jobs, ["optimizer.lr"], tmp_path / "epochs.png", steps=False)
    assert write_curve_overlay(jobs, ["optimizer.lr"], tmp_path / "steps.png", steps=True)  # one job has steps
    assert not write_curve_overlay(read_jobs(tmp_path / "0"), [], tmp_path / "none.png", steps=True)
    assert matplotlib.image.imread(tmp_path / "epochs.png").std() > 0.01
