"""The studies' claims as data, and how a reproduction judges each one over seeds.

A claim is a statement from a study's words or figure turned into one number per seed (`ours`: a
metric a run reports, or a ratio, difference or maximum of such metrics), and a tolerance saying what
the number must be for the claim to hold, with the reason for it. Every experiment runs once per seed
(`aecli-reproduce --seeds N`); a claim's values are paired by seed across the jobs it reads.

The verdict comes from the 95% t-interval of the mean over the seeds (Student's t with n-1 degrees
of freedom): "reproduced" when the whole interval lies where the tolerance accepts, "not reproduced"
when none of it does, "inconclusive" when it straddles the edge. A ratio's values multiply rather
than add (SGD's oscillation was 270 to 12,000 times GD's over five seeds), so for a ratio of
positive values the mean and its interval are those of the log ratio, taken back: the geometric
mean and its interval. One seed gives a point, no spread.

    runs = Runs.read(out)                            # every experiment's jobs, by seed
    judged = judge(claim, runs)                      # values, mean, interval, verdict
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

from aecli.reporting.jobs import number, read_jobs, read_summary

CONFIDENCE = 0.95
INTERVAL_RULE = (
    "95% t-interval of the mean over seeds (Student's t, n-1 degrees of freedom; for a ratio, of the mean "
    "log ratio: the geometric mean's); reproduced: the whole interval lies inside what the tolerance "
    "accepts; not reproduced: none of it does; inconclusive: it straddles the edge"
)
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


# ------------------------------------------------------------------------------------ the runs
@dataclass
class Runs:
    """The summaries of a reproduction's runs: experiment -> [(overrides, summary, folder)], every job
    of its sweep (or the one run of an older, unswept reproduction)."""

    out: Path
    jobs: dict[str, list[tuple[dict[str, str], dict[str, Any], Path]]] = field(default_factory=dict)

    def of(self, experiment: str) -> list[tuple[dict[str, str], dict[str, Any], Path]]:
        if experiment not in self.jobs:
            folder = self.out / experiment
            if (folder / "summary.json").is_file():  # one run, not a sweep over seeds
                summary = read_summary(folder / "summary.json")[0] or {}
                self.jobs[experiment] = [({}, summary, folder)]
            else:
                jobs = read_jobs(folder) if folder.is_dir() else []
                self.jobs[experiment] = [(j["overrides"], j["summary"], j["dir"]) for j in jobs]
        return self.jobs[experiment]


def seed_of(overrides: dict[str, str], summary: dict[str, Any]) -> Optional[int]:
    """A run's seed: its `seed=` override, else the seed its summary records."""
    value = overrides.get("seed", summary.get("seed"))
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------ numbers per seed
@dataclass(frozen=True)
class Read:
    """One metric per seed: a summary field or analysis metric (summary.json `metrics`) of the jobs whose
    overrides include `job` (one job per seed), in `experiment` (empty: the claim's own) and `folder`
    under each job (e.g. "source" for a transfer's source run)."""

    metric: str
    job: dict[str, str] = field(default_factory=dict)
    experiment: str = ""
    folder: str = ""
    scale: float = 1.0  # e.g. 1 / 10,000 to put a study's per-epoch total on our per-curve scale

    def label(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.job.items())
        return f"{self.experiment + ' ' if self.experiment else ''}`{self.metric}`" + (f" ({where})" if where else "")

    def per_seed(self, runs: Runs, experiment: str) -> dict[int, float]:
        """seed -> value, for every seed whose run completed and reports the metric as a number."""
        found: dict[int, float] = {}
        for overrides, summary, folder in runs.of(self.experiment or experiment):
            if not self.job.items() <= overrides.items():
                continue
            seed = seed_of(overrides, summary)
            if self.folder:
                summary = read_summary(folder / self.folder / "summary.json")[0] or {}
            if seed is None or summary.get("status") != "completed":
                continue
            value = number(summary.get(self.metric, (summary.get("metrics") or {}).get(self.metric)))
            if value is not None:
                found[seed] = value * self.scale
        return found

    def experiments(self, experiment: str) -> set[str]:
        return {self.experiment or experiment}


@dataclass(frozen=True)
class Pair:
    """Two values combined seed by seed, for the seeds both have (a Ratio or a Difference)."""

    first: Value
    second: Value
    symbol: ClassVar[str] = ""

    def combine(self, a: float, b: float) -> Optional[float]:
        raise NotImplementedError

    def label(self) -> str:
        return f"{self.first.label()} {self.symbol} {self.second.label()}"

    def per_seed(self, runs: Runs, experiment: str) -> dict[int, float]:
        a, b = self.first.per_seed(runs, experiment), self.second.per_seed(runs, experiment)
        combined = {s: self.combine(a[s], b[s]) for s in sorted(a.keys() & b.keys())}
        return {s: v for s, v in combined.items() if v is not None}

    def experiments(self, experiment: str) -> set[str]:
        return self.first.experiments(experiment) | self.second.experiments(experiment)


class Ratio(Pair):
    """`top / bottom`: how a claim in words ("L1 is sparser than none") becomes a number (a seed whose
    bottom is 0 has none)."""

    symbol = "/"

    def combine(self, a: float, b: float) -> Optional[float]:
        return a / b if b != 0 else None

    @property
    def top(self) -> Value:
        return self.first

    @property
    def bottom(self) -> Value:
        return self.second


class Difference(Pair):
    """`first - second` ("above every other net's")."""

    symbol = "−"

    def combine(self, a: float, b: float) -> Optional[float]:
        return a - b


@dataclass(frozen=True)
class Largest:
    """The largest of several values, seed by seed (for seeds every one of them has)."""

    values: tuple[Value, ...]
    name: str = ""  # a short label, where listing every value would be long

    def label(self) -> str:
        return self.name or "max(" + ", ".join(v.label() for v in self.values) + ")"

    def per_seed(self, runs: Runs, experiment: str) -> dict[int, float]:
        each = [v.per_seed(runs, experiment) for v in self.values]
        seeds = set.intersection(*(set(e) for e in each)) if each else set()
        return {s: max(e[s] for e in each) for s in sorted(seeds)}

    def experiments(self, experiment: str) -> set[str]:
        return set().union(*(v.experiments(experiment) for v in self.values))


Value = Union[Read, Ratio, Difference, Largest]


# ------------------------------------------------------------------------------------ tolerances
@dataclass(frozen=True)
class Tolerance:
    """What the mean over seeds must be, and why. `above` / `below`: beyond `value` (a claim in words,
    as a direction); `relative` / `absolute`: within `value` of the study's number (as a share of it, or
    in its units), or of `target` where the study gave words; `between`: in [value, upper]."""

    kind: Literal["relative", "absolute", "above", "below", "between"]
    value: float
    why: str
    target: Optional[float] = None
    upper: Optional[float] = None

    def accepted(self, reference: Optional[float]) -> tuple[float, float]:
        """The range of means the claim accepts (open at an `above`/`below` edge); nan where the
        study's number is missing."""
        if self.kind == "above":
            return self.value, math.inf
        if self.kind == "below":
            return -math.inf, self.value
        if self.kind == "between":
            return self.value, float(self.upper if self.upper is not None else math.inf)
        centre = self.target if self.target is not None else reference
        if centre is None:
            return math.nan, math.nan
        spread = self.value * abs(centre) if self.kind == "relative" else self.value
        return centre - spread, centre + spread

    def text(self) -> str:
        if self.kind == "above":
            return f"> {self.value:g}"
        if self.kind == "below":
            return f"< {self.value:g}"
        if self.kind == "between":
            return f"{self.value:g} to {self.upper:g}"
        spread = f"{self.value:.0%}" if self.kind == "relative" else f"{self.value:g}"
        return (f"{self.target:g} " if self.target is not None else "") + f"± {spread}"


def mean_and_interval(values: Sequence[float], log_scale: bool) -> tuple[Optional[float], tuple[float, float]]:
    """The mean and its t-interval; on the log scale (the geometric mean and its interval) where asked and
    every value is positive."""
    if log_scale and values and all(v > 0 for v in values):
        lo, hi = t_interval([math.log(v) for v in values])
        return math.exp(sum(math.log(v) for v in values) / len(values)), (math.exp(lo), math.exp(hi))
    return (sum(values) / len(values) if values else None), t_interval(values)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The two-sided t-interval of the mean; a point for one value; (nan, nan) for none."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, mean
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def verdict(interval: tuple[float, float], accepted: tuple[float, float], kind: str) -> str:
    """reproduced, not reproduced or inconclusive: where the interval lies against the accepted range.
    An `above`/`below` edge itself is not accepted (the claim is a strict direction)."""
    lo, hi = interval
    a, b = accepted
    if any(math.isnan(x) for x in (lo, hi, a, b)):
        return INCONCLUSIVE
    strict_low, strict_high = kind == "above", kind == "below"
    inside = (lo > a if strict_low else lo >= a) and (hi < b if strict_high else hi <= b)
    outside = (hi <= a if strict_low else hi < a) or (lo >= b if strict_high else lo > b)
    return REPRODUCED if inside else NOT_REPRODUCED if outside else INCONCLUSIVE


# ------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """One row of the reproduction table: what the study says (`study`: its number, or its words), the
    number of ours per seed that answers it, and the tolerance; `figure`: the figure beside it (a file
    of the runs it reads, or of the sweep's report)."""

    experiment: str
    text: str
    ours: Value
    tolerance: Tolerance
    study: Union[float, str]
    study_note: str = ""  # where the study's number comes from, when it is not printed as is
    figure: str = ""

    def experiments(self) -> set[str]:
        return self.ours.experiments(self.experiment)


def judge(claim: Claim, runs: Runs) -> dict[str, Any]:
    """The claim judged over the seeds it has values for: reproduction.json's record of it."""
    per_seed = claim.ours.per_seed(runs, claim.experiment)
    values = [per_seed[s] for s in sorted(per_seed)]
    log_scale = isinstance(claim.ours, Ratio) and bool(values) and all(v > 0 for v in values)
    mean, interval = mean_and_interval(values, log_scale)
    reference = claim.study if isinstance(claim.study, float) else None
    accepted = claim.tolerance.accepted(reference)
    return {
        "study": claim.experiment,
        "claim": claim.text,
        "study_says": claim.study,
        "study_note": claim.study_note,
        "metric": claim.ours.label(),
        "seeds": sorted(per_seed),
        "values": values,
        "n": len(values),
        "mean": mean,  # a ratio's: the geometric mean
        "scale": "log" if log_scale else "linear",
        "interval": [None if math.isnan(x) else x for x in interval],
        "tolerance": claim.tolerance.text(),
        "accepted": [None if not math.isfinite(x) else x for x in accepted],
        "why": claim.tolerance.why,
        "verdict": verdict(interval, accepted, claim.tolerance.kind),  # no value at all: inconclusive
        "figure": claim.figure,
    }


SEED_SPREAD = (
    "one unseeded run of the study against runs over seeds here; the study's own cell, rerun with other seeds, "
    "ends its first 500 epochs at over twice the loss it printed (docs/studies/swiss_roll.md)"
)
BETA_LOSS = "the study's last five epochs alone spread over 1677 to 1833 (±5%); twice that"
RESIDUAL = "a fit of another random draw of the family, so the residual may move a little; 10%"
DIRECTION = "a direction: "
NONLINEAR = ("relu", "relu_nobias", "tanh", "tanh_nobias")


def _share(dataset: str, model: str) -> Read:
    return Read("error_map_share_below_threshold", {"dataset": dataset, "model": model})


def _above_nonlinear(dataset: str) -> Difference:
    others = Largest(tuple(_share(dataset, m) for m in NONLINEAR), f"the largest of the other models' ({dataset})")
    return Difference(_share(dataset, "linear"), others)


CLAIMS: tuple[Claim, ...] = (
    Claim("nonlinear_2d", "no activation: the linear 2-3-2 net learns the identity, error < 0.1 over most of "
          "the window (share of the window; polynomial)", _share("polynomial", "linear"),
          Tolerance("above", 0.5, "\"low error over the whole window\": over half of it at least"),
          "low error over the whole window (figure)", figure="comparison_error_map.png"),
    Claim("nonlinear_2d", "the same on the spiral", _share("spiral", "linear"),
          Tolerance("above", 0.5, "\"low error over the whole window\": over half of it at least"),
          "low error over the whole window (figure)", figure="comparison_error_map.png"),
    Claim("nonlinear_2d", "the linear net's low-error share is above every non-linear net's (polynomial)",
          _above_nonlinear("polynomial"), Tolerance("above", 0.0, DIRECTION + "linear above the largest other"),
          "only the linear net is good everywhere (figure)", figure="comparison_error_map.png"),
    Claim("nonlinear_2d", "the same on the spiral", _above_nonlinear("spiral"),
          Tolerance("above", 0.0, DIRECTION + "linear above the largest other"),
          "only the linear net is good everywhere (figure)", figure="comparison_error_map.png"),
    Claim("nonlinear_2d", "ReLU confines the low error to a curve-shaped region: its share of the window / "
          "the linear net's (polynomial)", Ratio(_share("polynomial", "relu"), _share("polynomial", "linear")),
          Tolerance("below", 0.5, "\"confined\": at most half of the window the linear net covers"),
          "a region along the curve (figure)", figure="comparison_error_map.png"),
    Claim("nonlinear_2d", "tanh without biases: the low-error region passes through the origin (spiral), "
          "exactly: reconstruction error at (0, 0)",
          Read("error_at_origin", {"dataset": "spiral", "model": "tanh_nobias"}),
          Tolerance("below", 1e-6, "a net without biases maps 0 to 0: zero up to rounding (a trained tanh net "
                    "with biases misses it by about 2e-3)"),
          "a region through the origin (figure)", figure="comparison_error_map.png"),
    Claim("swiss_roll", "RMSE on the training roll (train mode, as the study measured)",
          Read("train_rmse_train_mode"), Tolerance("relative", 0.2, SEED_SPREAD), 0.06634),
    Claim("swiss_roll", "RMSE on a new roll, 2500 points, noise 0.1 (train mode)",
          Read("new_roll_rmse_train_mode"), Tolerance("relative", 0.2, SEED_SPREAD), 0.08295),
    Claim("swiss_roll", "training loss at epoch 5000 (train mode)",
          Read("final_train_loss"), Tolerance("relative", 0.2, SEED_SPREAD), 0.004369),
    Claim("swiss_roll", "the decoded roll the study draws (dropout off, the net in use) is closer than in "
          "train mode: RMSE on the training roll, eval / train mode",
          Ratio(Read("train_rmse"), Read("train_rmse_train_mode")),
          Tolerance("below", 1.0, DIRECTION + "dropout off reconstructs better"),
          "original vs decoded roll (figure)", figure="decoded_training_roll.png"),
    Claim("beta_curves", "Nelder-Mead over the decoder's 2-D input fits Beta(2, 4): residual norm",
          Read("inversion_residual"), Tolerance("relative", 0.1, RESIDUAL), 0.08783),
    Claim("beta_curves", "loss of the last epoch, per curve", Read("final_train_loss"),
          Tolerance("relative", 0.1, BETA_LOSS), 0.17454, study_note="1745.3988 summed over 10,000 curves"),
    Claim("mnist_bottleneck", "a 2-D code reconstructs \"just OK\": test MSE / the mean image's",
          Ratio(Read("test_mse"), Read("baseline_mean_loss")),
          Tolerance("below", 0.9, "\"just OK\": clearly better than predicting the mean image, by 10% at least"),
          "just OK", figure="reconstruction.png"),
    Claim("mnist_bottleneck", "a net is \"much more powerful\" than PCA (non-linear): test MSE / PCA's with the "
          "same 2-D code", Ratio(Read("final_val_loss"), Read("baseline_pca_loss")),
          Tolerance("below", 1.0, DIRECTION + "the net must at least beat PCA of the same code size"),
          "much more powerful than PCA"),
    Claim("mnist_bottleneck", "the 2-D codes form clear digit groups: 5-NN digit accuracy on them / on PCA's "
          "2-D codes", Ratio(Read("latent_knn_accuracy"), Read("baseline_pca_knn_accuracy")),
          Tolerance("above", 1.0, DIRECTION + "the codes separate digits better than PCA's of the same size"),
          "clear, overlapping digit groups (figure)", figure="latent.png"),
    Claim("mnist_wide", "a 128-D code and 256 hidden units reconstruct better than the 2-D bottleneck: test "
          "MSE, wide / bottleneck", Ratio(Read("test_mse"), Read("test_mse", experiment="mnist_bottleneck")),
          Tolerance("below", 1.0, DIRECTION + "the wider code reconstructs better"),
          "reconstructions (figure)", figure="reconstruction.png"),
    Claim("mnist_wide", "\"a more expressive version of PCA\": test MSE / PCA's with the same 128-D code",
          Ratio(Read("final_val_loss"), Read("baseline_pca_loss")),
          Tolerance("below", 1.0, DIRECTION + "the net must at least beat PCA of the same code size"),
          "a more expressive version of PCA"),
    Claim("mnist_wide", "the first 3 of 128 coordinates mix the digits, so the groups live in all 128: "
          "5-NN digit accuracy on the 128-D codes", Read("latent_knn_accuracy"),
          Tolerance("above", 0.9, "digits apart in the full code: 9 test images in 10 among their own (chance: 1)"),
          "a 3-D view of the code (figure)", figure="latent.png"),
    Claim("mnist_denoising", "the denoiser restores masked images: MSE against the clean images from inputs "
          "with 20% of pixels masked / the masked input's own", Ratio(Read("test_mse_noisy_input"),
                                                                       Read("baseline_identity_loss")),
          Tolerance("below", 1.0, DIRECTION + "better than returning the masked input as it is"),
          "masked, reconstructed and clean images (figure)", figure="denoising.png"),
    Claim("rectangle_capacity", "pca converges much more slowly: final MSE, pca / big",
          Ratio(Read("final_val_loss", {"model": "pca"}), Read("final_val_loss", {"model": "big"})),
          Tolerance("above", 2.0, "\"much slower\": after the same 1000 epochs, at least twice the big net's MSE"),
          "much slower convergence for PCA"),
    Claim("rectangle_capacity", "more capacity, more bends: data within 0.1 of the decoder's curve, big / small",
          Ratio(Read("data_near_curve_share", {"model": "big"}), Read("data_near_curve_share", {"model": "small"})),
          Tolerance("above", 1.0, DIRECTION + "big covers more data than small"), "more breakpoints in the curve",
          figure="comparison_decoder_image.png"),
    Claim("rectangle_frozen_decoder", "a new encoder for a frozen decoder relearns approximately the same map, up "
          "to equivalence: |rank correlation| of new and old codes on the data",
          Read("code_rank_correlation_data"),
          Tolerance("above", 0.9, "\"approximately the same mapping\": the codes' order kept almost everywhere"),
          "the encoder will relearn approximately the same mapping"),
    Claim("rectangle_frozen_decoder", "the further from the decoder's image, the larger the shift: "
          "mean shift > 1 from the curve / < 0.1 from it",
          Ratio(Read("shift_mean_far_from_curve"), Read("shift_mean_near_curve")),
          Tolerance("above", 1.0, DIRECTION + "far points move more than near ones"),
          "the further from the image of the decoder, the higher the change", figure="encoder_shift.png"),
    Claim("rectangle_frozen_decoder", "the same as a rank correlation of shift with distance to the curve",
          Read("shift_distance_rank_correlation"), Tolerance("above", 0.0, DIRECTION + "a positive rank correlation"),
          "the further, the higher the change", figure="encoder_shift.png"),
    Claim("rectangle_gd_vs_sgd", "SGD (batch 1) oscillates, GD is smooth: std of the change of each batch's log "
          "loss from one epoch to the next (only training changes it), SGD / GD",
          Ratio(Read("step_loss_revisit_change_std", {"variant": "sgd"}),
                Read("step_loss_revisit_change_std", {"variant": "gd"})),
          Tolerance("above", 10.0, "\"highly\": an order of magnitude at least"), "SGD loss is highly oscillatory",
          figure="comparison_step_losses.png"),
    Claim("activation_penalty", "both penalties shrink the activations: mean |h|, L1 / none",
          Ratio(Read("mean_abs_activation", {"regularizer": "activation_l1"}),
                Read("mean_abs_activation", {"regularizer": "none"})),
          Tolerance("below", 1.0, DIRECTION + "smaller than no penalty"), "smaller activations on average (both)"),
    Claim("activation_penalty", "the same for L2: mean |h|, L2 / none",
          Ratio(Read("mean_abs_activation", {"regularizer": "activation_l2"}),
                Read("mean_abs_activation", {"regularizer": "none"})),
          Tolerance("below", 1.0, DIRECTION + "smaller than no penalty"), "smaller activations on average (both)"),
    Claim("activation_penalty", "an L1 activation penalty makes activations sparse: share |h| < 1e-3, L1 / none",
          Ratio(Read("sparsity", {"regularizer": "activation_l1"}), Read("sparsity", {"regularizer": "none"})),
          Tolerance("above", 1.0, DIRECTION + "L1 sparser than no penalty"), "sparse activations with L1",
          figure="comparison_activations.png"),
    Claim("activation_penalty", "an L2 penalty barely differs from none: sparsity, L2 / none",
          Ratio(Read("sparsity", {"regularizer": "activation_l2"}), Read("sparsity", {"regularizer": "none"})),
          Tolerance("relative", 0.1, "\"minimal difference\": within 10% of no penalty's sparsity", target=1.0),
          "minimal difference from no penalty", figure="comparison_activations.png"),
)  # fmt: skip
