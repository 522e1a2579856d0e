"""beta_curves study: what the 2-D code of Beta log-pdf curves looks like, and whether the decoder
alone can stand in for the Beta family (find the code of a curve it never saw).

Two analyses, named in conf/experiment/beta_curves.yaml:
  latent_histograms  one histogram per code coordinate over every curve (latent_histograms.png)
  latent_inversion   Nelder-Mead over the decoder's input until the decoded curve matches the
                     log-pdf of Beta(alpha, beta); the residual, the code found and the
                     evaluations it took (latent_inversion.png)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional, TypedDict, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from aecli.analyses import RunContext, encode, evaluating  # noqa: E402
from aecli.errors import ConfigError  # noqa: E402
from aecli.reporting.plots import save_figure, tidy_ticks  # noqa: E402


# ----------------------------------------------------------------- numbers
class Inversion(TypedDict):
    """What `invert_decoder` found."""

    code: np.ndarray  # the code whose decoding is nearest the target
    residual: float  # the norm at the code
    decoded: np.ndarray  # the curve decoded from the code
    nfev: int  # decoder evaluations Nelder-Mead took


def invert_decoder(
    decoder: nn.Module,
    target: np.ndarray,
    start: Sequence[float],
    device: torch.device,
    dtype: torch.dtype,
    maxiter: Optional[int] = None,
) -> Inversion:
    """The code whose decoding is nearest `target` (Euclidean norm), by Nelder-Mead from `start`,
    stopping after `maxiter` iterations if given (None: scipy's own limit, 200 per code coordinate).

    Returns code, residual (the norm at the code), decoded (the curve there) and nfev."""
    from scipy.optimize import minimize

    target = np.asarray(target, dtype=np.float64)

    def decode(code: np.ndarray) -> np.ndarray:
        z = torch.as_tensor(np.asarray(code, dtype=np.float64)[None, :]).to(device, dtype)
        return decoder(z)[0].double().cpu().numpy()

    with evaluating(decoder):
        result = minimize(
            lambda code: float(np.linalg.norm(target - decode(code))),
            np.asarray(start, dtype=np.float64),
            method="Nelder-Mead",
            options=None if maxiter is None else {"maxiter": maxiter},
        )
        decoded = decode(result.x)
    return {"code": result.x, "residual": float(result.fun), "decoded": decoded, "nfev": int(result.nfev)}


# ----------------------------------------------------------------- analyses
def latent_histograms(ctx: RunContext, bins: Union[int, str] = "auto") -> dict[str, float]:
    """Histogram of each code coordinate over every curve (latent_histograms.png); returns each
    coordinate's mean and standard deviation (c1_mean, c1_std, ...). A smoke run: the first 256 curves."""
    d = ctx.data
    curves = d.train if d.val_name == "training" else torch.cat([d.train, d.val])  # val is train when no hold-out
    curves = curves[: ctx.size(len(curves), 256)]
    codes = encode(ctx.model, ctx.tensor(curves))
    if ctx.draw:
        title = f"{ctx.title}: code of all {len(codes)} curves"
        plot_histograms(codes, bins, title, ctx.run_dir / "latent_histograms.png", ctx.dpi)
    metrics: dict[str, float] = {}
    for k in range(codes.shape[1]):
        metrics[f"c{k + 1}_mean"] = float(codes[:, k].mean())
        metrics[f"c{k + 1}_std"] = float(codes[:, k].std())
    return metrics


def latent_inversion(
    ctx: RunContext, alpha: float = 2.0, beta: float = 4.0, start: Optional[Sequence[float]] = None
) -> dict[str, float]:
    """Fit the log-pdf of Beta(alpha, beta) on the data's grid by searching the decoder's input,
    from `start` (null: the origin); writes latent_inversion.png. A smoke run stops the search
    after 2 iterations."""
    from scipy.stats import beta as beta_dist

    from aecli.data import beta_curve_grid

    d, latent_dim = ctx.cfg.dataset, int(ctx.cfg.model.latent_dim)
    if not all(key in d for key in ("points", "grid_min", "grid_max")):
        raise ConfigError(
            f"dataset={d.name} is not allowed with analyses.latent_inversion: it inverts Beta curves, use dataset=beta"
        )
    for key, value in (("alpha", alpha), ("beta", beta)):
        if not value > 0:
            raise ConfigError(f"analyses.latent_inversion.{key}={value} is not allowed: use a Beta parameter > 0")
    start = [0.0] * latent_dim if start is None else list(start)
    if len(start) != latent_dim:
        raise ConfigError(
            f"analyses.latent_inversion.start={start} is not allowed: "
            f"give {latent_dim} numbers, one per code coordinate (model.latent_dim)"
        )

    grid = beta_curve_grid(d.points, d.grid_min, d.grid_max)
    target = beta_dist.logpdf(grid, alpha, beta)
    maxiter = 2 if ctx.fast_dev_run else None
    fit = invert_decoder(ctx.model.decoder, target, start, ctx.device, ctx.dtype, maxiter)
    if ctx.draw:
        path = ctx.run_dir / "latent_inversion.png"
        plot_inversion(grid, target, fit["decoded"], alpha, beta, fit["code"], path, ctx.dpi)
    metrics = {"inversion_residual": fit["residual"], "inversion_nfev": float(fit["nfev"])}
    metrics.update({f"inversion_c{k + 1}": float(c) for k, c in enumerate(fit["code"])})
    return metrics


# ----------------------------------------------------------------- figures
def plot_histograms(codes: np.ndarray, bins: Union[int, str], title: str, path: Path, dpi: int) -> None:
    """One panel per code coordinate c_1, c_2, ...: how many curves got which value."""
    dim = codes.shape[1]
    fig, axes = plt.subplots(1, dim, figsize=(5 * dim, 4), squeeze=False)
    for k, ax in enumerate(axes[0]):
        ax.hist(codes[:, k], bins=bins, color="tab:blue", alpha=0.75, edgecolor="tab:blue")
        ax.set(xlabel=f"c_{k + 1}", ylabel="Count")
        tidy_ticks(ax, axes="x")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi)


def plot_inversion(
    grid: np.ndarray,
    target: np.ndarray,
    decoded: np.ndarray,
    alpha: float,
    beta: float,
    code: np.ndarray,
    path: Path,
    dpi: int,
) -> None:
    """Left: the target pdf and the decoder's pdf at the fitted code; right: their difference."""
    target_pdf, fitted_pdf = np.exp(target), np.exp(decoded)
    code_text = ", ".join(f"c_{k + 1}={c:.4f}" for k, c in enumerate(code))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
    ax0.plot(grid, target_pdf, label=f"α={alpha:.4f}, β={beta:.4f}")
    ax0.plot(grid, fitted_pdf, label=code_text)
    ax0.legend(loc="best", framealpha=0.85, fontsize=8)
    ax0.set(xlabel="x", ylabel="β(x; α, β)", title="PDF")
    ax1.plot(grid, target_pdf - fitted_pdf)
    names = ", ".join(f"c_{k + 1}" for k in range(len(code)))
    ax1.set(xlabel="x", ylabel="Error", title=f"β(x; α, β) − β_NN(x; {names})")
    tidy_ticks(ax1, axes="y")
    fig.tight_layout()
    save_figure(fig, path, dpi)
