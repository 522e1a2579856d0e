"""Claims judged over seeds (aecli/claims.py): the t-interval, the three verdicts at every edge, values
paired by seed across jobs and experiments, and, for every claim of the studies, a world where its
effect is present (reproduced) and one where it is absent (never reproduced): every verdict can fail."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats

from aecli.claims import (
    CLAIMS,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    Difference,
    Largest,
    Ratio,
    Read,
    Runs,
    Tolerance,
    judge,
    t_interval,
    verdict,
)

SEEDS = (1337, 1338, 1339)


def test_the_t_interval_is_students():
    values = [1.0, 2.0, 4.0]
    lo, hi = t_interval(values)
    mean, sem = sum(values) / 3, stats.sem(values)
    assert (lo, hi) == pytest.approx(stats.t.interval(0.95, 2, loc=mean, scale=sem))
    assert t_interval([3.0]) == (3.0, 3.0) and all(math.isnan(x) for x in t_interval([]))


@pytest.mark.parametrize(
    "interval, tolerance, expected",
    [
        ((1.1, 1.5), Tolerance("above", 1.0, ""), REPRODUCED),
        ((1.0, 1.5), Tolerance("above", 1.0, ""), INCONCLUSIVE),  # the edge is not "above"
        ((0.9, 1.5), Tolerance("above", 1.0, ""), INCONCLUSIVE),
        ((0.2, 1.0), Tolerance("above", 1.0, ""), NOT_REPRODUCED),
        ((0.2, 0.9), Tolerance("below", 1.0, ""), REPRODUCED),
        ((0.2, 1.1), Tolerance("below", 1.0, ""), INCONCLUSIVE),
        ((1.0, 1.1), Tolerance("below", 1.0, ""), NOT_REPRODUCED),
        ((0.95, 1.05), Tolerance("relative", 0.1, "", target=1.0), REPRODUCED),
        ((0.9, 1.1), Tolerance("relative", 0.1, "", target=1.0), REPRODUCED),  # the band's edges belong to it
        ((0.85, 1.05), Tolerance("relative", 0.1, "", target=1.0), INCONCLUSIVE),
        ((1.2, 1.4), Tolerance("relative", 0.1, "", target=1.0), NOT_REPRODUCED),
        ((-1.08, -1.02), Tolerance("relative", 0.1, "", target=-1.0), REPRODUCED),  # |reference| sets the band
        ((0.3, 0.5), Tolerance("between", 0.2, "", upper=0.6), REPRODUCED),
        ((0.7, 0.8), Tolerance("between", 0.2, "", upper=0.6), NOT_REPRODUCED),
    ],
)
def test_verdict_edges(interval, tolerance, expected):
    assert verdict(interval, tolerance.accepted(None), tolerance.kind) == expected


def test_a_claim_on_the_studys_number_without_one_is_inconclusive():
    tolerance = Tolerance("relative", 0.1, "")
    assert verdict((1.0, 1.0), tolerance.accepted(None), "relative") == INCONCLUSIVE
    assert verdict((1.0, 1.0), tolerance.accepted(1.02), "relative") == REPRODUCED


# ------------------------------------------------------------------ synthetic reproductions
def write_job(experiment: Path, overrides: dict[str, str], metrics: dict[str, float], status="completed") -> None:
    """A sweep job folder holding `metrics` (merged into the job of these overrides if it exists)."""
    experiment.mkdir(parents=True, exist_ok=True)
    for job in experiment.iterdir():
        if json.loads((job / "meta.json").read_text()) == overrides:
            summary = json.loads((job / "summary.json").read_text())
            summary["metrics"].update(metrics)
            (job / "summary.json").write_text(json.dumps(summary))
            return
    job = experiment / str(len(list(experiment.iterdir())))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {k}={v}\n" for k, v in overrides.items()))
    (job / "meta.json").write_text(json.dumps(overrides))
    (job / "summary.json").write_text(json.dumps({"status": status, "metrics": dict(metrics)}))


def leaves(value) -> list[Read]:
    if isinstance(value, Read):
        return [value]
    if isinstance(value, Largest):
        return [r for v in value.values for r in leaves(v)]
    return leaves(value.first) + leaves(value.second)  # a Ratio or a Difference


def world(root: Path, claim: Claim, values: list[float], spread: float = 0.01) -> Runs:
    """A reproduction in which each Read of `claim` (in order) has its value, over three seeds (each
    seed's a little apart, so the interval has a width)."""
    for k, seed in enumerate(SEEDS):
        for read, value in zip(leaves(claim.ours), values):
            overrides = {**read.job, "seed": str(seed)}
            write_job(root / (read.experiment or claim.experiment), overrides, {read.metric: value * (1 + spread * k)})
    return Runs(root)


# Per claim (by its text): the values of its Reads where the effect is present, and where it is absent
# (an untrained net, the wrong model, the variants swapped).
LINEAR_ON_TOP = ([0.95, 0.05, 0.07, 0.09, 0.12], [0.2, 0.05, 0.07, 0.09, 0.5])  # linear, then the other four
WORLDS: dict[int, tuple[list[float], list[float]]] = {
    0: ([0.93], [0.03]),  # an untrained linear net: high error everywhere
    1: ([1.0], [0.1]),
    2: LINEAR_ON_TOP,
    3: LINEAR_ON_TOP,
    4: ([0.02, 0.93], [0.9, 0.93]),  # ReLU's share as large as the linear net's: nothing confined
    5: ([0.0], [0.0018]),  # a trained tanh net with biases: near the origin, not through it
    6: ([0.07], [0.2]),
    7: ([0.08], [0.3]),
    8: ([0.0045], [0.02]),
    9: ([0.055, 0.076], [0.076, 0.055]),  # train mode better than eval mode: swapped
    10: ([0.088], [0.5]),
    11: ([0.17], [0.5]),
    12: ([0.04, 0.067], [0.067, 0.067]),  # an untrained net: the mean image's MSE
    13: ([0.04, 0.056], [0.063, 0.056]),
    14: ([0.6, 0.45], [0.3, 0.45]),
    15: ([0.01, 0.06], [0.06, 0.01]),  # the bottleneck better than the wide net: swapped
    16: ([0.003, 0.004], [0.02, 0.004]),
    17: ([0.97], [0.2]),
    18: ([0.015, 0.023], [0.047, 0.023]),  # the denoiser worse than returning the masked input
    19: ([0.18, 0.02], [0.02, 0.18]),
    20: ([0.5, 0.3], [0.3, 0.5]),
    21: ([0.98], [0.3]),  # an untrained new encoder: its codes unrelated to the old
    22: ([3.8, 1.5], [1.5, 3.8]),
    23: ([0.3], [-0.3]),
    24: ([0.0166, 4.6e-5], [1e-10, 4.6e-5]),  # SGD at lr 1e-12: every batch keeps its loss
    25: ([0.04, 0.36], [0.36, 0.04]),
    26: ([0.06, 0.36], [0.36, 0.06]),
    27: ([0.72, 0.51], [0.51, 0.72]),
    28: ([0.52, 0.51], [0.8, 0.51]),
}


def test_every_claim_has_a_world_with_and_without_its_effect():
    assert sorted(WORLDS) == list(range(len(CLAIMS)))
    for i, claim in enumerate(CLAIMS):
        assert all(len(v) == len(leaves(claim.ours)) for v in WORLDS[i]), claim.text


@pytest.mark.parametrize("index", range(len(CLAIMS)), ids=[f"{c.experiment}-{i}" for i, c in enumerate(CLAIMS)])
def test_every_claim_is_reproduced_with_its_effect_and_never_without(tmp_path, index):
    claim = CLAIMS[index]
    present, absent = WORLDS[index]
    judged = judge(claim, world(tmp_path / "with", claim, present))
    assert judged["verdict"] == REPRODUCED and judged["n"] == 3 and judged["seeds"] == list(SEEDS), judged
    judged = judge(claim, world(tmp_path / "without", claim, absent))
    assert judged["verdict"] != REPRODUCED and judged["n"] == 3, judged


def test_values_are_paired_by_seed_and_a_failed_seed_is_left_out(tmp_path):
    """A ratio divides each seed's top by the same seed's bottom; a seed whose run failed counts nowhere."""
    claim = Claim("x", "ratio", Ratio(Read("m", {"v": "a"}), Read("m", {"v": "b"})), Tolerance("above", 1.0, ""), "w")
    for seed, a, b in ((1, 4.0, 2.0), (2, 9.0, 3.0), (3, 100.0, 1.0)):
        write_job(tmp_path / "x", {"v": "a", "seed": str(seed)}, {"m": a})
        write_job(
            tmp_path / "x", {"v": "b", "seed": str(seed)}, {"m": b}, status="failed" if seed == 3 else "completed"
        )
    judged = judge(claim, Runs(tmp_path))
    assert judged["seeds"] == [1, 2] and judged["values"] == [2.0, 3.0]
    assert judged["scale"] == "log" and judged["mean"] == pytest.approx(6**0.5)  # a ratio: the geometric mean


def test_a_ratio_is_judged_on_the_log_scale():
    """SGD's oscillation over GD's was 361, 12073, 942, 525 and 274 over five seeds, every one far above 10:
    on the linear scale the t-interval reaches below 0 (inconclusive), on the log scale it is 136 to 5966."""
    from aecli.claims import mean_and_interval

    values = [361.4, 12073.0, 941.6, 525.1, 274.4]
    assert t_interval(values)[0] < 10
    mean, (lo, hi) = mean_and_interval(values, log_scale=True)
    assert (mean, lo, hi) == pytest.approx((900.4, 135.9, 5965.8), rel=1e-3)
    assert mean_and_interval([-1.0, 2.0], log_scale=True)[0] == 0.5  # a value <= 0: the linear scale


def test_a_difference_and_a_largest_pair_by_seed_too(tmp_path):
    value = Difference(Read("m", {"v": "a"}), Largest((Read("m", {"v": "b"}), Read("m", {"v": "c"}))))
    for seed, (a, b, c) in {1: (5.0, 1.0, 3.0), 2: (6.0, 4.0, 2.0)}.items():
        for v, m in zip("abc", (a, b, c)):
            write_job(tmp_path / "x", {"v": v, "seed": str(seed)}, {"m": m})
    assert value.per_seed(Runs(tmp_path), "x") == {1: 2.0, 2: 2.0}


def test_a_claim_across_experiments_pairs_their_seeds(tmp_path):
    claim = CLAIMS[15]  # mnist_wide's test MSE over mnist_bottleneck's
    assert claim.experiments() == {"mnist_wide", "mnist_bottleneck"}
    world(tmp_path, claim, [0.02, 0.06])
    judged = judge(claim, Runs(tmp_path))
    assert judged["n"] == 3 and judged["values"] == pytest.approx([1 / 3] * 3)


# ------------------------------------------------------------------ real runs: the measures need training
def run_job(root: Path, experiment: str, overrides: dict[str, str], *extra: str) -> dict:
    """A real (short) run in-process, as one sweep job of `experiment` under `root`; its summary."""
    from aecli.config import compose
    from aecli.pipeline import run

    folder = root / experiment
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / str(len(list(folder.iterdir())))
    job.mkdir()
    (job / ".hydra").mkdir()
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {k}={v}\n" for k, v in overrides.items()))
    args = [f"experiment={experiment}", "trainer.progress=false", "plots.enabled=false"]
    args += [f"{k}={v}" for k, v in overrides.items()] + list(extra)  # extra last: it may swap a model
    return run(compose(args), job).as_dict()


def test_sgd_that_learns_nothing_does_not_oscillate(tmp_path):
    """The old measure (std of the step-to-step change of log loss) passed with SGD at lr 1e-12, which learns
    nothing: batch-1 losses differ from sample to sample anyway. The revisit measure needs training."""
    small = ("dataset.n=20", "trainer.epochs=4", "model=small")
    claim = next(c for c in CLAIMS if c.experiment == "rectangle_gd_vs_sgd")
    for seed in (1, 2):
        run_job(tmp_path / "trained", "rectangle_gd_vs_sgd", {"variant": "gd", "seed": str(seed)}, *small)
        sgd = run_job(tmp_path / "trained", "rectangle_gd_vs_sgd", {"variant": "sgd", "seed": str(seed)}, *small)
        run_job(tmp_path / "frozen", "rectangle_gd_vs_sgd", {"variant": "gd", "seed": str(seed)}, *small)
        still = run_job(
            tmp_path / "frozen",
            "rectangle_gd_vs_sgd",
            {"variant": "sgd", "seed": str(seed)},
            *small,
            "optimizer.lr=1e-12",
        )
        assert still["metrics"]["step_log_loss_change_std"] > 0.5  # the old measure: as "oscillatory" as ever
        assert still["metrics"]["step_loss_revisit_change_std"] < 1e-6 < sgd["metrics"]["step_loss_revisit_change_std"]
    assert judge(claim, Runs(tmp_path / "trained"))["values"][0] > 10
    assert judge(claim, Runs(tmp_path / "frozen"))["verdict"] == NOT_REPRODUCED


def test_an_untrained_net_or_a_net_with_biases_fails_the_error_map_claims(tmp_path):
    linear = CLAIMS[0]
    for seed in (1, 2):
        run_job(tmp_path, "nonlinear_2d", {"dataset": "polynomial", "model": "linear", "seed": str(seed)},
                "trainer.epochs=0", "plots.error_map_resolution=40")  # fmt: skip
    assert judge(linear, Runs(tmp_path))["verdict"] == NOT_REPRODUCED
    origin = CLAIMS[5]
    for seed in (1, 2):  # the claim's model swapped for tanh with biases, trained a little
        run_job(tmp_path / "biased", "nonlinear_2d", {"dataset": "spiral", "model": "tanh_nobias", "seed": str(seed)},
                "model=tanh", "trainer.epochs=5", "plots.error_map_resolution=40")  # fmt: skip
        run_job(tmp_path / "nobias", "nonlinear_2d", {"dataset": "spiral", "model": "tanh_nobias", "seed": str(seed)},
                "trainer.epochs=0", "plots.error_map_resolution=40")  # fmt: skip
    assert judge(origin, Runs(tmp_path / "biased"))["verdict"] != REPRODUCED
    assert judge(origin, Runs(tmp_path / "nobias"))["verdict"] == REPRODUCED  # untrained too: 0 -> 0 is structural


def test_an_encoder_that_never_trained_does_not_relearn_the_map(tmp_path):
    claim = next(c for c in CLAIMS if c.ours == Read("code_rank_correlation_data"))
    small = ("dataset.n=40", "analyses.encoder_shift.resolution=10", "analyses.encoder_shift.n_z=50")
    source = ("+transfer.source.trainer.epochs=60",)
    for seed in (1, 2, 3):
        run_job(tmp_path / "trained", "rectangle_frozen_decoder", {"seed": str(seed)}, *small, *source,
                "trainer.epochs=60")  # fmt: skip
        run_job(tmp_path / "untrained", "rectangle_frozen_decoder", {"seed": str(seed)}, *small, *source,
                "trainer.epochs=0")  # fmt: skip
    trained, untrained = (judge(claim, Runs(tmp_path / w)) for w in ("trained", "untrained"))
    assert min(trained["values"]) > max(untrained["values"]) and untrained["verdict"] != REPRODUCED


def test_the_identity_baseline_is_the_masked_inputs_own_error(tmp_path, tiny_mnist):
    """Where inputs are corrupted, doing nothing (returning the masked input) is a baseline: it scored 0.0228
    against the denoiser's 0.047, and no baseline said so."""
    folder, _ = tiny_mnist
    summary = run_job(tmp_path, "mnist_denoising", {"seed": "1"}, f"dataset.root={folder}", "trainer.epochs=1")
    metrics = summary["metrics"]
    assert metrics["baseline_identity_loss"] == pytest.approx(metrics["test_mse_masked_vs_clean"], rel=1e-6)
    assert 0 < metrics["baseline_identity_loss"] < metrics["baseline_mean_loss"]
    plain = run_job(tmp_path / "plain", "mnist_wide", {"seed": "1"}, f"dataset.root={folder}", "trainer.epochs=1")
    assert "baseline_identity_loss" not in plain["metrics"]  # nothing corrupted, no identity baseline
    assert 0 < plain["metrics"]["baseline_pca_knn_accuracy"] <= 1
