"""The run's figures. Each function takes plain arrays and writes one PNG.

matplotlib runs headless (Agg); nothing here touches torch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

CMAP = "viridis"


def save_figure(fig: plt.Figure, path: Path, dpi: int) -> None:
    """Write and close a figure (every figure aecli draws goes through here: run, analyses, report).
    Rendered in memory, then written atomically: a crash never leaves half a PNG, and a link
    planted at `path` is replaced, never written through."""
    from aecli.folders import atomic_write

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue()))


def loss_curve(
    epochs: Sequence[int],
    train: Sequence[float],
    val: Sequence[float],
    title: str,
    loss_name: str,
    path: Path,
    dpi: int = 110,
) -> None:
    """Train and validation loss per epoch (epoch 0 = untrained model), log scale when all positive."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, train, "-o" if len(epochs) < 30 else "-", ms=3, label="train")
    ax.plot(epochs, val, "-o" if len(epochs) < 30 else "-", ms=3, label="validation")
    if min(min(train), min(val)) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="epoch (0 = untrained)", ylabel=f"{loss_name} loss", title=f"{title}: loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save_figure(fig, path, dpi)


def listed_colors(name: str) -> Sequence[tuple[float, float, float]]:
    """The colours of a qualitative colour map such as tab10: a ListedColormap, whose `colors` are RGB
    tuples (matplotlib types the map as any Colormap and its colours as any array-like)."""
    return cast("Sequence[tuple[float, float, float]]", cast(ListedColormap, plt.get_cmap(name)).colors)


def color_kwargs(color: np.ndarray) -> tuple[dict[str, Any], Optional[np.ndarray]]:
    """Scatter colour arguments, and the colour-bar ticks for class labels.

    Integer colours are class labels (MNIST digits): one discrete colour per class
    (tab10, or tab20 beyond ten classes) and a tick per class on the colour bar.
    Anything else (position along a curve, a parameter) gets the continuous map."""
    color = np.asarray(color)
    if np.issubdtype(color.dtype, np.integer) and color.size:
        lo, hi = int(color.min()), int(color.max())
        classes = np.arange(lo, hi + 1)
        if len(classes) <= 20:
            palette = listed_colors("tab10" if len(classes) <= 10 else "tab20")[: len(classes)]
            cmap = ListedColormap(palette)
            return {"c": color, "cmap": cmap, "norm": BoundaryNorm(np.arange(lo - 0.5, hi + 1.5), cmap.N)}, classes
    return {"c": color, "cmap": CMAP}, None


def latent(
    codes: np.ndarray,
    color: np.ndarray,
    color_label: str,
    title: str,
    path: Path,
    dpi: int = 110,
    points: str = "validation points",
) -> None:
    """Validation codes: a strip plus histogram for a 1-D code, a 2-D scatter, or a 3-D scatter
    of the first three coordinates; coloured by position along the curve, or one colour per
    class when the colours are integer labels (digits). `points` names what was encoded
    (e.g. "test points" when the data's val set is a test set)."""
    dim = codes.shape[1]
    colors, ticks = color_kwargs(color)
    if dim == 1:
        fig, (ax_hist, ax) = plt.subplots(2, 1, figsize=(6, 4), sharex=True, height_ratios=[2, 1])
        ax_hist.hist(codes[:, 0], bins=40, color="0.5")
        ax_hist.set(ylabel="count", title=f"{title}: 1-D code of {points}")
        jitter = np.random.default_rng(0).uniform(-1, 1, len(codes))
        sc = ax.scatter(codes[:, 0], jitter, s=8, **colors)
        ax.set(xlabel="z", yticks=[])
    elif dim == 2:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        sc = ax.scatter(codes[:, 0], codes[:, 1], s=8, **colors)
        ax.set(xlabel="z1", ylabel="z2", title=f"{title}: 2-D code of {points}")
    else:
        fig = plt.figure(figsize=(6, 5))
        ax = fig.add_subplot(projection="3d")
        sc = ax.scatter(codes[:, 0], codes[:, 1], codes[:, 2], s=8, **colors)
        ax.set(xlabel="z1", ylabel="z2", zlabel="z3")
        shown = "3-D code" if dim == 3 else f"first 3 of {dim} code coordinates"
        ax.set_title(f"{title}: {shown} of {points}")
    fig.colorbar(sc, ax=ax, label=color_label, shrink=0.8, pad=0.12 if dim >= 3 else 0.05, ticks=ticks)
    save_figure(fig, path, dpi)


def reconstruction(
    x: np.ndarray,
    x_hat: np.ndarray,
    color: np.ndarray,
    color_label: str,
    title: str,
    path: Path,
    dpi: int = 110,
    image_shape: Optional[tuple[int, int]] = None,
) -> None:
    """2-D data: validation points and their reconstructions in the input plane.
    Images: the first ten originals above their reconstructions.
    Other data: every reconstructed value against its original (the diagonal is perfect)."""
    if image_shape is not None:
        image_pairs(
            x[:10],
            x_hat[:10],
            image_shape,
            ["original", "reconstruction"],
            f"{title}: validation reconstructions (MSE {float(np.mean((x_hat - x) ** 2)):.4g})",
            path,
            dpi,
        )
        return
    if x.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        ax.scatter(x[:, 0], x[:, 1], s=10, c="0.75", label="validation input")
        sc = ax.scatter(x_hat[:, 0], x_hat[:, 1], s=8, c=color, cmap=CMAP, label="reconstruction")
        fig.colorbar(sc, ax=ax, label=color_label, shrink=0.8)
        ax.set(xlabel="x1", ylabel="x2", aspect="equal")
    else:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(x.ravel(), x_hat.ravel(), s=2, alpha=0.3)
        lo, hi = float(min(x.min(), x_hat.min())), float(max(x.max(), x_hat.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="perfect reconstruction")
        ax.set(xlabel="input value", ylabel="reconstructed value", aspect="equal")
    mse = float(np.mean((x_hat - x) ** 2))
    ax.set_title(f"{title}: validation reconstructions (MSE {mse:.4g})")
    ax.legend(loc="best", fontsize=8)
    save_figure(fig, path, dpi)


def image_pairs(
    top: np.ndarray,
    bottom: np.ndarray,
    image_shape: Sequence[int],
    row_names: Sequence[str],
    title: str,
    path: Path,
    dpi: int = 110,
    *more_rows: np.ndarray,
) -> None:
    """Rows of images (flattened rows of `top`, `bottom`, then `more_rows`), one column per example."""
    rows = [top, bottom, *more_rows]
    n = len(top)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.4 * len(rows) + 0.4), squeeze=False)
    for r, images in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c].reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r][0].set_ylabel(row_names[r], fontsize=9)
    fig.suptitle(title)
    save_figure(fig, path, dpi)


def error_map(
    err: np.ndarray, extent: Sequence[float], threshold: float, title: str, path: Path, dpi: int = 110
) -> None:
    """Reconstruction-error norm over the input plane, beside the region where it is below threshold."""
    fig, (ax_err, ax_thr) = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained")
    im = ax_err.imshow(err, origin="lower", extent=tuple(extent), cmap=CMAP, interpolation="nearest")
    fig.colorbar(im, ax=ax_err, label="||x_hat - x||", shrink=0.85)
    ax_err.set(xlabel="x1", ylabel="x2", title="reconstruction error")
    below = np.where(err < threshold, err, np.nan)  # as the study: keep only the small errors
    im = ax_thr.imshow(
        below, origin="lower", extent=tuple(extent), cmap=CMAP, vmin=0, vmax=threshold, interpolation="nearest"
    )
    ax_thr.set_facecolor("black")
    fig.colorbar(im, ax=ax_thr, label="||x_hat - x|| (black: >= threshold)", shrink=0.85)
    share = float(np.mean(err < threshold))
    ax_thr.set(xlabel="x1", ylabel="x2", title=f"error < {threshold:g} ({share:.1%} of the window)")
    fig.suptitle(f"{title}: reconstruction-error map")
    save_figure(fig, path, dpi)


GAPPED_GRAY = plt.get_cmap("gray").with_extremes(bad="white")  # NaN gaps between mosaic tiles: white


def tiles(images: np.ndarray, image_shape: Sequence[int], cols: int) -> np.ndarray:
    """Flattened images as one mosaic, `cols` per row, a NaN pixel between tiles (drawn as a gap), so
    neighbouring images never read as one picture."""
    h, w = image_shape
    rows = int(np.ceil(len(images) / cols))
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image.reshape(h, w)
    return mosaic


def point_axes(dim: int) -> tuple[plt.Figure, Any]:
    """A figure with one axes for points in the input space: 2-D or 3-D, at equal scale on every axis
    (figures that compare distances), labelled x1, x2 (, x3)."""
    if dim == 2:
        fig, ax = plt.subplots(figsize=(6, 4.8))
        ax.set(xlabel="x1", ylabel="x2", aspect="equal")
        return fig, ax
    fig = plt.figure(figsize=(7, 5.5))
    ax = fig.add_subplot(projection="3d")
    ax.set(xlabel="x1", ylabel="x2", zlabel="x3")
    ax.set_aspect("equal")
    return fig, ax
