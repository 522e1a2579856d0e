"""A variational autoencoder (`model=vae`): the MLP with a Gaussian encoder.

The encoder gives each row a mean and a log-variance per code value; training decodes a sample
`z = mean + exp(logvar / 2) * eps` (the reparameterisation: eps ~ N(0, I) from torch's seeded
generator, so resume stays bit-exact), and adds the KL divergence of that Gaussian from the
prior N(0, I), weighted by `beta` (beta-VAE; 1: the plain VAE), to the reconstruction loss.
Evaluation, `encode` and every figure use the mean.

The KL term follows `trainer.loss`: with `sse` it is summed over the batch; with `mse`, averaged
over the batch and divided by the values per row, so that `beta` weighs it the same against the
per-value mean squared error. metrics.csv logs it as `train_kl` / `val_kl` (beta included), beside
`train_reconstruction` / `val_reconstruction` and the totals.

Either way, at beta=1 the loss is (up to a constant factor) the negative ELBO of a Gaussian decoder
whose noise variance is fixed at 1/2 per value. On data whose values vary much less than that
(pixels or a swiss roll scaled to [0, 1]) it pulls every posterior onto the prior and the code
carries little (latent.png shrinks, traversal.png stops changing along a code axis): lower beta
there (docs/vae.md gives measured values).

Besides the usual figures, a VAE draws `samples.png` (rows decoded from prior draws) and, when
the code is 2-D, `traversal.png` (rows decoded from a grid over [-3, 3]^2 of the code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aecli.data.base import DataShape  # noqa: E402
from aecli.models.base import AutoencoderOutput, Loss  # noqa: E402
from aecli.models.mlp import MLPAutoencoder, MLPSpec  # noqa: E402
from aecli.plugins import finite, require  # noqa: E402
from aecli.reporting import plots  # noqa: E402

if TYPE_CHECKING:
    from aecli.analyses import RunContext

TRAVERSAL_RANGE = 3.0  # the traversal grid spans +-3 prior standard deviations
SAMPLE_SEED = 0  # the prior draws of samples.png: the same for every run, so runs compare


class VAE(MLPAutoencoder):
    code_outputs: ClassVar[int] = 2  # a mean and a log-variance per code value

    def __init__(self, input_dim: int, beta: float = 1.0, samples: int = 64, **mlp: object) -> None:
        super().__init__(input_dim, **mlp)  # type: ignore[arg-type]
        self.beta, self.samples = float(beta), int(samples)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian each row is encoded to: (mean, log-variance), each (n, latent_dim)."""
        mean, logvar = self.encoder(x).chunk(2, dim=-1)
        return mean, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def forward(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> AutoencoderOutput:
        mean, logvar = self.posterior(x)
        code = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        x_hat = self.decode(code)
        terms = {
            "reconstruction": self.reconstruction_loss(x_hat, x if target is None else target),
            "kl": self.beta * self.kl_divergence(mean, logvar),
        }
        return AutoencoderOutput(x_hat, code, terms)

    def kl_divergence(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mean, exp(logvar)) || N(0, I)), reduced as the reconstruction loss is (module docstring)."""
        per_row = -0.5 * torch.sum(1 + logvar - mean**2 - logvar.exp(), dim=-1)
        if self.loss_kind == "sse":
            return per_row.sum()
        return per_row.mean() / self.input_dim

    def figures(self, ctx: RunContext) -> dict[str, float]:
        """samples.png (what the model generates from the prior) and, for a 2-D code, traversal.png
        (what each region of the code decodes to); the draws and the grid are the same every run."""
        from aecli.analyses import decode

        val, image_shape = ctx.data.val.numpy(), ctx.data.image_shape
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        z = torch.randn(ctx.size(self.samples, 16), self.latent_dim, generator=generator, dtype=torch.float64)
        draw_samples(decode(self, z.numpy()), val, image_shape, ctx.title, ctx.run_dir / "samples.png", ctx.dpi)
        if self.latent_dim == 2:
            axis = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, ctx.size(15, 5))
            grid = np.array([[a, b] for b in axis[::-1] for a in axis])  # rows top to bottom: z2 falls
            path = ctx.run_dir / "traversal.png"
            draw_traversal(decode(self, grid), axis, val, image_shape, ctx.title, path, ctx.dpi)
        return {}


@dataclass
class VAESpec(MLPSpec):
    """The MLP's settings, plus the KL weight and the number of prior samples drawn."""

    name: str = "vae"
    beta: float = 1.0  # weight of the KL term (beta-VAE); 1: the plain VAE
    samples: int = 64  # rows decoded from prior draws for samples.png

    def check(self) -> None:
        super().check()
        require(finite(self.beta) and self.beta >= 0, "beta", self.beta, "use a finite KL weight >= 0")
        require(1 <= self.samples <= 1024, "samples", self.samples, "use 1 to 1024 prior draws")
        require(
            self.latent_activation == "identity",
            "latent_activation",
            self.latent_activation,
            "a VAE's encoder outputs a mean and a log-variance, which take no activation: use identity",
        )

    def build(self, shape: DataShape, loss: Loss = "mse") -> VAE:
        return VAE(shape.dim, **self.model_settings(), loss=loss)

    def layer_widths(self, shape: DataShape) -> list[int]:
        widths = super().layer_widths(shape)
        return [*widths[: len(self.hidden_sizes) + 1], 2 * self.latent_dim, *widths[len(self.hidden_sizes) + 1 :]]


# ------------------------------------------------------------------ figures
def draw_samples(
    drawn: np.ndarray, data: np.ndarray, image_shape: Optional[Sequence[int]], title: str, path: Path, dpi: int = 110
) -> None:
    """samples.png: rows a VAE decodes from prior draws z ~ N(0, I), to judge what the model generates
    beside what it was shown. Images: one mosaic; 2-D and 3-D data: the draws over the validation
    points; longer rows: as many validation rows beside the draws, on one value scale."""
    n = len(drawn)
    if image_shape is not None:
        cols = int(np.ceil(np.sqrt(n)))
        fig, ax = plt.subplots(figsize=(6.5, 6.5 * np.ceil(n / cols) / cols + 0.5))
        ax.imshow(
            plots.tiles(drawn, image_shape, cols), cmap=plots.GAPPED_GRAY, vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_axis_off()
        ax.set_title(f"{title}: {n} images decoded from z ~ N(0, I)")
    elif drawn.shape[1] in (2, 3):
        fig, ax = plots.point_axes(drawn.shape[1])
        ax.scatter(*data.T, s=6, c="0.75", label="validation data")
        ax.scatter(*drawn.T, s=14, c="tab:red", label=f"{n} decoded prior draws")
        ax.set_title(f"{title}: decoded from z ~ N(0, I)")
        plots.tidy_ticks(ax, nbins=4 if drawn.shape[1] == 3 else 5)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02 if drawn.shape[1] == 2 else 1.1, 1), fontsize=8)
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.8), sharey=True, layout="constrained")
        index = np.arange(drawn.shape[1])
        shown = data[: min(n, len(data))]
        left.plot(index, shown.T, color="0.4", lw=0.7, alpha=0.6)
        right.plot(index, drawn.T, color="tab:red", lw=0.7, alpha=0.6)
        left.set(xlabel="value index", ylabel="value", title=f"{len(shown)} validation rows")
        right.set(xlabel="value index", title=f"{n} rows decoded from z ~ N(0, I)")
        fig.suptitle(f"{title}: prior samples")
    plots.save_figure(fig, path, dpi)


def draw_traversal(
    decoded: np.ndarray,
    axis: np.ndarray,
    data: np.ndarray,
    image_shape: Optional[Sequence[int]],
    title: str,
    path: Path,
    dpi: int = 110,
) -> None:
    """traversal.png: what each region of a 2-D code decodes to (z1 along, z2 up; `decoded` holds the
    grid over `axis` x `axis` row by row from the top, z2 falling). Images: a mosaic with the code
    values on its axes; 2-D and 3-D data: the decoded grid as a warped mesh over the validation
    points; longer rows: the rows along z1 (z2 at the grid's middle) and along z2 (z1 there)."""
    steps, span = len(axis), f"z in [{axis[0]:g}, {axis[-1]:g}]\u00b2"
    mesh = decoded.reshape(steps, steps, -1)
    if image_shape is not None:
        h, w = image_shape
        fig, ax = plt.subplots(figsize=(7.5, 7.5))
        ax.imshow(
            plots.tiles(decoded, image_shape, steps), cmap=plots.GAPPED_GRAY, vmin=0, vmax=1, interpolation="nearest"
        )
        labels = [f"{v:.1f}" for v in axis]
        ax.set_xticks(np.arange(steps) * (w + 1) + (w - 1) / 2, labels, fontsize=7)
        ax.set_yticks(np.arange(steps) * (h + 1) + (h - 1) / 2, labels[::-1], fontsize=7)
        ax.tick_params(length=0)
        ax.set(xlabel="z1", ylabel="z2", title=f"{title}: decoded along the code, {steps} x {steps} grid")
    elif mesh.shape[2] in (2, 3):
        fig, ax = plots.point_axes(mesh.shape[2])
        ax.scatter(*data.T, s=6, c="0.8", label="validation data")
        for r in range(steps):
            ax.plot(*mesh[r].T, color="tab:blue", lw=0.8)  # z2 fixed, z1 varies
            ax.plot(*mesh[:, r].T, color="tab:orange", lw=0.8)  # z1 fixed, z2 varies
        ax.plot([], [], color="tab:blue", label="z2 fixed, z1 varies")
        ax.plot([], [], color="tab:orange", label="z1 fixed, z2 varies")
        ax.set_title(f"{title}: decoded grid, {span}")
        plots.tidy_ticks(ax, nbins=4 if mesh.shape[2] == 3 else 5)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02 if mesh.shape[2] == 2 else 1.1, 1), fontsize=8)
    else:
        mid = steps // 2
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8), sharey=True, layout="constrained")
        along = [(mesh[mid], "z1", f"z2 = {axis[::-1][mid]:.2g}"), (mesh[::-1, mid], "z2", f"z1 = {axis[mid]:.2g}")]
        norm = plt.Normalize(axis[0], axis[-1])
        for ax, (rows, name, fixed) in zip(axes, along):  # rows in the order of `axis`, coloured by its value
            for row, value in zip(rows, axis):
                ax.plot(np.arange(len(row)), row, color=plt.get_cmap(plots.CMAP)(norm(value)), lw=0.9)
            fig.colorbar(plt.cm.ScalarMappable(norm, plots.CMAP), ax=ax, label=name, shrink=0.85)
            ax.set(xlabel="value index", title=f"along {name}, {fixed}")
        axes[0].set_ylabel("decoded value")
        fig.suptitle(f"{title}: rows decoded along the code axes, {span}")
    plots.save_figure(fig, path, dpi)
