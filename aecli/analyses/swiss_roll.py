"""swiss_roll study: how well the 3-2-3 MLP autoencoder rebuilds the roll it trained on, and a fresh roll.

Two analyses, named in conf/experiment/swiss_roll.yaml:
  training_roll  RMSE on the training roll and its decoded roll (decoded_training_roll.png; its 2-D
                 code is the run's latent.png: the validation set is the training roll)
  new_roll       the same for a freshly drawn roll (more points, more noise, its own min-max scaling),
                 with its code (encoded_new_roll.png) and decoded roll (decoded_new_roll.png)

Each RMSE is reported twice, because the study measured in a way that is easy to misread:
  <key>_rmse             eval mode: dropout off, BatchNorm with its running statistics (what the
                         trained model does when it is used);
  <key>_rmse_train_mode  train mode: dropout active (seeded), BatchNorm normalising with the
                         statistics of the batch itself: what the study printed, since its model
                         never left train mode. Computed on a copy, so the trained model's
                         BatchNorm running statistics stay untouched.

A smoke run (trainer.fast_dev_run) scores the first 200 points of the training roll and a new
roll of 200 points. Colours: viridis for the roll parameter t (the study's jet is not perceptually
uniform); nothing is drawn with plots.enabled=false (ctx.draw), the RMSEs are still computed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aecli.analyses import RunContext, evaluating  # noqa: E402
from aecli.errors import ConfigError  # noqa: E402
from aecli.models import Autoencoder  # noqa: E402
from aecli.reporting.plots import point_style, save_figure, tidy_ticks  # noqa: E402

CMAP = "viridis"  # the roll parameter t; perceptually uniform (the study used jet)


# ----------------------------------------------------------------- numbers
@torch.no_grad()
def reconstruct(
    model: Autoencoder, x: torch.Tensor, train_mode: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Codes and reconstructions of `x`, as numpy arrays.

    train_mode=False: eval mode on the model itself (its mode is restored afterwards).
    train_mode=True: train mode on a deep copy, with dropout drawn from `seed` without
    disturbing the global random state; BatchNorm then uses the batch statistics of `x`."""
    if train_mode:
        net = copy.deepcopy(model).train()  # a train-mode pass updates BatchNorm's running stats
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            code = net.encode(x)
            x_hat = net.decode(code)
    else:
        with evaluating(model):
            code = model.encode(x)
            x_hat = model.decode(code)
    return code.cpu().numpy(), x_hat.cpu().numpy()


def rmse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Root of the mean squared error over every coordinate of every point (the study's sqrt(MSELoss))."""
    return float(np.sqrt(np.mean((np.asarray(x_hat, dtype=np.float64) - np.asarray(x, dtype=np.float64)) ** 2)))


# ----------------------------------------------------------------- analyses
def training_roll(ctx: RunContext, train_mode_seed: Optional[int] = None) -> dict[str, float]:
    """RMSE (eval and train mode) on the roll the model trained on; writes decoded_training_roll.png
    (its code is latent.png). train_mode_seed: dropout seed, null = the run's seed."""
    seed = ctx.cfg.seed if train_mode_seed is None else train_mode_seed
    n = ctx.size(len(ctx.data.train), 200)
    return _report(
        ctx, ctx.data.train[:n].numpy(), ctx.data.train_color[:n], "train", "training roll", seed, draw_code=False
    )


def new_roll(
    ctx: RunContext,
    n: int = 2500,
    noise: float = 0.1,
    seed: Optional[int] = None,
    train_mode_seed: Optional[int] = None,
) -> dict[str, float]:
    """RMSE (eval and train mode) on a freshly drawn roll of n points with this noise, min-max scaled
    on its own (as the study did); writes encoded_new_roll.png and decoded_new_roll.png.
    seed: the new roll's draw, null = dataset.seed + 1 (never the training roll's draw)."""
    from aecli.data import SwissRoll  # the training roll's own recipe, drawn again

    if n < 2:
        raise ConfigError(f"analyses.new_roll.n={n} is not allowed: use at least 2 points")
    if noise < 0:
        raise ConfigError(f"analyses.new_roll.noise={noise} is not allowed: use a standard deviation >= 0")
    roll_seed = ctx.cfg.dataset.seed + 1 if seed is None else seed
    if roll_seed == ctx.cfg.dataset.seed:
        raise ConfigError(
            f"analyses.new_roll.seed={seed} is not allowed: it is the training roll's seed "
            "(dataset.seed); use another one or null"
        )
    roll = SwissRoll(n=ctx.size(n, 200), noise=noise, train_fraction=1.0, seed=roll_seed).build()
    dropout_seed = ctx.cfg.seed if train_mode_seed is None else train_mode_seed
    return _report(ctx, roll.train.numpy(), roll.train_color, "new_roll", "new roll", dropout_seed)


def _report(
    ctx: RunContext, points: np.ndarray, t: np.ndarray, key: str, label: str, seed: int, draw_code: bool = True
) -> dict[str, float]:
    """Both RMSEs of one roll and its figures (the code only where `draw_code`); metric keys start with `key`."""
    x = ctx.tensor(points)
    code, x_hat = reconstruct(ctx.model, x)
    _, x_hat_train = reconstruct(ctx.model, x, train_mode=True, seed=seed)
    x_np = x.cpu().numpy()
    err, err_train = rmse(x_np, x_hat), rmse(x_np, x_hat_train)
    metrics = {f"{key}_rmse": err, f"{key}_rmse_train_mode": err_train}
    if not ctx.draw:
        return metrics
    slug = label.replace(" ", "_")
    if draw_code:
        title = f"{ctx.title}: 2-D code of the {label} ({len(code)} points, eval mode)"
        plot_code(code, t, ctx.data.color_label, title, ctx.run_dir / f"encoded_{slug}.png", ctx.dpi)
    plot_decoded(
        x_np,
        x_hat,
        x_hat_train,
        t,
        ctx.data.color_label,
        label,
        err,
        err_train,
        ctx.run_dir / f"decoded_{slug}.png",
        ctx.dpi,
    )
    return metrics


# ----------------------------------------------------------------- figures
def plot_code(code: np.ndarray, t: np.ndarray, color_label: str, title: str, path: Path, dpi: int) -> None:
    """The 2-D code of every point, coloured by the roll parameter t."""
    fig, ax = plt.subplots(figsize=(6, 4.8))
    sc = ax.scatter(code[:, 0], code[:, 1], c=t, cmap=CMAP, **point_style(len(code)))
    bar = fig.colorbar(sc, ax=ax, label=color_label)
    if bar.solids is not None:
        bar.solids.set_alpha(1)  # the bar in full colour, whatever the points' opacity
    ax.set(xlabel="z1", ylabel="z2", title=title)
    tidy_ticks(ax)
    save_figure(fig, path, dpi)


def plot_decoded(
    x: np.ndarray,
    x_hat: np.ndarray,
    x_hat_train: np.ndarray,
    t: np.ndarray,
    color_label: str,
    label: str,
    err: float,
    err_train: float,
    path: Path,
    dpi: int,
) -> None:
    """Original roll beside its decoding in eval mode and in train mode (the study's), same colours."""
    panels = [
        (x, f"Original {label}"),
        (x_hat, f"Decoded {label}, eval mode\nRMSE {err:.4g}"),
        (x_hat_train, f"Decoded {label}, train mode (as the study)\nRMSE {err_train:.4g}"),
    ]
    everything = np.concatenate([x, x_hat, x_hat_train])
    limits = list(zip(everything.min(axis=0), everything.max(axis=0)))  # one scale for all three panels
    fig = plt.figure(figsize=(17, 5.6))
    for i, (pts, title) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 3, i, projection="3d")
        sc = ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=t, cmap=CMAP, s=4)
        ax.set(xlabel="x1", ylabel="x2", zlabel="x3", xlim=limits[0], ylim=limits[1], zlim=limits[2])
        ax.set_title(title)
        tidy_ticks(ax, nbins=4)
        ax.tick_params(labelsize=8)
    fig.colorbar(sc, ax=fig.axes, label=color_label, shrink=0.7, pad=0.06)
    save_figure(fig, path, dpi)
