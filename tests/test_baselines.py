"""Baselines in every run (aecli/analyses/baselines.py): the mean predictor and PCA with the model's code
size, against numbers computed by hand, and the flag on a model that does not beat PCA."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from aecli.analyses import RunContext
from aecli.analyses.baselines import baselines
from aecli.data import Dataset
from aecli.training.state import EpochRecord

ANGLE, SPREAD, NOISE = 0.6, 3.0, 0.1  # points along a line at 0.6 rad, spread 3 along it, 0.1 across


def noisy_line(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    along, across = np.array([np.cos(ANGLE), np.sin(ANGLE)]), np.array([-np.sin(ANGLE), np.cos(ANGLE)])
    return rng.normal(0, SPREAD, (n, 1)) * along + rng.normal(0, NOISE, (n, 1)) * across + [1.0, -2.0]


def context(
    train: np.ndarray,
    val: np.ndarray,
    latent_dim: int,
    val_terms: dict[str, float],
    loss: str = "mse",
    limit_val_batches: Optional[int] = None,
    batch_size: int = 32,
) -> RunContext:
    """A RunContext with only what the baselines read: data, the model's code size, the last metrics row."""
    cfg = OmegaConf.create(
        {
            "trainer": {
                "loss": loss,
                "limit_val_batches": limit_val_batches,
                "limit_train_batches": None,
                "batch_size": batch_size,
                "drop_last": False,
                "fast_dev_run": False,
            }
        }
    )
    rows = [torch.tensor(part, dtype=torch.float32) for part in (train, val)]
    data = Dataset("line", rows[0], rows[1], np.zeros(len(train)), np.zeros(len(val)), "t")
    val_loss = sum(v for k, v in val_terms.items() if k != "val_weight_l2")
    last = EpochRecord(10, 0.0, val_loss, 1e-3, 1.0, {"train_reconstruction": 0.0, **val_terms})
    model: Any = SimpleNamespace(latent_dim=latent_dim)
    cpu, run_dir = torch.device("cpu"), Path("unused")
    return RunContext(cfg, model, model, None, data, [last], cpu, torch.float32, run_dir, "line / net", 100)


def by_hand(train: np.ndarray, val: np.ndarray, k: int) -> tuple[float, float]:
    """(mean predictor, PCA-k) squared error summed per point, averaged over points, by numpy's SVD."""
    x, v = train.astype(np.float32).astype(np.float64), val.astype(np.float32).astype(np.float64)
    mean = x.mean(0)
    top = np.linalg.svd(x - mean, full_matrices=False)[2][:k].T
    centred = v - mean
    residual = centred - centred @ top @ top.T
    return float((centred**2).sum(1).mean()), float((residual**2).sum(1).mean())


@pytest.mark.parametrize("loss", ["mse", "sse"])
def test_baselines_equal_a_hand_computed_pca_on_a_noisy_line(loss):
    train, val = noisy_line(4000, 0), noisy_line(4000, 1)
    got = baselines(context(train, val, 1, {"val_reconstruction": 0.001}, loss))
    mean_sse, pca_sse = by_hand(train, val, 1)
    per = 2 if loss == "mse" else 1  # mse: the mean over both coordinates; sse: their sum
    assert got["baseline_mean_loss"] == pytest.approx(mean_sse / per, rel=1e-9)
    assert got["baseline_pca_loss"] == pytest.approx(pca_sse / per, rel=1e-9)
    # and what they should be: all the variance, and the variance across the line alone
    assert got["baseline_mean_loss"] * per == pytest.approx(SPREAD**2 + NOISE**2, rel=0.1)
    assert got["baseline_pca_loss"] * per == pytest.approx(NOISE**2, rel=0.1)
    assert got["beats_pca"] == 1.0 and got["baseline_pca_exact"] == 0.0 and got["baseline_pca_code_size"] == 1.0


def test_a_model_worse_than_pca_is_flagged_in_metrics_and_the_console_line(caplog):
    train, val = noisy_line(2000, 0), noisy_line(500, 1)
    pca = by_hand(train, val, 1)[1] / 2
    with caplog.at_level(logging.INFO, logger="aecli"):
        got = baselines(context(train, val, 1, {"val_reconstruction": 2 * pca}))
    assert got["beats_pca"] == 0.0
    line = caplog.records[-1].getMessage()
    assert line.startswith(f"line / net: val loss {2 * pca:.4g} vs mean predictor ")
    assert f"PCA-1 {pca:.4g}: does NOT beat PCA (2x its loss)" in line


def test_pca_with_a_code_as_wide_as_the_data_is_exact_not_a_failure(caplog):
    train, val = noisy_line(300, 0), noisy_line(100, 1)
    with caplog.at_level(logging.INFO, logger="aecli"):
        got = baselines(context(train, val, 3, {"val_reconstruction": 0.01}))
    assert got["baseline_pca_loss"] == 0.0 and got["baseline_pca_exact"] == 1.0 and "beats_pca" not in got
    assert "PCA-3 0: PCA is exact" in caplog.records[-1].getMessage()


def test_a_vae_compares_its_reconstruction_term_and_the_cut_validation_points_are_scored(caplog):
    train, val = noisy_line(500, 0), noisy_line(200, 1)
    terms = {"val_reconstruction": 0.001, "val_kl": 5.0, "val_weight_l2": 1.0}  # val_loss 5.001: worse than PCA
    with caplog.at_level(logging.INFO, logger="aecli"):
        got = baselines(context(train, val, 1, terms, limit_val_batches=2, batch_size=16))
    assert got["beats_pca"] == 1.0 and "val reconstruction 0.001 vs" in caplog.records[-1].getMessage()
    assert got["baseline_pca_loss"] == pytest.approx(by_hand(train, val[:32], 1)[1] / 2, rel=1e-9)  # 2 batches of 16


def test_every_run_reports_baselines_without_figures_and_a_linear_code_cannot_beat_pca(run_in_process):
    from aecli.config import compose
    from aecli.validation import validate

    overrides = ["model=pca", "trainer.epochs=3", "trainer.num_threads=1"]
    summary, run_dir = run_in_process(*overrides)  # plots.enabled=false
    metrics = summary["metrics"]
    data = validate(compose(overrides)).data.build()
    mean_sse, pca_sse = by_hand(data.train.numpy(), data.val.numpy(), 1)
    assert metrics["baseline_mean_loss"] == pytest.approx(mean_sse / 2, rel=1e-9)
    assert metrics["baseline_pca_loss"] == pytest.approx(pca_sse / 2, rel=1e-9)
    assert summary["final_val_loss"] > metrics["baseline_pca_loss"] and metrics["beats_pca"] == 0.0
    assert not list(run_dir.glob("*.png"))


def test_the_mnist_bottleneck_smoke_run_is_flagged_against_pca(run_in_process):
    summary, _ = run_in_process("experiment=mnist_bottleneck", "dataset=digits", "trainer.fast_dev_run=true")
    metrics = summary["metrics"]
    assert metrics["baseline_pca_code_size"] == 2.0 and metrics["beats_pca"] == 0.0
    assert metrics["baseline_pca_loss"] < metrics["baseline_mean_loss"] < summary["final_val_loss"]


def test_data_too_wide_for_a_covariance_gets_the_same_pca_by_randomized_svd(monkeypatch):
    from aecli.analyses import baselines as module

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(60, 3)))[0]  # three directions in 60-D, then a little noise
    train, val = (rng.normal(0, [5, 3, 2], (n, 3)) @ basis.T + rng.normal(0, 0.01, (n, 60)) for n in (800, 200))
    exact = baselines(context(train, val, 3, {"val_reconstruction": 1.0}))
    monkeypatch.setattr(module, "COVARIANCE_BYTES", 60 * 60 * 8 - 1)  # 60-D is now "too wide"
    calls, real = [], torch.svd_lowrank
    monkeypatch.setattr(torch, "svd_lowrank", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    randomized = baselines(context(train, val, 3, {"val_reconstruction": 1.0}))
    assert calls and calls[0]["q"] == 13
    assert randomized["baseline_pca_loss"] == pytest.approx(exact["baseline_pca_loss"], rel=1e-6)
    assert exact["baseline_pca_loss"] == pytest.approx(0.01**2, rel=0.1)  # the noise alone is left
