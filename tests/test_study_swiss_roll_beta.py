"""Studies swiss_roll and beta_curves: configs carry the study's settings, both run end to end,
and their analyses give known answers on models whose output we can work out by hand."""

from __future__ import annotations

import csv
import math

import matplotlib.image
import numpy as np
import pytest
import torch
from conftest import read_summary, run_cli
from omegaconf import OmegaConf

from aecli.analyses import RunContext
from aecli.analyses.beta import invert_decoder, latent_inversion
from aecli.analyses.swiss_roll import new_roll, reconstruct, rmse
from aecli.config import ConfigError
from aecli.data import BetaCurves, DataShape, SwissRoll, beta_curve_grid
from aecli.models import MLPAutoencoder

SWISS_ROLL_FIGURES = [
    "decoded_training_roll.png",
    "encoded_new_roll.png",
    "decoded_new_roll.png",
]
BETA_FIGURES = ["latent_histograms.png", "latent_inversion.png"]


def assert_image(path) -> None:
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.01, path


# ------------------------------------------------------------------ configs
def test_swiss_roll_composes_with_the_studys_settings(tmp_path):
    cfg = OmegaConf.create(run_cli("experiment=swiss_roll", "--cfg", "job", cwd=tmp_path).stdout)
    assert (cfg.dataset.name, cfg.dataset.n, cfg.dataset.noise, cfg.dataset.train_fraction) == (
        "swiss_roll",
        1500,
        0.05,
        1.0,
    )
    m = cfg.model
    assert (list(m.hidden_sizes), m.latent_dim, m.activation, m.dropout, m.latent_batchnorm) == (
        [128, 64],
        2,
        "relu",
        0.2,
        True,
    )
    t = cfg.trainer
    assert (t.epochs, t.batch_size, t.loss, t.dtype) == (5000, 1500, "mse", "float64")
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.lr_decay) == ("adam", 1e-3, None)
    assert (cfg.analyses.new_roll.n, cfg.analyses.new_roll.noise) == (2500, 0.1)


def test_beta_curves_composes_with_the_studys_settings(tmp_path):
    cfg = OmegaConf.create(run_cli("experiment=beta_curves", "--cfg", "job", cwd=tmp_path).stdout)
    d = cfg.dataset
    assert (d.name, d.n, d.points, d.grid_min, d.grid_max, d.param_max) == ("beta", 10000, 100, 0.01, 0.99, 5.0)
    assert (list(cfg.model.hidden_sizes), cfg.model.latent_dim, cfg.model.latent_activation) == ([128], 2, "identity")
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.lr_decay) == ("adam", 1e-4, 0.99)
    t = cfg.trainer
    assert (t.epochs, t.batch_size, t.loss, t.shuffle) == (20, 1, "sse", False)
    inv = cfg.analyses.latent_inversion
    assert (inv.alpha, inv.beta, inv.start) == (2.0, 4.0, None)


def test_study_models_have_the_studys_layers():
    from hydra.utils import instantiate

    from aecli.config import compose

    roll = instantiate(compose(["model=swiss_roll_mlp"]).model).build(DataShape(3))
    kinds = lambda seq: [type(m).__name__ for m in seq if type(m).__name__ != "Identity"]  # noqa: E731
    assert kinds(roll.encoder) == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert kinds(roll.decoder) == ["BatchNorm1d"] + ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    shapes = [(m.in_features, m.out_features) for m in roll.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes == [(3, 128), (128, 64), (64, 2), (2, 64), (64, 128), (128, 3)]
    beta = instantiate(compose(["model=beta_mlp"]).model).build(DataShape(100))
    shapes = [(m.in_features, m.out_features) for m in beta.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes == [(100, 128), (128, 2), (2, 128), (128, 100)]
    assert sum(p.numel() for p in beta.parameters()) == 100 * 128 + 128 + 128 * 2 + 2 + 2 * 128 + 128 + 128 * 100 + 100


# ------------------------------------------------------------------ end to end
def test_swiss_roll_runs_end_to_end(run_in_process):
    summary, run_dir = run_in_process(
        "experiment=swiss_roll",
        "trainer.epochs=3",
        "dataset.n=200",
        "analyses.new_roll.n=300",
        "plots.enabled=true",
        "plots.dpi=60",
    )
    assert summary["status"] == "completed" and summary["steps"] == 3  # full batch: one step an epoch
    assert summary["dtype"] == "float64"
    metrics = summary["metrics"]
    keys = ["train_rmse", "train_rmse_train_mode", "new_roll_rmse", "new_roll_rmse_train_mode"]
    assert set(keys) <= set(metrics) and set(metrics) - set(keys) <= {
        "baseline_mean_loss",
        "baseline_pca_loss",
        "baseline_pca_code_size",
        "baseline_pca_exact",
        "beats_pca",
    }
    assert all(math.isfinite(metrics[k]) and 0 < metrics[k] < 2 for k in keys)
    # the eval-mode RMSE on the training roll is the logged val loss (the same points), rooted
    assert metrics["train_rmse"] == pytest.approx(math.sqrt(summary["final_val_loss"]), rel=1e-9)
    for name in SWISS_ROLL_FIGURES:
        assert_image(run_dir / name)


def test_beta_curves_runs_end_to_end_and_sweeps_batch_size(tmp_path):
    # a low dpi: every figure, drawn small
    run_cli(
        "-m",
        "experiment=beta_curves",
        "dataset.n=200",
        "trainer.epochs=1",
        "trainer.batch_size=16,64",
        "plots.dpi=60",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    sweep = tmp_path / "sweep"
    rows = sorted(csv.DictReader(open(sweep / "summary.csv")), key=lambda r: int(r["job"]))
    assert [r["trainer.batch_size"] for r in rows] == ["16", "64"]
    assert all(r["status"] == "completed" and float(r["inversion_residual"]) > 0 for r in rows)
    for job, batch in (("0", 16), ("1", 64)):
        summary = read_summary(sweep / job)
        assert summary["steps"] == math.ceil(200 / batch)
        metrics = summary["metrics"]
        for key in ("inversion_residual", "inversion_c1", "inversion_c2", "inversion_nfev", "c1_mean", "c2_std"):
            assert math.isfinite(metrics[key]), key
        assert metrics["inversion_residual"] > 0 and metrics["inversion_nfev"] >= 3
        for name in BETA_FIGURES:
            assert_image(sweep / job / name)
        steps = list(csv.DictReader(open(sweep / job / "steps.csv")))
        assert len(steps) == summary["steps"]
    for name in ("comparison_latent_inversion.png", "comparison_step_losses.png"):
        assert_image(sweep / name)


# ------------------------------------------------------------------ known answers
def test_beta_rows_are_scipys_logpdf_of_their_labels():
    from scipy.stats import beta as beta_dist

    data = BetaCurves(n=50, points=100, seed=4).build()
    grid = beta_curve_grid(100, 0.01, 0.99)
    assert grid[0] == pytest.approx(0.01) and grid[-1] == pytest.approx(0.99)
    assert data.train.shape == (50, 100) and data.train_labels.shape == (50, 2)
    assert np.all((data.train_labels > 0) & (data.train_labels < 5))
    for row in (0, 17, 49):
        alpha, beta = data.train_labels[row]
        np.testing.assert_allclose(data.train[row].numpy(), beta_dist.logpdf(grid, alpha, beta), rtol=1e-5)


def test_latent_inversion_recovers_a_code_the_decoder_produced():
    torch.manual_seed(3)
    model = MLPAutoencoder(100, [128], 2).double()
    z = np.array([0.4, -0.7])
    with torch.no_grad():
        target = model.decoder(torch.tensor(z[None, :]))[0].numpy()
    fit = invert_decoder(model.decoder, target, [0.0, 0.0], torch.device("cpu"), torch.float64)
    assert fit["residual"] < 1e-3
    np.testing.assert_allclose(fit["code"], z, atol=1e-3)
    np.testing.assert_allclose(fit["decoded"], target, atol=1e-3)
    # a curve no code reaches leaves a residual: the distance to the decoder's output set
    far = invert_decoder(model.decoder, target + 1.0, [0.0, 0.0], torch.device("cpu"), torch.float64)
    assert far["residual"] > 1.0


def constant_model(output: float, dim: int = 3) -> MLPAutoencoder:
    """Every weight zero: the output is the last bias, whatever the input."""
    model = MLPAutoencoder(dim, [], 2, init="zeros").double()
    with torch.no_grad():
        model.decoder[-1].bias.fill_(output)
    return model


def test_rmse_equals_a_hand_computation():
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    _, x_hat = reconstruct(constant_model(0.5), x)
    assert rmse(x.numpy(), x_hat) == pytest.approx(0.5, abs=1e-12)  # every error is 0.5
    x = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 4.0]], dtype=torch.float64)
    _, x_hat = reconstruct(constant_model(0.0), x)
    assert rmse(x.numpy(), x_hat) == pytest.approx(math.sqrt((9 + 16) / 6), abs=1e-12)


def test_train_mode_differs_from_eval_mode_only_with_dropout_or_batchnorm():
    x = torch.rand(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.manual_seed(0)
    plain = MLPAutoencoder(3, [16], 2).double()
    _, eval_out = reconstruct(plain, x)
    _, train_out = reconstruct(plain, x, train_mode=True, seed=1)
    np.testing.assert_array_equal(eval_out, train_out)

    torch.manual_seed(0)
    noisy = MLPAutoencoder(3, [16], 2, dropout=0.2, latent_batchnorm=True).double().eval()
    before = {k: v.clone() for k, v in noisy.state_dict().items()}
    global_state = torch.get_rng_state()
    _, eval_out = reconstruct(noisy, x)
    _, train_a = reconstruct(noisy, x, train_mode=True, seed=1)
    _, train_b = reconstruct(noisy, x, train_mode=True, seed=1)
    _, train_c = reconstruct(noisy, x, train_mode=True, seed=2)
    assert rmse(x.numpy(), eval_out) != pytest.approx(rmse(x.numpy(), train_a), rel=1e-3)
    np.testing.assert_array_equal(train_a, train_b)  # seeded dropout: reproducible
    assert not np.array_equal(train_a, train_c)
    # the trained model is untouched: same mode, same weights and BatchNorm running statistics
    assert not noisy.training and torch.equal(torch.get_rng_state(), global_state)
    for key, value in noisy.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_swiss_roll_data_is_min_max_scaled_and_coloured_by_t():
    data = SwissRoll(n=300, noise=0.05, seed=2).build()
    x = data.train.numpy()
    np.testing.assert_allclose(x.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.max(axis=0), 1.0, atol=1e-6)
    assert 1.5 * np.pi <= data.train_color.min() and data.train_color.max() <= 4.5 * np.pi  # sklearn's t range


def fake_context(tmp_path, dataset: dict, latent_dim: int = 2) -> RunContext:
    cfg = OmegaConf.create({"seed": 5, "dataset": dataset, "model": {"latent_dim": latent_dim}})
    model = MLPAutoencoder(3, [], latent_dim)
    no_data = None  # the settings are checked before any data is read
    return RunContext(
        cfg,
        model,
        model,
        None,
        no_data,
        [],
        torch.device("cpu"),
        torch.float32,  # type: ignore[arg-type]
        tmp_path,
        "test",
        50,
    )


def test_analyses_reject_bad_settings_with_one_sentence(tmp_path):
    beta_ctx = fake_context(tmp_path, {"name": "beta", "seed": 5, "points": 100, "grid_min": 0.01, "grid_max": 0.99})
    with pytest.raises(ConfigError, match=r"analyses.latent_inversion.alpha=0.0 is not allowed"):
        latent_inversion(beta_ctx, alpha=0.0)
    with pytest.raises(ConfigError, match=r"start=\[0.0\] is not allowed"):
        latent_inversion(beta_ctx, start=[0.0])
    with pytest.raises(ConfigError, match=r"use dataset=beta"):
        latent_inversion(fake_context(tmp_path, {"name": "swiss_roll", "seed": 5}))
    roll_ctx = fake_context(tmp_path, {"name": "swiss_roll", "seed": 5})
    with pytest.raises(ConfigError, match=r"analyses.new_roll.seed=5 is not allowed"):
        new_roll(roll_ctx, seed=5)
    with pytest.raises(ConfigError, match=r"analyses.new_roll.n=1 is not allowed"):
        new_roll(roll_ctx, n=1)


def test_latent_histograms_summarise_the_code_of_every_curve(tmp_path):
    from aecli.analyses.beta import latent_histograms

    data = BetaCurves(n=20, points=100, seed=1).build()
    model = MLPAutoencoder(100, [], 2, init="zeros")  # zero weights: every code is the encoder's bias
    with torch.no_grad():
        model.encoder[0].bias.copy_(torch.tensor([1.5, -2.0]))
    ctx = RunContext(
        OmegaConf.create({"seed": 0}),
        model,
        model,
        None,
        data,
        [],
        torch.device("cpu"),
        torch.float32,
        tmp_path,
        "test",
        110,
    )
    metrics = latent_histograms(ctx)
    assert metrics == pytest.approx({"c1_mean": 1.5, "c1_std": 0.0, "c2_mean": -2.0, "c2_std": 0.0})
    assert_image(tmp_path / "latent_histograms.png")
