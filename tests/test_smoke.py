"""CI smoke runs: every experiment in conf/experiment/, as a real `aecli` process with
trainer.fast_dev_run=true (one epoch of at most 2 batches, every analysis on a few points), and as
a sweep where its YAML defines hydra.sweeper.params. Each must exit 0 and write every figure and
metric a full run writes: a smoke run checks the code paths, so an analysis that skips a figure
fails here. Each case prints its whole-process wall time (the CI log shows it; nothing asserts it).

The MNIST experiments read a tiny generated IDX set (test_study_mnist's `tiny_mnist`): never a download.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pytest
from conftest import REPO, read_summary, run_cli
from omegaconf import OmegaConf

from aecli.reporting.comparison import REPLACED

EXPERIMENT_DIR = REPO / "conf" / "experiment"
EXPERIMENTS = sorted(path.stem for path in EXPERIMENT_DIR.glob("*.yaml"))
SWEEPS = [
    name
    for name in EXPERIMENTS
    if OmegaConf.select(OmegaConf.load(EXPERIMENT_DIR / f"{name}.yaml"), "hydra.sweeper.params")
]

EVERY_RUN = {"loss_curve.png", "latent.png", "reconstruction.png"}  # pipeline.draw_figures, any data
ERROR_MAP = ({"error_map.png"}, {"error_map_share_below_threshold"})  # 2-D data with a grid_extent
STEP_LOSS = ({"loss_per_step.png"}, {"steps_logged", "step_log_loss_change_std", "final_step_loss_mean"})

# What a full run of each experiment writes besides EVERY_RUN: (figures, summary.json metrics).
# A new experiment needs its line here; a figure or metric that an analysis stops writing fails.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "activation_penalty": (
        {"activations.png", *ERROR_MAP[0]},
        {"sparsity", "mean_abs_activation", *(f"sparsity_layer{i}" for i in range(1, 7)), *ERROR_MAP[1]},
    ),
    "beta_curves": (
        {"latent_histograms.png", "latent_inversion.png"},
        {
            "c1_mean",
            "c1_std",
            "c2_mean",
            "c2_std",
            "inversion_residual",
            "inversion_nfev",
            "inversion_c1",
            "inversion_c2",
        },
    ),
    "mnist_bottleneck": (
        {"encoder_filters.png", "latent_manifold.png", "decoded_point.png"},
        {"test_mse", "latent_knn_accuracy"},
    ),
    "mnist_denoising": (
        {"denoising.png", "encoder_filters.png"},
        {"test_mse", "test_mse_noisy_input", "test_mse_masked_vs_clean"},
    ),
    "mnist_wide": (
        {"encoder_filters.png"},
        {"test_mse", "latent_knn_accuracy"},
    ),
    "nonlinear_2d": ERROR_MAP,
    "rectangle_capacity": (
        {"latent_in_input_space.png", "decoder_image.png", *STEP_LOSS[0], *ERROR_MAP[0]},
        {"code_min", "code_max", "curve_length_in_box", "data_near_curve_share", "data_curve_distance_mean"}
        | {"untrained_curve_length_in_box", "untrained_data_near_curve_share", "untrained_data_curve_distance_mean"}
        | {*STEP_LOSS[1], *ERROR_MAP[1]},
    ),
    "rectangle_frozen_decoder": (
        {"encoder_shift.png", *ERROR_MAP[0]},
        {"shift_mean_data", "shift_mean_grid", "shift_mean_near_curve", "shift_mean_far_from_curve"}
        | {"shift_distance_rank_correlation", *ERROR_MAP[1]},
    ),
    "rectangle_gd_vs_sgd": ({*STEP_LOSS[0], *ERROR_MAP[0]}, {*STEP_LOSS[1], *ERROR_MAP[1]}),
    "swiss_roll": (
        {"decoded_training_roll.png", "encoded_new_roll.png", "decoded_new_roll.png"},
        {"train_rmse", "train_rmse_train_mode", "new_roll_rmse", "new_roll_rmse_train_mode"},
    ),
}


def smoke(
    experiment: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    sweep: bool = False,
) -> Path:
    """`aecli [-m] experiment=EXPERIMENT trainer.fast_dev_run=true hydra.run.dir=... (hydra.sweep.dir=...)`
    as one process in tmp_path (the MNIST experiments on tiny IDX files); prints its wall time past
    pytest's capture and returns the run (sweep) folder."""
    out = tmp_path / ("sweep" if sweep else "run")
    args = ["-m"] * sweep + [f"experiment={experiment}", "trainer.fast_dev_run=true"]
    args.append(f"hydra.{'sweep' if sweep else 'run'}.dir={out}")
    env = {}
    if experiment.startswith("mnist"):
        folder, _ = request.getfixturevalue("tiny_mnist")  # also hides any real OpenML cache
        env["AECLI_MNIST_DIR"] = str(folder)
    start = time.perf_counter()
    run_cli(*args, cwd=tmp_path, env=env)
    with capsys.disabled():
        print(f"\n[smoke] aecli {' '.join(args[:-1])}: {time.perf_counter() - start:.1f} s", end="")
    return out


def check_run(run_dir: Path, experiment: str) -> None:
    """A completed smoke run with every figure and metric of a full run, and its last checkpoint."""
    if experiment not in EXPECTED:
        pytest.fail(f"conf/experiment/{experiment}.yaml: list its figures and metrics in EXPECTED")
    summary = read_summary(run_dir)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["fast_dev_run"] is True
    assert summary["epochs"] <= 2 and 1 <= summary["steps"] <= 2 * summary["epochs"]  # at most 2 batches an epoch
    figures, metrics = EXPECTED[experiment]
    missing = sorted((EVERY_RUN | figures) - {p.name for p in run_dir.glob("*.png")})
    assert not missing, f"{run_dir} lacks figures {missing}"
    assert not metrics - summary["metrics"].keys(), f"missing metrics {sorted(metrics - summary['metrics'].keys())}"
    assert all(v is None or isinstance(v, (int, float)) for v in summary["metrics"].values())  # None: was NaN
    assert (run_dir / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_smoke_run(experiment, tmp_path, request, capsys):
    run_dir = smoke(experiment, tmp_path, request, capsys)
    check_run(run_dir, experiment)
    if experiment == "rectangle_frozen_decoder":  # model.decoder_from=train: the source run, smoke too
        summary = read_summary(run_dir / "source")
        assert summary["status"] == "completed" and summary["fast_dev_run"] is True and summary["steps"] <= 4
        assert (run_dir / "source" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("experiment", SWEEPS)
def test_experiment_smoke_sweep(experiment, tmp_path, request, capsys):
    sweep_dir = smoke(experiment, tmp_path, request, capsys, sweep=True)
    conf = OmegaConf.load(EXPERIMENT_DIR / f"{experiment}.yaml")
    n_jobs = math.prod(len(str(values).split(",")) for values in conf.hydra.sweeper.params.values())
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert [int(p.name) for p in jobs] == list(range(n_jobs))
    for job in jobs:
        check_run(job, experiment)
    rows = list(csv.DictReader((sweep_dir / "summary.csv").read_text().splitlines()))
    assert len(rows) == n_jobs and {row["status"] for row in rows} == {"completed"}
    compared = OmegaConf.select(conf, "hydra.callbacks.sweep_comparison.figures", default=[])
    report = {"summary.csv", "summary.md", "index.html", "comparison_loss_curves.png"}
    report |= {f"comparison_{name}" for name in compared}
    assert not {f"comparison_{name}" for name in REPLACED} & {p.name for p in sweep_dir.iterdir()}
    missing = sorted(report - {p.name for p in sweep_dir.iterdir()})
    assert not missing, f"{sweep_dir} lacks the report's {missing}"
