"""`model=vae` everywhere (aecli/models/vae.py): the model contract (sampling in training, the mean
otherwise, the KL term's closed form, reductions and weight), real runs on every cheap data set with
their term columns and figures, the KL weight's effect, bit-exact resume through the sampling noise,
the Python API, a sweep, TensorBoard, and one-sentence errors."""

from __future__ import annotations

import csv
import math
import signal
import struct
from pathlib import Path

import pytest
import torch
from conftest import read_summary, run_cli
from omegaconf import OmegaConf

import aecli
from aecli.data.base import DataShape
from aecli.models import build_model
from aecli.models.vae import VAE, VAESpec
from aecli.run_files import load_checkpoint
from aecli.training.loop import step_terms

TERMS = ["train_reconstruction", "train_kl", "val_reconstruction", "val_kl"]
QUICK = ["model=vae", "trainer.num_threads=1", "plots.error_map_resolution=30"]
SPIRAL = [*QUICK, "dataset=spiral", "dataset.n=300"]  # 255 training points: 8 steps of 32 per epoch


def vae(beta: float = 1.0, loss: str = "mse") -> VAE:
    """A small VAE for 2-D rows, the same weights every call."""
    torch.manual_seed(0)
    model = build_model(VAESpec(hidden_sizes=[8], beta=beta), DataShape(2), loss)  # type: ignore[arg-type]
    assert isinstance(model, VAE)
    return model


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rows(run_dir: Path) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(lines(run_dir / "metrics.csv"))]


# ------------------------------------------------------------------------------- the contract
def test_training_samples_the_code_and_evaluation_uses_the_mean():
    model, x = vae(), torch.randn(16, 2)
    first, second = model(x), model(x)
    assert not torch.equal(first.code, second.code)  # a fresh eps each call
    assert not torch.equal(first.reconstruction, second.reconstruction)
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a.code, b.code) and torch.equal(a.terms["kl"], b.terms["kl"])
    assert torch.equal(a.code, model.encode(x)) and torch.equal(model.encode(x), model.posterior(x)[0])
    assert torch.equal(a.reconstruction, model.reconstruct(x))
    assert list(a.terms) == ["reconstruction", "kl"] and list(first.terms) == ["reconstruction", "kl"]


@pytest.mark.parametrize("loss", ["mse", "sse"])
def test_kl_is_zero_at_the_prior_and_matches_the_closed_form(loss):
    model = vae(loss=loss)
    zero = torch.zeros(3, 2)
    assert model.kl_divergence(zero, zero).item() == 0.0  # N(0, I) from itself
    # row 1: mean (1, 0), variances (1, 2): 0.5 (1 + 1 - 1 - 0) + 0.5 (2 + 0 - 1 - ln 2); row 2: the prior
    mean, logvar = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, math.log(2)], [0.0, 0.0]])
    per_row = [0.5 + 0.5 * (1 - math.log(2)), 0.0]
    expected = sum(per_row) if loss == "sse" else sum(per_row) / 2 / 2  # mse: mean over rows, / 2 values per row
    assert model.kl_divergence(mean, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_beta_scales_the_kl_term_linearly():
    x = torch.randn(16, 2)
    base = vae(beta=1.0).eval()
    for beta in (0.0, 0.5, 3.0):
        model = vae(beta=beta).eval()  # the same weights (seeded), another weight on the KL
        out, ref = model(x), base(x)
        assert out.terms["kl"].item() == pytest.approx(beta * ref.terms["kl"].item(), rel=1e-6, abs=1e-12)
        assert torch.equal(out.terms["reconstruction"], ref.terms["reconstruction"])
    assert base(x).terms["kl"].item() > 0


def test_the_loop_minimises_reconstruction_of_the_sampled_code_plus_beta_kl():
    model, x = vae(beta=2.0), torch.randn(16, 2)
    torch.manual_seed(7)
    objective, loss, terms = step_terms(model, x, [])
    torch.manual_seed(7)  # the same eps, drawn by hand
    mean, logvar = model.posterior(x)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    recon = torch.mean((model.decode(z) - x) ** 2)
    kl = 2.0 * (-0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(dim=1)).mean() / 2  # beta 2; mse: / 2 values
    assert terms["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-6)
    assert terms["kl"].item() == pytest.approx(kl.item(), rel=1e-6)
    assert objective.item() == loss.item() == pytest.approx((recon + kl).item(), rel=1e-6)


# ------------------------------------------------------------------------------------ real runs
RUNS = {  # every data set family that is cheap here; latent_dim 2 draws traversal.png, others do not
    "spiral": (["dataset=spiral", "dataset.n=300", "trainer.epochs=15"], 2),
    "digits": (["dataset=digits", "trainer.epochs=3"], 2),
    "beta": (["dataset=beta", "dataset.n=200", "trainer.epochs=15", "model.latent_dim=3"], 3),
    "swiss_roll": (["dataset=swiss_roll", "dataset.n=300", "trainer.epochs=15"], 2),
    "swiss_roll_1d": (["dataset=swiss_roll", "dataset.n=300", "trainer.epochs=5", "model.latent_dim=1"], 1),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Each of RUNS trained once through aecli.run, figures on."""
    root = tmp_path_factory.mktemp("vae_runs")
    return {
        name: aecli.run([*QUICK, "trainer.progress=false", *o], output_dir=root / name).path
        for name, (o, _) in RUNS.items()
    }


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.mark.parametrize("name", list(RUNS))
def test_a_vae_run_logs_its_terms_and_draws_its_figures(runs, name):
    run_dir, latent_dim = runs[name], RUNS[name][1]
    summary, table = read_summary(run_dir), rows(run_dir)
    assert summary["status"] == "completed" and summary["model"] == "vae"
    header = next(csv.reader(lines(run_dir / "metrics.csv")))
    assert header == ["epoch", "train_loss", "val_loss", "lr", "seconds", *TERMS]
    for row in table:  # the totals are the terms' sums, every epoch (epoch 0: the untrained model)
        for part in ("train", "val"):
            assert row[f"{part}_loss"] == pytest.approx(row[f"{part}_reconstruction"] + row[f"{part}_kl"], rel=1e-9)
        assert row["train_kl"] > 0 and row["val_kl"] > 0
    for term in TERMS:
        assert summary[f"final_{term}"] == table[-1][term]
    assert table[-1]["val_loss"] < table[0]["val_loss"]  # it learnt something
    assert all((run_dir / f).is_file() for f in ("latent.png", "reconstruction.png", "loss_curve.png"))
    assert (run_dir / "traversal.png").is_file() == (latent_dim == 2)
    for figure in ["samples.png", *(["traversal.png"] if latent_dim == 2 else [])]:
        width, height = png_size(run_dir / figure)
        assert 400 <= width <= 1100 and 400 <= height <= 900, (figure, width, height)  # readable at ~800 px


def test_a_large_beta_shrinks_the_raw_kl(tmp_path):
    """The KL of the trained posteriors, recomputed from the models (not from what was logged): a
    weight of 20 pulls them onto the prior, at the cost of the reconstruction."""
    raw_kl, recon = {}, {}
    for beta in (0.1, 20):
        run = aecli.run(
            [*SPIRAL, "trainer.epochs=10", f"model.beta={beta}", "plots.enabled=false", "trainer.progress=false"],
            output_dir=tmp_path / str(beta),
        )
        with torch.no_grad():
            mean, logvar = run.model.posterior(run.data().val)
        raw_kl[beta] = float((-0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(dim=1)).mean())  # per row
        logged = beta * raw_kl[beta] / 2  # weighted, and per value of the 2-D rows (mse)
        assert run.summary["final_val_kl"] == pytest.approx(logged, rel=1e-5)
        recon[beta] = run.summary["final_val_reconstruction"]
    assert raw_kl[20] < raw_kl[0.1] / 10, raw_kl
    assert recon[20] > recon[0.1], recon


@pytest.mark.parametrize(
    "settings",
    [
        ["trainer.loss=sse"],
        ["regularizer=denoising"],
        ["regularizer=activation_l1", "model.dropout=0.2", "model.latent_batchnorm=true"],
        ["trainer.dtype=float64"],
        ["trainer.fast_dev_run=true"],
    ],
    ids=["sse", "denoising", "l1-dropout-batchnorm", "float64", "fast_dev_run"],
)
def test_a_vae_takes_the_trainer_and_regularizer_settings(tmp_path, settings):
    """Completes with its figures, and logs the KL of its posteriors in the trainer.loss convention:
    per row with sse, per value (/ 2) with mse."""
    run = aecli.run([*SPIRAL, "trainer.epochs=2", "trainer.progress=false", *settings], output_dir=tmp_path / "run")
    assert run.summary["status"] == "completed" and isinstance(run.model, VAE)
    assert (run.path / "samples.png").is_file() and (run.path / "traversal.png").is_file()
    val = run.data().val[: 64 if "trainer.fast_dev_run=true" in settings else None].to(run.dtype)  # smoke: 2 batches
    with torch.no_grad():
        mean, logvar = run.model.posterior(val)
    kl_per_row = float((-0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(dim=1)).mean())
    assert run.summary["final_val_kl"] == pytest.approx(kl_per_row / (1 if "sse" in settings[0] else 2), rel=1e-5)


def test_load_run_encodes_to_the_posterior_mean_and_recomputes_the_val_loss(runs):
    run = aecli.load_run(runs["spiral"])
    assert isinstance(run.model, VAE)
    x = run.data().val[:50]
    code = run.encode(x)
    assert torch.equal(code, run.model.posterior(x)[0].detach()) and torch.equal(code, run.encode(x))
    assert run.val_loss() == pytest.approx(run.summary["final_val_loss"], rel=1e-6)


# ------------------------------------------------------------------------------------- resume
def run_stopping_at(steps: int | None, run_dir: Path, *extra: str) -> dict:
    """SPIRAL for 3 epochs in-process, sending ourselves SIGTERM during training forward pass `steps`."""
    from aecli.config import compose
    from aecli.pipeline import run

    calls, forward = {"n": 0}, VAE.forward

    def forward_and_maybe_signal(self, x, target=None):
        if self.training:  # optimizer steps only, not the evaluations
            calls["n"] += 1
            if calls["n"] == steps:
                signal.raise_signal(signal.SIGTERM)
        return forward(self, x, target)

    VAE.forward = forward_and_maybe_signal  # type: ignore[method-assign]
    try:
        overrides = [*SPIRAL, "trainer.epochs=3", "trainer.progress=false", "plots.enabled=false", *extra]
        return run(compose(overrides), run_dir).as_dict()
    finally:
        VAE.forward = forward  # type: ignore[method-assign]


def outcome(run_dir: Path) -> tuple[dict, list]:
    weights = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    return weights, [r[:3] + r[5:] for r in csv.reader(lines(run_dir / "metrics.csv"))]  # all but lr, seconds


@pytest.mark.parametrize("stops", [[12], [3, 20]], ids=["mid-epoch", "twice"])
def test_a_resumed_vae_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, stops):
    assert run_stopping_at(None, tmp_path / "reference")["status"] == "completed"
    run_dir, done = tmp_path / "stopped", 0
    for stop in stops:
        summary = run_stopping_at(stop - done, run_dir, *([f"trainer.resume_from={run_dir}"] if done else []))
        assert summary["status"] == "interrupted" and summary["steps"] == stop
        done = stop
    assert run_stopping_at(None, run_dir, f"trainer.resume_from={run_dir}")["status"] == "completed"
    (wa, rows_a), (wb, rows_b) = outcome(run_dir), outcome(tmp_path / "reference")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert rows_a == rows_b


# --------------------------------------------------------------------- sweeps, trackers, errors
def test_a_beta_sweep_reports_both_jobs(tmp_path):
    sweep = tmp_path / "s"
    args = ["-m", *SPIRAL, "model.beta=0.5,2", "dataset.n=200", "trainer.epochs=2", "hydra/job_logging=disabled"]
    run_cli(*args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    table = {r["model.beta"]: r for r in csv.DictReader(lines(sweep / "summary.csv"))}
    assert sorted(table) == ["0.5", "2"] and all(r["status"] == "completed" for r in table.values())
    for row in table.values():
        job = read_summary(sweep / row["job"])
        assert OmegaConf.load(sweep / row["job"] / "config.yaml").model.beta == float(row["model.beta"])
        assert float(row["final_val_loss"]) == job["final_val_loss"]
        assert job["final_val_loss"] == pytest.approx(job["final_val_reconstruction"] + job["final_val_kl"], rel=1e-9)


def test_tensorboard_logs_the_kl_and_reconstruction_terms(run_in_process):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary, run_dir = run_in_process(*SPIRAL, "trainer.epochs=3", "logger=tensorboard")
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    table = rows(run_dir)
    for key in ["train_loss", "val_loss", *TERMS]:
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [int(r["epoch"]) for r in table]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in table], rel=1e-6)  # float32


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.latent_activation=tanh", "model.latent_activation='tanh' is not allowed: a VAE's encoder outputs"),
        ("model.beta=-1", "model.beta=-1.0 is not allowed: use a finite KL weight >= 0"),
    ],
    ids=["latent_activation", "beta"],
)
def test_bad_vae_settings_are_one_sentence(tmp_path, override, message):
    proc = run_cli("model=vae", override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"aecli: error: {message}"), proc.stderr
    assert not (tmp_path / "run").exists()
