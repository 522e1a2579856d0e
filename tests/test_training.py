"""Known answers for the model, data, loop and error map (in-process, small and fast)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.decomposition import PCA

from aecli.analyses import error_grid
from aecli.config import TrainerConfig
from aecli.data import DataShape, LogSpiral, PolynomialCurve
from aecli.errors import ConfigError
from aecli.models import MLPAutoencoder, ModelSpec, build_model
from aecli.plugins import build_spec
from aecli.training.loop import Training, evaluate, fit, resolve_device
from aecli.training.optim import build_optimizer


def log_spiral(**settings):
    return LogSpiral(**settings).build()


def polynomial_curve(**settings):
    return PolynomialCurve(**settings).build()


NONLINEAR_2D_MODELS = ["linear", "relu", "relu_nobias", "tanh", "tanh_nobias"]


def test_datasets_match_the_study():
    poly = polynomial_curve(n=2000, noise=1.0, train_fraction=0.85, seed=3)
    spiral = log_spiral(n=2000, train_fraction=0.85, seed=3)
    for d in (poly, spiral):
        assert d.train.shape == (1700, 2) and d.val.shape == (300, 2) and d.train.dtype == torch.float32
        both = torch.cat([d.train, d.val]).double()
        assert torch.allclose(both.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6)
        assert torch.allclose(both.std(0, unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-5)
    # the spiral's radius grows like exp(b theta): the last points lie furthest from the centre
    radius = np.hypot(*log_spiral(n=2000, train_fraction=0.5, seed=0).train.numpy().T)
    assert radius.max() > 3.0
    # same seed, same data; another seed, another noise draw
    assert torch.equal(polynomial_curve(seed=3).train, poly.train)
    assert not torch.equal(polynomial_curve(seed=4).train, poly.train)


@pytest.mark.parametrize(
    "name, params", [("linear", 17), ("relu", 17), ("relu_nobias", 12), ("tanh", 17), ("tanh_nobias", 12)]
)
def test_study_models_are_presets_of_the_one_mlp(name, params):
    from aecli.config import compose

    model = build_model(build_spec(compose([f"model={name}"]).model, "model", ModelSpec), DataShape(2))
    assert type(model) is MLPAutoencoder
    assert sum(p.numel() for p in model.parameters()) == params  # Linear(2,3) + Linear(3,2)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 3), (3, 2)]


def test_general_mlp_layers():
    model = MLPAutoencoder(3, [128, 64], 2, dropout=0.2, latent_batchnorm=True, code_dropout=0.1)
    kinds = [type(m).__name__ for m in model.decoder]
    assert kinds[:2] == ["Dropout", "BatchNorm1d"] and kinds.count("Linear") == 3
    assert model(torch.randn(5, 3)).reconstruction.shape == (5, 3) and model.encode(torch.randn(5, 3)).shape == (5, 2)


def train_linear_ae(x: torch.Tensor, epochs: int) -> float:
    torch.manual_seed(0)
    model = MLPAutoencoder(2, [], 1, latent_activation="identity")
    opt, _ = build_optimizer(
        OmegaConf.create({"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999], "weight_decay": 0.0, "lr_decay": None}),
        model.parameters(),
    )
    cfg = TrainerConfig(epochs=epochs, batch_size=64)
    fit(Training(model, opt, None, [], torch.Generator().manual_seed(0), []), x, x, cfg)
    return evaluate(model, x)["reconstruction"]


def test_linear_autoencoder_reaches_but_never_beats_rank1_pca():
    data = polynomial_curve(seed=0).train
    pca = PCA(n_components=1).fit(data.numpy())
    pca_mse = float(np.mean((pca.inverse_transform(pca.transform(data.numpy())) - data.numpy()) ** 2))
    ae_mse = train_linear_ae(data, epochs=40)
    assert ae_mse == pytest.approx(pca_mse, rel=0.03)
    assert ae_mse >= pca_mse * (1 - 1e-5)  # PCA is the optimum for a linear 1-D code


def test_error_grid_orientation_and_values():
    """A decoder that outputs zeros makes the error the distance to the origin: check rows are y, columns x."""
    model = MLPAutoencoder(2, [], 1)
    torch.nn.init.zeros_(model.decoder[-1].weight)
    torch.nn.init.zeros_(model.decoder[-1].bias)
    err = error_grid(model, (-2.0, 2.0, -1.0, 3.0), 5, torch.device("cpu"))
    assert err.shape == (5, 5)
    assert err[0, 0] == pytest.approx(np.hypot(-2, -1), rel=1e-6)  # bottom-left
    assert err[0, -1] == pytest.approx(np.hypot(2, -1), rel=1e-6)  # bottom-right
    assert err[-1, 2] == pytest.approx(3.0, rel=1e-6)  # top-middle: (0, 3)


def test_sse_is_mse_times_dimension_per_sample():
    torch.manual_seed(0)
    model, x = MLPAutoencoder(4, [8], 2), torch.randn(100, 4)
    mse = evaluate(model, x)["reconstruction"]
    model.loss_kind = "sse"
    assert evaluate(model, x)["reconstruction"] == pytest.approx(4 * mse, rel=1e-5)


def test_missing_accelerator_is_a_config_error():
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="trainer.device=cuda"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def metrics_without_time(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(run_dir / "metrics.csv"))]


def test_same_config_and_seed_give_identical_metrics(run_in_process):
    overrides = ("model=relu", "trainer.epochs=4", "optimizer.lr_decay=0.9")
    (s1, d1), (s2, d2) = run_in_process(*overrides), run_in_process(*overrides)
    assert metrics_without_time(d1) == metrics_without_time(d2)
    assert s1["final_val_loss"] == s2["final_val_loss"]
    w1, w2 = (torch.load(d / "checkpoints/last.pt", weights_only=True)["model"] for d in (d1, d2))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    _, d3 = run_in_process(*overrides, "seed=7")
    assert metrics_without_time(d3) != metrics_without_time(d1)


def test_exponential_lr_schedule_is_logged_per_epoch(run_in_process):
    _, run_dir = run_in_process("optimizer=sgd", "optimizer.lr=0.1", "optimizer.lr_decay=0.5", "trainer.epochs=3")
    lrs = [float(r["lr"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))]
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.025])  # epoch 0 (untrained), then one decay per epoch


@pytest.mark.parametrize("dataset", ["polynomial", "spiral"])
def test_training_lowers_val_loss_of_every_nonlinear_2d_model(run_in_process, dataset):
    for model in NONLINEAR_2D_MODELS:
        summary, run_dir = run_in_process(f"dataset={dataset}", f"model={model}", "trainer.epochs=15")
        rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        untrained, trained = float(rows[0]["val_loss"]), summary["final_val_loss"]
        assert trained < 0.6 * untrained, (dataset, model, untrained, trained)


def test_divergence_stops_the_run_and_keeps_the_last_finite_checkpoint(run_in_process):
    summary, run_dir = run_in_process("optimizer=sgd", "optimizer.lr=50", "model=mlp", "trainer.epochs=5")
    assert summary["status"] == "diverged" and summary["diverged_at_epoch"] == 1
    ckpt = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert ckpt["epoch"] == 0 and all(torch.isfinite(w).all() for w in ckpt["model"].values())
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["train_loss"]))


def test_the_loop_reads_from_the_device_a_few_times_per_epoch_never_per_step(monkeypatch):
    """On a GPU every host read of a tensor waits for the device; the loop may do it per epoch
    (the epoch's loss, the validation loss), never per step. Counted here on the CPU."""
    reads = {"n": 0}
    for name in ("__float__", "__int__", "__bool__", "item", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    x = torch.randn(1600, 2)
    model = MLPAutoencoder(2, [8], 1, activation="tanh")
    opt, _ = build_optimizer(
        OmegaConf.create(
            {"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999], "fused": True, "weight_decay": 0.0, "lr_decay": None}
        ),
        model.parameters(),
    )
    training = Training(model, opt, None, [], torch.Generator().manual_seed(0), [])
    result = fit(training, x, x[:100], TrainerConfig(epochs=3, batch_size=16))
    assert result.steps == 300 and reads["n"] <= 4 * (3 + 1), reads  # 100 steps an epoch, a handful of reads
