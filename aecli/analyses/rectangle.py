"""The rectangle studies: what a 1-D code makes of 2-D data filling a rectangle.

Analyses (name them under `analyses:` in a config; see conf/experiment/rectangle_*.yaml):

  latent_over_inputs    the data in the input plane, coloured by its 1-D code
  decoder_image         the decoder's curve z -> x_hat(z), trained beside untrained, and how much
                        of the data the trained curve passes near (rectangle_capacity)
  encoder_shift         |z_new - z_old| of a retrained encoder under a frozen decoder, over a grid,
                        against the distance to the decoder's curve (rectangle_frozen_decoder)
  step_loss_variability the loss of every optimizer step and how much it jumps (rectangle_gd_vs_sgd)

The pure functions (`decoder_curve`, `distance_to_polyline`, `encoder_shift_grid`,
`log_step_variability`) carry the numbers; the analyses add figures and metrics. A smoke run
(trainer.fast_dev_run) uses the first 32 training points, 50 codes on each decoder curve and a
20 x 20 grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aecli.analyses import RunContext, decode, encode
from aecli.errors import ConfigError  # noqa: E402
from aecli.models import Autoencoder
from aecli.reporting.csv_files import read_columns
from aecli.reporting.plots import data_overlay, loss_scale, save_figure, tidy_ticks
from aecli.run_files import STEPS_FILE, confined  # noqa: E402

CMAP = "viridis"


# ------------------------------------------------------------------ numbers
def encode_1d(model: Autoencoder, x: torch.Tensor) -> np.ndarray:
    """The 1-D codes of `x` as a flat array, in eval mode."""
    return encode(model, x)[:, 0]


def decoder_curve(model: Autoencoder, z: np.ndarray) -> np.ndarray:
    """The decoder's output at exactly the codes `z` (shape (n,) for a 1-D code), as an (n, dim) array."""
    return decode(model, np.asarray(z).reshape(len(z), -1))


def distance_to_polyline(points: np.ndarray, curve: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance of each point to the polyline through `curve`'s rows, in order."""
    a, b = curve[:-1], curve[1:]  # segments a -> b
    ab = b - a
    length2 = np.maximum((ab**2).sum(axis=1), 1e-300)
    out = np.empty(len(points))
    for i in range(0, len(points), chunk):  # (chunk, segments) at a time keeps memory small
        p = points[i : i + chunk, None, :]
        t = np.clip(((p - a) * ab).sum(axis=2) / length2, 0.0, 1.0)
        nearest = a + t[..., None] * ab
        out[i : i + chunk] = np.sqrt(((p - nearest) ** 2).sum(axis=2)).min(axis=1)
    return out


def length_inside(curve: np.ndarray, extent: Sequence[float]) -> float:
    """Length of the polyline's segments that lie inside the box [xmin, xmax] x [ymin, ymax]
    (a segment counts when both its ends are inside: exact for a finely sampled curve)."""
    xmin, xmax, ymin, ymax = extent
    inside = (curve[:, 0] >= xmin) & (curve[:, 0] <= xmax) & (curve[:, 1] >= ymin) & (curve[:, 1] <= ymax)
    both = inside[:-1] & inside[1:]
    return float(np.linalg.norm(np.diff(curve, axis=0), axis=1)[both].sum())


def grid_points(extent: Sequence[float], resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xs, ys and the (resolution^2, 2) points of the grid, row i = ys[i] (bottom to top)."""
    xmin, xmax, ymin, ymax = extent
    xs, ys = np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.column_stack([gx.ravel(), gy.ravel()])


def encoder_shift_grid(
    old: Autoencoder, new: Autoencoder, points: np.ndarray, device: torch.device, dtype: torch.dtype
) -> np.ndarray:
    """|z_new - z_old| at each point: how far the new encoder moved each point's code."""
    x = torch.as_tensor(points).to(device, dtype)
    return np.abs(encode_1d(new, x) - encode_1d(old, x))


def log_step_variability(losses: np.ndarray) -> float:
    """Std of the step-to-step change of log(loss): 0 for a smooth geometric decay, large for jumps."""
    return float(np.std(np.diff(np.log(np.maximum(losses, 1e-300)))))


def revisit_variability(losses: np.ndarray, per_epoch: int, shuffled: bool) -> float:
    """Std of the change of each batch's log loss from one epoch to the next (the data in a fixed
    order: step t and step t + per_epoch train on the same points). Only training changes it: with no
    step taken, every batch's loss stays what it was, however much the batches differ from each other.
    nan for shuffled data (no batch comes back) or under two epochs of steps."""
    if shuffled or len(losses) <= per_epoch:
        return math.nan
    logs = np.log(np.maximum(losses, 1e-300))
    return float(np.std(logs[per_epoch:] - logs[:-per_epoch]))


def _training_points(ctx: RunContext) -> np.ndarray:
    """The training data: all of it, or the first 32 points in a smoke run."""
    x = ctx.data.train.numpy()
    return x[: ctx.size(len(x), 32)]


def _model_label(ctx: RunContext) -> str:
    dims = list(ctx.cfg.model.hidden_sizes)
    return f"{ctx.cfg.model.name} (enc/dec dims {dims})"


def _codes(z_min: float, z_max: float, n_z: int) -> np.ndarray:
    if not (z_max > z_min and n_z >= 2):
        raise ConfigError(f"z_min={z_min}, z_max={z_max}, n_z={n_z} is not allowed: use z_max > z_min and n_z >= 2.")
    return np.linspace(z_min, z_max, n_z)


def _require_1d_code(ctx: RunContext, analysis: str) -> None:
    if ctx.cfg.model.latent_dim != 1 or ctx.data.dim != 2:
        raise ConfigError(
            f"model.latent_dim={ctx.cfg.model.latent_dim} is not allowed: the {analysis} analysis "
            f"needs a 1-D code of 2-D data"
        )


# ----------------------------------------------------------------- analyses
def latent_over_inputs(
    ctx: RunContext, extent: Sequence[float] = (-2, 2, -1, 1), file: str = "latent_in_input_space.png"
) -> dict[str, float]:
    """The training data in the input plane coloured by its code: how the code runs through the box."""
    _require_1d_code(ctx, "latent_over_inputs")
    x = _training_points(ctx)
    z = encode_1d(ctx.model, ctx.tensor(x))
    metrics = {"code_min": float(z.min()), "code_max": float(z.max())}
    if not ctx.draw:
        return metrics
    fig, ax = plt.subplots(figsize=(8, 5))
    sc = ax.scatter(x[:, 0], x[:, 1], c=z, cmap=CMAP, s=25)
    fig.colorbar(sc, ax=ax, label="latent value z")
    ax.set(
        xlim=extent[:2],
        ylim=extent[2:],
        xlabel="x1",
        ylabel="x2",
        title=f"Latent value of the training data in the input space\nmodel: {_model_label(ctx)}",
    )
    ax.grid(alpha=0.3)
    tidy_ticks(ax)
    save_figure(fig, confined(ctx.run_dir, file), ctx.dpi)
    return metrics


def decoder_image(
    ctx: RunContext,
    z_min: float = -10.0,
    z_max: float = 10.0,
    n_z: int = 1000,
    extent: Sequence[float] = (-2, 2, -1, 1),
    near: float = 0.1,
    file: str = "decoder_image.png",
) -> dict[str, float]:
    """The decoder's image of z in [z_min, z_max] in the input plane, trained beside untrained.

    Metrics (trained, and `untrained_` for the initial net): the curve's length inside the data
    box `extent`, the share of training points within `near` of the curve, and their mean
    distance to it. A net with more capacity bends its curve through more of the data."""
    _require_1d_code(ctx, "decoder_image")
    z = _codes(z_min, z_max, ctx.size(n_z, 50))
    x = _training_points(ctx).astype(np.float64)
    metrics: dict[str, float] = {}
    curves = {}
    for model, prefix in [(ctx.model, ""), (ctx.initial_model, "untrained_")]:
        curve = curves[prefix] = decoder_curve(model, z)
        dist = distance_to_polyline(x, curve)
        metrics[f"{prefix}curve_length_in_box"] = length_inside(curve, extent)
        metrics[f"{prefix}data_near_curve_share"] = float(np.mean(dist < near))
        metrics[f"{prefix}data_curve_distance_mean"] = float(dist.mean())
    if not ctx.draw:
        return metrics
    fig, axes = plt.subplots(1, 2, figsize=(15, 5), layout="constrained")
    for ax, state, prefix in [(axes[0], "trained", ""), (axes[1], "untrained", "untrained_")]:
        curve = curves[prefix]
        ax.scatter(x[:, 0], x[:, 1], s=12, c="0.8", label="training data")
        sc = ax.scatter(curve[:, 0], curve[:, 1], c=z, cmap=CMAP, s=6, label=f"decoder(z), z in [{z_min:g}, {z_max:g}]")
        ax.set(
            xlim=extent[:2],
            ylim=extent[2:],
            xlabel="x1",
            ylabel="x2",
            title=f"{state}: {metrics[f'{prefix}data_near_curve_share']:.0%} of the data within {near:g} of the curve",
        )
        ax.grid(alpha=0.3)
        tidy_ticks(ax)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    fig.colorbar(sc, ax=axes, label="latent value z", shrink=0.9)
    fig.suptitle(f"Latent space embedded in the input space, model: {_model_label(ctx)}")
    save_figure(fig, confined(ctx.run_dir, file), ctx.dpi)
    return metrics


def encoder_shift(
    ctx: RunContext,
    extent: Sequence[float] = (-5, 5, -5, 5),
    resolution: int = 100,
    z_min: float = -10.0,
    z_max: float = 10.0,
    n_z: int = 1000,
    near: float = 0.1,
    far: float = 1.0,
    file: str = "encoder_shift.png",
) -> dict[str, float]:
    """|z_new - z_old| over a grid, z_old from the source run's encoder and z_new from this run's
    (trained under the source's frozen decoder), with the decoder's curve on top.

    Metrics: the mean shift on the training points, on grid points within `near` of the curve
    and further than `far` from it, the rank correlation of shift with distance to the curve, and
    |rank correlation| of the new codes with the old on the training points (1: the same map, up
    to a monotone change of the code)."""
    if ctx.source_model is None:
        raise ConfigError(
            "transfer.decoder_from=None is not allowed: the encoder_shift analysis compares this run's "
            "encoder with the source run's, so name one (a run folder, a checkpoint, or `train`)"
        )
    _require_1d_code(ctx, "encoder_shift")
    resolution = ctx.size(resolution, 20)
    xs, ys, grid = grid_points(extent, resolution)
    shift = encoder_shift_grid(ctx.source_model, ctx.model, grid, ctx.device, ctx.dtype)
    curve = decoder_curve(ctx.model, _codes(z_min, z_max, ctx.size(n_z, 50)))  # the frozen decoder
    dist = distance_to_polyline(grid, curve)
    x = _training_points(ctx).astype(np.float64)
    data_shift = encoder_shift_grid(ctx.source_model, ctx.model, x, ctx.device, ctx.dtype)
    old_codes, new_codes = (encode_1d(m, ctx.tensor(x)) for m in (ctx.source_model, ctx.model))
    # near: within `near` of the curve, or the closest 1% of the grid where none is that close (a coarse grid)
    is_near, is_far = dist < max(near, float(np.quantile(dist, 0.01))), dist > far
    metrics = {
        "shift_mean_data": float(data_shift.mean()),
        "shift_mean_grid": float(shift.mean()),
        "shift_mean_near_curve": float(shift[is_near].mean()) if is_near.any() else float("nan"),
        "shift_mean_far_from_curve": float(shift[is_far].mean()) if is_far.any() else float("nan"),
        "shift_distance_rank_correlation": rank_correlation(shift, dist),
        # the same map up to equivalence (a monotone reparametrization of the code, flipped or not)
        "code_rank_correlation_data": abs(rank_correlation(new_codes, old_codes)),
    }
    if ctx.draw:
        draw_encoder_shift(ctx, shift.reshape(resolution, resolution), extent, curve, x, (z_min, z_max), file)
    return metrics


def draw_encoder_shift(
    ctx: RunContext,
    shift: np.ndarray,
    extent: Sequence[float],
    curve: np.ndarray,
    x: np.ndarray,
    z_range: tuple[float, float],
    file: str,
) -> None:
    """The shift over the grid, the frozen decoder's curve (red) and the training data on top."""
    fig, ax = plt.subplots(figsize=(7.5, 6))
    im = ax.imshow(
        shift,
        origin="lower",
        extent=(extent[0], extent[1], extent[2], extent[3]),
        cmap=CMAP,
        interpolation="nearest",
        aspect="auto",
    )
    fig.colorbar(im, ax=ax, label="|z_new - z_old|")
    label = f"frozen decoder's curve, z in [{z_range[0]:g}, {z_range[1]:g}]"
    ax.plot(curve[:, 0], curve[:, 1], color="red", lw=1.5, label=label)
    data_overlay(ax, x)
    ax.set(
        xlim=extent[:2],
        ylim=extent[2:],
        xlabel="x1",
        ylabel="x2",
        title=f"Code change of a new encoder under the frozen decoder\n{ctx.title}",
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)
    save_figure(fig, confined(ctx.run_dir, file), ctx.dpi)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order: fine for continuous values); nan when
    either side is constant, where no ranking exists."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def step_loss_variability(ctx: RunContext, file: str = "loss_per_step.png") -> dict[str, float]:
    """The loss of every optimizer step on a 0-1 axis (share of training), and how much it jumps
    from step to step: full-batch gradient descent descends smoothly, batch-1 SGD oscillates."""
    steps = read_columns(ctx.run_dir / STEPS_FILE, ["epoch", "loss"])[0]  # torn rows left out, with a warning
    losses = steps["loss"]
    if len(losses) < (1 if ctx.fast_dev_run else 2):  # a smoke run of full-batch GD takes one step
        raise ConfigError(
            f"trainer.log_steps={ctx.cfg.trainer.log_steps} is not allowed: the "
            f"step_loss_variability analysis needs trainer.log_steps=true and at least 2 steps"
        )
    tail = losses[-max(1, len(losses) // 100) :]  # the last 1% of steps
    metrics = {
        "steps_logged": float(len(losses)),
        "step_log_loss_change_std": log_step_variability(losses) if len(losses) > 1 else math.nan,
        "final_step_loss_mean": float(tail.mean()),
    }
    per_epoch = int((steps["epoch"] == steps["epoch"][0]).sum())  # the first epoch's steps (every epoch's)
    revisit = revisit_variability(losses, per_epoch, bool(ctx.cfg.trainer.shuffle))
    if not math.isnan(revisit):  # shuffled data, or a single epoch: no batch comes back, no number
        metrics["step_loss_revisit_change_std"] = revisit
    if ctx.draw:
        draw_step_losses(ctx, losses, file)
    return metrics


def draw_step_losses(ctx: RunContext, losses: np.ndarray, file: str) -> None:
    """The loss of every step on a 0-1 share-of-training axis, log scale where it spans decades."""
    t = ctx.cfg.trainer
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(
        np.linspace(0, 1, len(losses)),
        losses,
        "o-" if len(losses) < 30 else "-",
        ms=3,
        lw=0.6,
        alpha=0.7,
        label=f"{ctx.cfg.optimizer.name}, batch {t.batch_size}, lr {ctx.cfg.optimizer.lr:g}",
    )
    loss_scale(ax, list(losses))
    ax.set(
        xlabel="share of training steps (0 = first, 1 = last)",
        ylabel=f"{t.loss} loss of the step's batch",
        title=f"{ctx.title}: loss per optimizer step ({len(losses)} steps)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", framealpha=0.85)
    save_figure(fig, confined(ctx.run_dir, file), ctx.dpi)
