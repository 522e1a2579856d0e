"""The activation_penalty study: what an L1 or L2 penalty on the hidden activations does to them.

`activation_histograms` (name it under `analyses:`) runs the training data through the trained
net in eval mode, collects every hidden activation (the modules in `model.hidden_activations`:
encoder and decoder hidden layers, not the code), draws one histogram per layer and reports

  sparsity             share of activations with |h| < threshold (over all hidden layers)
  mean_abs_activation  mean |h| over all hidden layers
  sparsity_layer<i>    the same share per hidden layer, in forward order

An L1 penalty drives many activations to exactly zero; an L2 penalty only shrinks them.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aecli.analyses import RunContext, evaluating  # noqa: E402
from aecli.errors import ConfigError  # noqa: E402
from aecli.models import Autoencoder  # noqa: E402
from aecli.reporting.plots import save_figure  # noqa: E402
from aecli.run_files import confined  # noqa: E402


def hidden_activations(model: Autoencoder, x: torch.Tensor) -> list[np.ndarray]:
    """The output of each of the model's hidden activation modules for input `x`, in eval mode, as
    (n, width) arrays in forward order. The model's mode is restored and nothing else changes."""
    modules = list(model.activation_modules())
    outputs: dict[int, np.ndarray] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, i=i: outputs.__setitem__(i, out.double().cpu().numpy()))
        for i, m in enumerate(modules)
    ]
    try:
        with evaluating(model):
            model.reconstruct(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [outputs[i] for i in range(len(modules))]


def sparsity(activations: np.ndarray, threshold: float) -> float:
    """Share of entries with |h| < threshold."""
    return float(np.mean(np.abs(activations) < threshold))


def activation_histograms(
    ctx: RunContext, threshold: float = 1e-3, bins: int = 50, file: str = "activations.png"
) -> dict[str, float]:
    """Histograms of every hidden layer's activations over the training data, and their sparsity
    (a smoke run: the first 64 training points, at most 10 bins)."""
    if threshold <= 0 or bins < 1:
        raise ConfigError(f"threshold={threshold}, bins={bins} is not allowed: use a threshold > 0 and bins >= 1.")
    x = ctx.data.train
    layers = hidden_activations(ctx.model, ctx.tensor(x[: ctx.size(len(x), 64)]))
    bins = ctx.size(bins, 10)
    if not layers:
        raise ConfigError(
            f"model={ctx.cfg.model.name} is not allowed: the activation_histograms analysis needs a model "
            f"with at least one hidden layer"
        )
    everything = np.concatenate([a.ravel() for a in layers])
    metrics = {"sparsity": sparsity(everything, threshold), "mean_abs_activation": float(np.abs(everything).mean())}
    for i, acts in enumerate(layers):
        metrics[f"sparsity_layer{i + 1}"] = sparsity(acts, threshold)
    if ctx.draw:
        draw_histograms(ctx, layers, metrics, threshold, bins, file)
    return metrics


def draw_histograms(
    ctx: RunContext, layers: list[np.ndarray], metrics: dict[str, float], threshold: float, bins: int, file: str
) -> None:
    """One histogram per hidden layer (log counts), on one activation range; the title gives the penalty."""
    everything = np.concatenate([a.ravel() for a in layers])
    n_enc = sum(1 for m in ctx.model.encoder.modules() if m in ctx.model.activation_modules())  # the encoder's layers

    cols = min(3, len(layers))
    rows = int(np.ceil(len(layers) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    top = float(max(everything.max(), threshold))
    low = float(min(everything.min(), 0.0))
    for i, (ax, acts) in enumerate(zip(axes.ravel(), layers)):
        share = metrics[f"sparsity_layer{i + 1}"]
        ax.hist(acts.ravel(), bins=bins, range=(low, top), color="C0")
        ax.set_yscale("log")
        where = f"encoder hidden {i + 1}" if i < n_enc else f"decoder hidden {i + 1 - n_enc}"
        ax.set(
            title=f"{where} ({acts.shape[1]} units): {share:.0%} |h| < {threshold:g}",
            xlabel="activation h",
            ylabel="count",
        )
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(layers) :]:
        ax.axis("off")
    reg = ctx.cfg.regularizer
    penalty = " + ".join(
        [f"L1 penalty, lambda {reg.activation_l1:g}"] * (reg.activation_l1 > 0)
        + [f"L2 penalty, lambda {reg.activation_l2:g}"] * (reg.activation_l2 > 0)
    )
    fig.suptitle(
        f"{ctx.title}: hidden activations over the training data, {penalty or 'no regularization'}\n"
        f"all layers: {metrics['sparsity']:.1%} of activations |h| < {threshold:g}, "
        f"mean |h| = {metrics['mean_abs_activation']:.3g}"
    )
    save_figure(fig, confined(ctx.run_dir, file), ctx.dpi)
