"""The mnist studies' analyses (mnist_bottleneck, mnist_wide, mnist_denoising) and their figures.

Each works on any image data set (data.image_shape; MNIST 28x28, digits 8x8) and
evaluates the trained model in eval mode (no code dropout), leaving it as it was:

  reconstruction_mse  test_mse, over the whole test set (the images: the run's reconstruction.png)
  encoder_filters     first-layer weight rows of a seeded choice of hidden units, as images
  latent_knn          latent_knn_accuracy, how well the codes alone tell the digits apart (the codes
                      coloured by digit: the run's latent.png, 2-D, or the first three coordinates)
  latent_manifold     a 2-D code only: images decoded from a grid over the test codes' range,
                      and from one chosen code (the study's z = (0, -4))
  denoising           masked / reconstructed / clean test images; test_mse_noisy_input

A smoke run (trainer.fast_dev_run) works on the first 256 test (512 training) images, draws 3
example images, 2 filters and a 3 x 3 manifold grid. With plots.enabled=false (ctx.draw) nothing is
drawn and every number is still computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from aecli.analyses import RunContext, decode, encode_reconstruct  # noqa: E402
from aecli.analyses.baselines import pca_fit  # noqa: E402
from aecli.errors import ConfigError  # noqa: E402
from aecli.models import Autoencoder  # noqa: E402
from aecli.reporting import plots  # noqa: E402
from aecli.training.regularizers import masking_noise  # noqa: E402


def _image_shape(ctx: RunContext, analysis: str) -> tuple[int, int]:
    if ctx.data.image_shape is None:
        raise ConfigError(
            f"analyses.{analysis} needs image data (dataset=mnist, digits, or a file of images), "
            f"not dataset={ctx.data.name}"
        )
    return ctx.data.image_shape


def _test_images(ctx: RunContext) -> torch.Tensor:
    """The test (validation) images an analysis scores: all of them, or the first few in a smoke run."""
    return ctx.data.val[: ctx.size(len(ctx.data.val), 256)]


def _seeded_pick(n_total: int, n: int, seed: int) -> np.ndarray:
    """`n` distinct indices out of n_total, the same for the same seed, in increasing order."""
    return np.sort(np.random.default_rng(seed).choice(n_total, size=min(n, n_total), replace=False))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error per element, accumulated in float64."""
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


# ------------------------------------------------------------------ reconstruction error
def reconstruction_mse(ctx: RunContext) -> dict[str, float]:
    """test_mse: mean squared error per pixel over the whole test set (no weight penalty). The images
    and their reconstructions are the run's reconstruction.png; this analysis draws no second copy."""
    _image_shape(ctx, "reconstruction_mse")
    x = _test_images(ctx).numpy()
    _, x_hat = encode_reconstruct(ctx.model, ctx.tensor(x))
    return {"test_mse": mse(x_hat, x)}


# ------------------------------------------------------------------ encoder filters
def first_layer(model: Autoencoder) -> Union[nn.Linear, nn.Conv2d]:
    """The encoder's first weight layer: an MLP's Linear, a convolutional net's Conv2d."""
    return next(m for m in model.encoder.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


def n_units(layer: Union[nn.Linear, nn.Conv2d]) -> int:
    """Hidden units of a Linear layer, feature maps of a convolution."""
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def filter_images(
    model: Autoencoder, units: Union[Sequence[int], np.ndarray], image_shape: Sequence[int]
) -> np.ndarray:
    """The input weights of the chosen first-layer units, each as an image: an MLP unit's weights
    over the whole image, a convolution's kernel (its own small size) for a feature map."""
    layer = first_layer(model)
    weight = layer.weight.detach().float().cpu().numpy()[np.asarray(units)]
    return weight[:, 0] if isinstance(layer, nn.Conv2d) else weight.reshape(len(units), *image_shape)


def encoder_filters(ctx: RunContext, n_filters: int = 5, seed: int = 0, cmap: str = "viridis") -> dict[str, float]:
    """encoder_filters.png: the first layer's weights into a seeded choice of hidden units,
    on one shared colour scale (so units compare) with a colour bar."""
    shape = _image_shape(ctx, "encoder_filters")
    layer = first_layer(ctx.model)
    units = _seeded_pick(n_units(layer), ctx.size(n_filters, 2), seed)
    if not ctx.draw:
        return {}
    images = filter_images(ctx.model, units, shape)
    lo, hi = float(images.min()), float(images.max())
    if lo == hi:  # all equal (e.g. zero weights): still a readable colour bar
        lo, hi = lo - 1e-6, hi + 1e-6
    fig, axes = plt.subplots(1, len(units), figsize=(2.2 * len(units) + 1.0, 2.8), squeeze=False)
    for ax, unit, image in zip(axes[0], units, images):
        im = ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi)
        ax.set(xticks=[], yticks=[], title=f"unit {unit}")
    fig.colorbar(im, ax=list(axes[0]), label="weight", shrink=0.8)
    what = "hidden units" if isinstance(layer, nn.Linear) else "feature maps (their kernels)"
    fig.suptitle(f"{ctx.title}: encoder filters (first-layer weights of {len(units)} of {n_units(layer)} {what})")
    plots.save_figure(fig, ctx.run_dir / "encoder_filters.png", ctx.dpi)
    return {}


# ------------------------------------------------------------------ latent scatter
def knn_accuracy(
    train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray, test_labels: np.ndarray, neighbors: int
) -> float:
    """Share of test codes whose `neighbors` nearest training codes vote for the right label."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(neighbors, len(train_codes))).fit(train_codes, train_labels)
    return float(knn.score(test_codes, test_labels))


def latent_knn(ctx: RunContext, knn_neighbors: int = 5) -> dict[str, float]:
    """latent_knn_accuracy: k-nearest-neighbour digit accuracy of the full test codes against the
    training codes (the study: "we could make a pretty good classifier out of this"), and
    baseline_pca_knn_accuracy, the same on PCA's codes of the same size. The codes coloured by digit
    are the run's latent.png (2-D, or the first three coordinates in 3-D)."""
    if knn_neighbors < 1:
        raise ConfigError(f"analyses.latent_knn.knn_neighbors={knn_neighbors} is not allowed: use 1 or more")
    test = _test_images(ctx)
    codes, _ = encode_reconstruct(ctx.model, ctx.tensor(test))
    metrics: dict[str, float] = {}
    if ctx.data.train_labels is not None and ctx.data.val_labels is not None:
        train = ctx.data.train[: ctx.size(len(ctx.data.train), 512)]
        train_codes, _ = encode_reconstruct(ctx.model, ctx.tensor(train))
        train_labels, test_labels = ctx.data.train_labels[: len(train), 0], ctx.data.val_labels[: len(test), 0]
        metrics["latent_knn_accuracy"] = knn_accuracy(train_codes, train_labels, codes, test_labels, knn_neighbors)
        # the same on PCA's codes of the same size, fit on the same training images: the baseline
        mean, directions = pca_fit(train, codes.shape[1])
        pca_codes = lambda x: ((x.to("cpu", torch.float64) - mean) @ directions).numpy()  # noqa: E731
        pca = knn_accuracy(pca_codes(train), train_labels, pca_codes(ctx.tensor(test)), test_labels, knn_neighbors)
        metrics["baseline_pca_knn_accuracy"] = pca
    return metrics


# ------------------------------------------------------------------ decoded latent grid
def decode_grid(
    model: Autoencoder, z0_range: Sequence[float], z1_range: Sequence[float], n: int, image_shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode an n x n grid of 2-D codes. Returns (z0s, z1s, images): z0s increase left to right
    (columns), z1s DEcrease top to bottom (rows, so the picture reads like a scatter plot), and
    images[r, c] is decoded from the code (z0s[c], z1s[r])."""
    z0s = np.linspace(z0_range[0], z0_range[1], n)
    z1s = np.linspace(z1_range[1], z1_range[0], n)
    g1, g0 = np.meshgrid(z1s, z0s, indexing="ij")  # [r, c] -> (z0s[c], z1s[r])
    codes = np.column_stack([g0.ravel(), g1.ravel()])
    images = decode(model, codes)
    return z0s, z1s, images.reshape(n, n, *image_shape)


def latent_manifold(
    ctx: RunContext, n: int = 15, clip_quantile: float = 0.0, point: Optional[Sequence[float]] = (0.0, -4.0)
) -> dict[str, float]:
    """latent_manifold.png: images decoded from an n x n grid spanning the test codes' range
    (between the clip_quantile and 1 - clip_quantile quantiles of each coordinate), with the
    code values on the axes. decoded_point.png: the image decoded from one code `point`,
    beside the test codes with that point marked (null: skip)."""
    shape = _image_shape(ctx, "latent_manifold")
    if ctx.model.latent_dim != 2:
        raise ConfigError(f"analyses.latent_manifold needs a 2-D code, not model.latent_dim={ctx.model.latent_dim}")
    if not 0 <= clip_quantile < 0.5:
        raise ConfigError(f"analyses.latent_manifold.clip_quantile={clip_quantile} is not allowed: use [0, 0.5)")
    test = _test_images(ctx)
    codes, _ = encode_reconstruct(ctx.model, ctx.tensor(test))
    lo = np.quantile(codes, clip_quantile, axis=0)
    hi = np.quantile(codes, 1 - clip_quantile, axis=0)
    flat = hi <= lo  # every code alike in a coordinate (zero init, barely trained): span +-1 around it
    lo, hi = lo - flat, hi + flat
    n = ctx.size(n, 3)
    if not ctx.draw:
        return {}
    z0s, z1s, images = decode_grid(ctx.model, (lo[0], hi[0]), (lo[1], hi[1]), n, shape)

    h, w = shape
    mosaic = images.transpose(0, 2, 1, 3).reshape(n * h, n * w)  # rows of images side by side
    half0 = (z0s[1] - z0s[0]) / 2 if n > 1 else 0.5
    half1 = (z1s[0] - z1s[1]) / 2 if n > 1 else 0.5
    fig, ax = plt.subplots(figsize=(9, 8.5))
    im = ax.imshow(
        mosaic,
        cmap="gray",
        vmin=0,
        vmax=1,
        aspect="auto",
        extent=(z0s[0] - half0, z0s[-1] + half0, z1s[-1] - half1, z1s[0] + half1),
    )
    ax.set(
        xlabel="z1",
        ylabel="z2",
        title=f"{ctx.title}: images decoded from a {n} x {n} grid over the {ctx.data.val_name} codes' range",
    )
    fig.colorbar(im, ax=ax, label="pixel value (clipped to [0, 1])", shrink=0.8)
    plots.save_figure(fig, ctx.run_dir / "latent_manifold.png", ctx.dpi)

    if point is not None:
        plot_decoded_point(ctx, codes, point, shape)
    return {}


def plot_decoded_point(ctx: RunContext, codes: np.ndarray, point: Sequence[float], shape: tuple[int, int]) -> None:
    """decoded_point.png: the image decoded from the code `point`, beside the test `codes` with it marked."""
    z = np.asarray(point, dtype=np.float64).reshape(1, 2)
    image = decode(ctx.model, z).reshape(shape)
    fig, (ax_codes, ax_img) = plt.subplots(1, 2, figsize=(10, 4.5), width_ratios=[1.3, 1])
    colors, ticks = plots.color_kwargs(ctx.data.val_color[: len(codes)])
    sc = ax_codes.scatter(codes[:, 0], codes[:, 1], s=2, alpha=0.6, **colors)
    ax_codes.scatter(z[:, 0], z[:, 1], marker="x", s=120, c="red", linewidths=2.5, label=f"z = {tuple(point)}")
    ax_codes.set(xlabel="z1", ylabel="z2", title=f"{ctx.data.val_name} codes and the chosen z")
    ax_codes.legend(loc="best", framealpha=0.85)
    fig.colorbar(sc, ax=ax_codes, label=ctx.data.color_label, ticks=ticks)
    ax_img.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax_img.set(xticks=[], yticks=[], title=f"decoded from z = {tuple(point)}")
    fig.suptitle(f"{ctx.title}: a digit generated from a chosen code")
    plots.save_figure(fig, ctx.run_dir / "decoded_point.png", ctx.dpi)


# ------------------------------------------------------------------ denoising
def denoising(ctx: RunContext, mask_rate: Optional[float] = None, n_images: int = 8, seed: int = 0) -> dict[str, float]:
    """denoising.png: masked test images (each pixel zeroed with probability mask_rate, seeded),
    their reconstructions and the clean images. test_mse_noisy_input: MSE of the reconstructions
    from masked inputs against the clean images; test_mse_masked_vs_clean: the masked images'
    own MSE (what doing nothing would score)."""
    shape = _image_shape(ctx, "denoising")
    rate = ctx.cfg.regularizer.mask_rate if mask_rate is None else mask_rate
    if not 0 < rate < 1:
        raise ConfigError(
            f"analyses.denoising.mask_rate={rate} is not allowed: use a rate in (0, 1), or set regularizer.mask_rate"
        )
    clean_t = _test_images(ctx)
    noisy_t = masking_noise(clean_t, rate, generator=torch.Generator().manual_seed(seed))
    _, x_hat = encode_reconstruct(ctx.model, ctx.tensor(noisy_t))
    clean, noisy = clean_t.numpy(), noisy_t.numpy()
    noisy_mse = mse(x_hat, clean)
    metrics = {"test_mse_noisy_input": noisy_mse, "test_mse_masked_vs_clean": mse(noisy, clean)}
    if not ctx.draw:
        return metrics
    pick = _seeded_pick(len(clean), ctx.size(n_images, 3), seed)
    plots.image_pairs(
        noisy[pick],
        x_hat[pick],
        shape,
        [f"masked ({rate:.0%})", "reconstructed", "clean"],
        f"{ctx.title}: denoising {ctx.data.val_name} images (MSE vs clean {noisy_mse:.4f})",
        ctx.run_dir / "denoising.png",
        ctx.dpi,
        clean[pick],
    )
    return metrics
