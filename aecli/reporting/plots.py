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
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from aecli.reporting.drawing import in_pool  # noqa: E402

CMAP = "viridis"


def save_figure(fig: plt.Figure, path: Path, dpi: int, metadata: Optional[dict[str, str]] = None) -> None:
    """Write and close a figure (every figure aecli draws goes through here: run, analyses, report).
    Rendered in memory, then written atomically: a crash never leaves half a PNG, and a link
    planted at `path` is replaced, never written through. `metadata`: PNG text chunks (e.g. a
    comparison figure's shared colour limits, so a reader can check them without redrawing)."""
    from aecli.folders import atomic_write

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata=metadata)
    finally:
        plt.close(fig)
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue()))


@in_pool
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
    loss_scale(ax, [*train, *val])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    ax.set(xlabel="epoch (0 = untrained)", ylabel=f"{loss_name} loss", title=f"{title}: loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", framealpha=0.8)
    save_figure(fig, path, dpi)


def loss_scale(ax: Any, values: Sequence[float], axis: str = "y") -> None:
    """Log scale for losses spanning more than a decade (all positive); otherwise a linear axis with
    few ticks and an offset, so a flat curve's labels never read "0.087000.08720..."."""
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    else:
        tidy_ticks(ax, axes=axis)


def tidy_ticks(ax: Any, nbins: int = 5, axes: str = "xyz") -> None:
    """At most `nbins` ticks on each linear axis, labels in a short form with a shared offset (or
    power of ten) for tiny ranges: tick labels never collide, in 2-D or 3-D."""
    for name in axes:
        axis = getattr(ax, f"{name}axis", None)
        if axis is None or axis.get_scale() != "linear":
            continue
        axis.set_major_locator(MaxNLocator(nbins=nbins))
        formatter = ScalarFormatter(useOffset=True, useMathText=True)
        formatter.set_powerlimits((-3, 4))
        axis.set_major_formatter(formatter)


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


def point_style(n: int) -> dict[str, Any]:
    """Marker size and opacity for a scatter of `n` points: big and solid for a few, small and
    see-through for thousands (10,000 test digits), so dense regions still show their density."""
    if n <= 500:
        return {"s": 10, "alpha": 0.9}
    return {"s": 4, "alpha": 0.6} if n <= 3000 else {"s": 2, "alpha": 0.5}


@in_pool
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
    (e.g. "test points" when the data's val set is a test set). The one code figure of a run:
    the studies' analyses draw no copy of it."""
    dim = codes.shape[1]
    colors, ticks = color_kwargs(color)
    style = point_style(len(codes))
    if dim == 1:
        fig, (ax_hist, ax) = plt.subplots(2, 1, figsize=(6, 4), sharex=True, height_ratios=[2, 1])
        ax_hist.hist(codes[:, 0], bins=40, color="0.5")
        ax_hist.set(ylabel="count", title=f"{title}: 1-D code of {len(codes)} {points}")
        jitter = np.random.default_rng(0).uniform(-1, 1, len(codes))
        sc = ax.scatter(codes[:, 0], jitter, **style, **colors)
        ax.set(xlabel="z1", yticks=[])
    elif dim == 2:
        fig, ax = plt.subplots(figsize=(6, 4.8))
        sc = ax.scatter(codes[:, 0], codes[:, 1], **style, **colors)
        ax.set(xlabel="z1", ylabel="z2", title=f"{title}: 2-D code of {len(codes)} {points}")
    else:
        fig = plt.figure(figsize=(7, 5.8))
        ax = fig.add_subplot(projection="3d")
        sc = ax.scatter(codes[:, 0], codes[:, 1], codes[:, 2], **style, **colors)
        ax.set(xlabel="z1", ylabel="z2", zlabel="z3")
        shown = "3-D code" if dim == 3 else f"first 3 of {dim} code coordinates"
        ax.set_title(f"{title}: {shown} of {len(codes)} {points}")
    tidy_ticks(ax, nbins=4 if dim >= 3 else 5)
    bar = fig.colorbar(sc, ax=ax, label=color_label, shrink=0.8, pad=0.12 if dim >= 3 else 0.03, ticks=ticks)
    if bar.solids is not None:
        bar.solids.set_alpha(1)  # the bar in full colour, whatever the points' opacity
    save_figure(fig, path, dpi)


MAX_LINKS = 400  # point-to-reconstruction lines drawn at most (a seeded subsample beyond)


@in_pool
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
    """2-D data: validation points, their reconstructions (coloured as latent.png) and a faint line
    from each point to its own reconstruction, at equal scale on both axes.
    Images: the first ten originals above their reconstructions.
    Other data: every reconstructed value against its original (the diagonal is perfect)."""
    mse = float(np.mean((x_hat - x) ** 2))
    if image_shape is not None:
        image_pairs(
            x[:10],
            x_hat[:10],
            image_shape,
            ["original", "reconstruction"],
            f"{title}: {len(x[:10])} validation images and reconstructions (MSE {mse:.4g})",
            path,
            dpi,
        )
        return
    if x.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(6.5, 5.2))
        from matplotlib.collections import LineCollection

        shown = np.arange(len(x))
        if len(x) > MAX_LINKS:
            shown = np.sort(np.random.default_rng(0).choice(len(x), MAX_LINKS, replace=False))
        links = np.stack([x[shown], x_hat[shown]], axis=1)
        ax.add_collection(LineCollection(list(links), colors="0.35", linewidths=0.5, alpha=0.45, zorder=1))
        ax.scatter(x[:, 0], x[:, 1], s=10, c="0.75", zorder=2, label="validation input")
        colors, ticks = color_kwargs(color)
        sc = ax.scatter(x_hat[:, 0], x_hat[:, 1], s=8, zorder=3, label="reconstruction", **colors)
        ax.plot([], [], color="0.35", lw=0.8, alpha=0.6, label="input to its reconstruction")
        fig.colorbar(sc, ax=ax, label=color_label, shrink=0.8, ticks=ticks)
        ax.set(xlabel="x1", ylabel="x2", aspect="equal")
        ax.autoscale_view()
        tidy_ticks(ax)
    else:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        ax.scatter(x.ravel(), x_hat.ravel(), s=2, alpha=0.3, label="one value of one point")
        lo, hi = float(min(x.min(), x_hat.min())), float(max(x.max(), x_hat.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="perfect reconstruction")
        ax.set(xlabel="input value", ylabel="reconstructed value", aspect="equal")
        tidy_ticks(ax)
    ax.set_title(f"{title}: validation reconstructions (MSE {mse:.4g})")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    save_figure(fig, path, dpi)


@in_pool
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


def error_norm(errors: Sequence[np.ndarray]) -> Normalize:
    """One colour scale for error grids: logarithmic from the smallest positive finite error to the
    largest (errors span decades: 1e-6 where a net is the identity, 3 far from a curve), linear
    when nothing is positive. The per-run map and the sweep's comparison use the same rule."""
    finite = [e[np.isfinite(e)] for e in errors]
    positive = np.concatenate([f[f > 0] for f in finite]) if finite else np.array([])
    if len(positive) and positive.max() > positive.min():
        return LogNorm(float(positive.min()), float(positive.max()))
    top = max((float(f.max()) for f in finite if len(f)), default=1.0)
    return Normalize(0.0, top if top > 0 else 1.0)


def error_image(ax: Any, err: np.ndarray, extent: Any, norm: Normalize, cmap: Any = None) -> Any:
    """`err` over `extent` on `norm`'s scale; zero errors get the lowest colour (a log scale has no
    zero), non-finite ones grey."""
    floor = float(norm.vmin) if isinstance(norm, LogNorm) and norm.vmin is not None else -np.inf
    shown = np.where(np.isfinite(err), np.maximum(err, floor), np.nan)
    cmap = plt.get_cmap(cmap or CMAP).with_extremes(bad="0.6")
    return ax.imshow(shown, origin="lower", extent=tuple(extent), cmap=cmap, norm=norm, interpolation="nearest")


def data_overlay(ax: Any, data: Optional[np.ndarray], label: str = "training data") -> None:
    """The training points over a map (white dots, dark rims): where the data lies."""
    if data is not None and len(data):
        ax.scatter(data[:, 0], data[:, 1], s=4, c="white", edgecolors="black", linewidths=0.3, alpha=0.8, label=label)


@in_pool
def error_map(
    err: np.ndarray,
    extent: Sequence[float],
    threshold: float,
    title: str,
    path: Path,
    dpi: int = 110,
    data: Optional[np.ndarray] = None,
) -> None:
    """Reconstruction-error norm over the input plane (log colour scale) with the training data on
    top and the threshold's contour, beside the region where it is below threshold (the study's map)."""
    fig, (ax_err, ax_thr) = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained")
    im = error_image(ax_err, err, extent, error_norm([err]))
    fig.colorbar(im, ax=ax_err, label="||x_hat - x||", shrink=0.85)
    if np.nanmin(err) < threshold < np.nanmax(err):
        ax_err.contour(err, levels=[threshold], extent=tuple(extent), origin="lower", colors="red", linewidths=1.0)
    data_overlay(ax_err, data)
    ax_err.set(xlabel="x1", ylabel="x2", title=f"reconstruction error (red line: {threshold:g})")
    below = np.where(err < threshold, err, np.nan)  # as the study: keep only the small errors
    im = ax_thr.imshow(
        below, origin="lower", extent=tuple(extent), cmap=CMAP, vmin=0, vmax=threshold, interpolation="nearest"
    )
    ax_thr.set_facecolor("black")
    fig.colorbar(im, ax=ax_thr, label="||x_hat - x|| (black: >= threshold)", shrink=0.85)
    data_overlay(ax_thr, data)
    share = float(np.mean(err < threshold))
    ax_thr.set(xlabel="x1", ylabel="x2", title=f"error < {threshold:g} ({share:.1%} of the window)")
    for ax in (ax_err, ax_thr):
        ax.set(xlim=extent[:2], ylim=extent[2:])
        tidy_ticks(ax)
    shown = f", dots: {len(data)} training points" if data is not None and len(data) else ""
    fig.suptitle(f"{title}: reconstruction-error map{shown}")
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
