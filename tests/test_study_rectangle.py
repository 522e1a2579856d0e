"""The rectangle studies (rectangle_capacity, rectangle_frozen_decoder, rectangle_gd_vs_sgd,
activation_penalty): configs compose with the study's settings, each runs end to end on tiny
data, and every analysis gives known answers on hand-made inputs."""

from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch
from conftest import run_cli
from omegaconf import OmegaConf

from aecli.analyses import RunContext
from aecli.analyses.activations import hidden_activations, sparsity
from aecli.analyses.rectangle import (
    decoder_curve,
    distance_to_polyline,
    encoder_shift,
    encoder_shift_grid,
    length_inside,
    log_step_variability,
    rank_correlation,
)
from aecli.config import ConfigError, compose
from aecli.data import Rectangle
from aecli.models import MLPAutoencoder
from aecli.run_files import load_checkpoint

TINY = ["trainer.epochs=2", "dataset.n=24", "plots.error_map_resolution=20", "plots.enabled=true", "plots.dpi=40"]
CPU = torch.device("cpu")


# ------------------------------------------------------------------ configs
def compose_with_sweep(*overrides: str) -> tuple[OmegaConf, dict]:
    """The job config `aecli OVERRIDES --cfg job` prints, and its hydra.sweeper.params (in-process)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from aecli.config import register_schemas

    register_schemas()
    with initialize_config_module(config_module="aecli.conf", version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    return cfg, ({} if params is None else dict(OmegaConf.to_container(params)))


@pytest.mark.parametrize(
    "experiment, expected, sweep",
    [
        (
            "rectangle_capacity",
            {
                "model.name": "big",
                "trainer.batch_size": 8,
                "trainer.drop_last": True,
                "trainer.shuffle": True,
                "trainer.log_steps": True,
                "optimizer.name": "adam",
                "optimizer.lr": 1e-3,
            },
            {"model": "pca,small,big"},
        ),
        (
            "rectangle_frozen_decoder",
            {
                "transfer.decoder_from": "train",
                "transfer.freeze_decoder": True,
                "optimizer.lr": 0.01,
                "transfer.source.optimizer.lr": 1e-3,
                "trainer.batch_size": 8,
            },
            {},
        ),
        (
            "rectangle_gd_vs_sgd",
            {
                "optimizer.name": "sgd",
                "optimizer.lr": 1e-3,
                "trainer.batch_size": 100,
                "trainer.shuffle": False,
                "trainer.drop_last": False,
                "trainer.log_steps": True,
            },
            {"variant": "gd,sgd"},
        ),
        (
            "activation_penalty",
            {"model.name": "big", "regularizer.name": "none", "trainer.batch_size": 8},
            {"regularizer": "none,activation_l1,activation_l2"},
        ),
    ],
)
def test_experiments_compose_with_the_studys_settings(experiment, expected, sweep):
    cfg, swept = compose_with_sweep(f"experiment={experiment}")
    assert cfg.dataset.name == "rectangle" and cfg.dataset.n == 100 and cfg.dataset.train_fraction == 1.0
    assert cfg.trainer.epochs == 1000 and cfg.model.latent_dim == 1 and cfg.trainer.loss == "mse"
    for key, value in expected.items():
        assert OmegaConf.select(cfg, key) == value, key
    assert swept == sweep


def test_sgd_variant_pairs_batch_one_with_its_learning_rate():
    gd = compose(["experiment=rectangle_gd_vs_sgd", "dataset.n=30"])
    sgd = compose(["experiment=rectangle_gd_vs_sgd", "variant=sgd"])
    assert (gd.trainer.batch_size, gd.optimizer.lr) == (30, 1e-3)  # full batch follows the data size
    assert (sgd.trainer.batch_size, sgd.optimizer.lr) == (1, 3e-4)
    l1 = compose(["experiment=activation_penalty", "regularizer=activation_l1"]).regularizer
    assert (l1.activation_l1, l1.activation_l2) == (0.3, 0.0)  # the tuned lambda, one term on


# --------------------------------------------------------------- end to end
def test_rectangle_capacity_runs_and_measures_the_decoder_curve(run_in_process):
    summary, run_dir = run_in_process("experiment=rectangle_capacity", "model=small", *TINY)
    assert summary["status"] == "completed" and summary["steps"] == 2 * (24 // 8)  # drop_last: 3 steps/epoch
    for name in ("latent_in_input_space.png", "decoder_image.png", "loss_per_step.png"):
        assert (run_dir / name).stat().st_size > 2_000, name
    m = summary["metrics"]
    assert m["steps_logged"] == 6 and all(math.isfinite(v) for v in m.values())
    assert 0 <= m["data_near_curve_share"] <= 1 and m["curve_length_in_box"] >= 0


def test_frozen_decoder_keeps_the_source_decoder_bit_for_bit(run_in_process):
    summary, run_dir = run_in_process("experiment=rectangle_frozen_decoder", *TINY)
    assert summary["status"] == "completed" and (run_dir / "encoder_shift.png").is_file()
    source = load_checkpoint(run_dir / "source" / "checkpoints" / "last.pt")["model"]
    new = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    decoder_keys = [k for k in new if k.startswith("decoder.")]
    encoder_keys = [k for k in new if k.startswith("encoder.")]
    assert decoder_keys and all(torch.equal(new[k], source[k]) for k in decoder_keys)
    assert all(not torch.equal(new[k], source[k]) for k in encoder_keys)
    m = summary["metrics"]
    assert set(m) >= {"shift_mean_data", "shift_mean_near_curve", "shift_mean_far_from_curve"}
    assert m["shift_mean_data"] > 0 and math.isfinite(m["shift_distance_rank_correlation"])


def test_encoder_shift_without_a_source_is_a_one_sentence_error(run_in_process):
    with pytest.raises(ConfigError, match="transfer.decoder_from=None is not allowed"):
        run_in_process(
            "experiment=rectangle_frozen_decoder",
            "transfer.decoder_from=null",
            "transfer.freeze_decoder=false",
            "trainer.epochs=0",
            "dataset.n=24",
        )


def test_gd_vs_sgd_sweep_logs_every_step_and_sgd_jumps_more(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "-m",
        "experiment=rectangle_gd_vs_sgd",
        "trainer.epochs=3",
        "dataset.n=20",
        "plots.enabled=false",
        "plots.dpi=40",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    steps = {}
    for job, variant in [("0", "gd"), ("1", "sgd")]:
        with open(sweep / job / "steps.csv", newline="") as f:
            steps[variant] = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(steps["gd"]) == 3 and len(steps["sgd"]) == 3 * 20  # one step per epoch vs one per sample
    gd, sgd = (log_step_variability(np.array(steps[v])) for v in ("gd", "sgd"))
    assert sgd > gd
    assert (sweep / "comparison_step_losses.png").is_file()  # both on one 0-1 step axis (the callback)


def test_l1_penalty_makes_activations_sparser_than_none(run_in_process):
    common = ["experiment=activation_penalty", "trainer.epochs=8", "dataset.n=24", "plots.enabled=true", "plots.dpi=40"]
    plain, _ = run_in_process(*common, "regularizer=none")
    l1, run_dir = run_in_process(*common, "regularizer=activation_l1", "regularizer.activation_l1=1.0")
    assert (run_dir / "activations.png").is_file()
    assert l1["metrics"]["sparsity"] > plain["metrics"]["sparsity"] + 0.05
    assert l1["metrics"]["mean_abs_activation"] < plain["metrics"]["mean_abs_activation"]
    assert plain["metrics"]["sparsity_layer6"] >= 0  # six hidden layers of the big net


# ------------------------------------------------------------ known answers
def test_decoder_curve_is_the_decoders_output_at_exactly_the_requested_codes():
    model = MLPAutoencoder(2, [], latent_dim=1).double()  # the pca net: decoder Linear(1, 2)
    with torch.no_grad():
        model.decoder[0].weight.copy_(torch.tensor([[2.0], [3.0]]))
        model.decoder[0].bias.copy_(torch.tensor([1.0, -1.0]))
    curve = decoder_curve(model, np.array([-1.0, 0.0, 2.5]))
    np.testing.assert_allclose(curve, [[-1.0, -4.0], [1.0, -1.0], [6.0, 6.5]])
    big = MLPAutoencoder(2, [50, 50, 50], latent_dim=1).double()
    z = np.linspace(-10, 10, 7)
    np.testing.assert_array_equal(decoder_curve(big, z), big.decode(torch.tensor(z).reshape(-1, 1)).detach().numpy())


def test_polyline_distance_length_and_step_variability_known_answers():
    segment = np.array([[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(
        distance_to_polyline(np.array([[0.5, 1.0], [2.0, 0.0], [-3.0, 4.0]]), segment), [1.0, 1.0, 5.0]
    )
    assert length_inside(np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]), (-1, 2, -1, 1)) == 1.0
    assert log_step_variability(0.5 ** np.arange(10.0)) == pytest.approx(0.0, abs=1e-12)  # smooth decay
    assert log_step_variability(np.exp([0.0, 1.0, 0.0, 1.0])) == pytest.approx(np.std([1.0, -1.0, 1.0]))
    assert rank_correlation(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)


def test_encoder_shift_is_zero_everywhere_when_the_encoders_are_the_same(tmp_path):
    model = MLPAutoencoder(2, [50, 50, 50], latent_dim=1)
    points = np.random.default_rng(0).uniform(-5, 5, (500, 2))
    assert np.all(encoder_shift_grid(model, copy.deepcopy(model), points, CPU, torch.float32) == 0)
    cfg = compose(["experiment=rectangle_frozen_decoder"])
    ctx = RunContext(
        cfg,
        model,
        copy.deepcopy(model),
        copy.deepcopy(model),
        Rectangle(n=30, seed=0).build(),
        [],
        CPU,
        torch.float32,
        tmp_path,
        "rectangle / big",
        40,
    )
    model.train()
    m = encoder_shift(ctx, resolution=30, near=2.0, far=0.5)  # an untrained curve: widen "near"
    assert model.training  # the analyses restore the model's mode
    assert m["shift_mean_data"] == m["shift_mean_grid"] == m["shift_mean_near_curve"] == 0.0
    assert m["shift_mean_far_from_curve"] == 0.0 and math.isnan(m["shift_distance_rank_correlation"])
    assert (tmp_path / "encoder_shift.png").is_file()
    ctx.source_model = None
    with pytest.raises(ConfigError, match="transfer.decoder_from"):  # nothing to compare with
        encoder_shift(ctx)


def test_sparsity_and_hidden_activations_known_answers():
    assert sparsity(np.array([0.0, 5e-4, -2e-3, 1.0, 0.0, 0.1]), 1e-3) == 0.5
    model = MLPAutoencoder(2, [3], latent_dim=1)
    with torch.no_grad():
        model.encoder[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
        model.encoder[0].bias.zero_()
    layers = hidden_activations(model, torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
    assert len(layers) == 2 and layers[1].shape == (2, 3)  # encoder hidden, decoder hidden
    np.testing.assert_array_equal(layers[0], [[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])  # ReLU of x1, x2, -x1
    assert sparsity(layers[0], 1e-3) == 0.5
