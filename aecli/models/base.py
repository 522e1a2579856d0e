"""What every model family is: an `Autoencoder` whose forward pass returns an `AutoencoderOutput`
(reconstruction, code and named loss terms), built by a `ModelSpec` (its settings, checked as the
spec is made) for the data's shape.

The training loop adds up the terms and never names a model type or a term: a plain autoencoder
has one term, "reconstruction"; a VAE adds "kl"; regularizer penalties join them as terms of their
own. Each term is a scalar in the `trainer.loss` convention: `mse` a mean over the batch (and,
for reconstruction, over every value), `sse` a sum over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from aecli.data.base import DataShape
from aecli.errors import ConfigError
from aecli.plugins import Spec, require

if TYPE_CHECKING:
    from aecli.analyses import RunContext

Loss = Literal["mse", "sse"]  # mean of squared errors per value, or their sum (per batch)


@dataclass
class AutoencoderOutput:
    """One forward pass: what the model made of the batch, and its loss terms (scalars to add up)."""

    reconstruction: torch.Tensor
    code: torch.Tensor
    terms: dict[str, torch.Tensor]


class Autoencoder(nn.Module):
    """The model contract. Subclasses build `encoder` and `decoder` modules and may override
    `encode`, `decode` and `forward` (a VAE samples its code); `figures` draws what only this
    family can show (a VAE's samples from the prior)."""

    latent_dim: int
    encoder: nn.Module
    decoder: nn.Module  # what transfer.decoder_from copies
    data_shape: Optional[DataShape] = None  # what it was built for (set by build_model; checkpoints record it)

    def __init__(self, loss: Loss = "mse") -> None:
        super().__init__()
        self.loss_kind = loss

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each row of `x` (a VAE: the posterior mean)."""
        raise NotImplementedError

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """The rows the decoder makes of each code."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): the deterministic reconstruction figures and analyses use."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> AutoencoderOutput:
        """Encode `x`, decode, and score against `target` (the clean batch when `x` was corrupted)."""
        code = self.encode(x)
        x_hat = self.decode(code)
        return AutoencoderOutput(
            x_hat, code, {"reconstruction": self.reconstruction_loss(x_hat, x if target is None else target)}
        )

    def reconstruction_loss(self, x_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(x_hat, target, reduction="mean" if self.loss_kind == "mse" else "sum")

    def activation_modules(self) -> list[nn.Module]:
        """The modules whose outputs are hidden activations (what activation penalties read)."""
        return []

    def figures(self, ctx: RunContext) -> dict[str, float]:
        """Figures only this family can draw (written into the run folder), and their numbers."""
        return {}


@dataclass
class ModelSpec(Spec):
    """A model family's settings, and how to build it for the data's shape."""

    name: str = "model"  # the option's name, for titles and logs
    input_dim: Optional[int] = None  # null: taken from the data
    latent_dim: int = 2

    def check(self) -> None:
        require(self.latent_dim >= 1, "latent_dim", self.latent_dim, "use an integer >= 1")
        require(
            self.input_dim is None or self.input_dim >= 1,
            "input_dim",
            self.input_dim,
            "use an integer >= 1, or null to take it from the data",
        )

    def check_fits(self, shape: DataShape, data_name: str) -> None:
        """ConfigError when this model cannot be built for data of `shape`."""
        if self.input_dim is not None and self.input_dim != shape.dim:
            raise ConfigError(
                f"model.input_dim={self.input_dim} does not match the {shape.dim}-D data of dataset={data_name}; "
                f"set model.input_dim=null to infer it"
            )

    def build(self, shape: DataShape, loss: Loss = "mse") -> Autoencoder:
        raise NotImplementedError

    def layer_widths(self, shape: DataShape) -> list[int]:
        """The widths of the model's layers in order, input to output: what the memory estimate counts."""
        return [shape.dim, self.latent_dim, shape.dim]

    def parameter_count(self, shape: DataShape) -> int:
        """The model's parameters, for the memory estimate: dense layers between the layer widths
        (weights and biases); a family whose layers are not dense says its own."""
        widths = self.layer_widths(shape)
        return sum((a + 1) * b for a, b in zip(widths, widths[1:]))

    def widest_setting(self, shape: DataShape) -> str:
        """The setting to name when the model does not fit in memory."""
        return f"model.latent_dim={self.latent_dim}"


def build_model(spec: ModelSpec, shape: DataShape, loss: Loss = "mse") -> Autoencoder:
    """`spec`'s model for data of `shape`, knowing that shape (checkpoints record it)."""
    model = spec.build(shape, loss)
    if not isinstance(model, Autoencoder):  # a plug-in's bug, named rather than failing later
        raise ConfigError(f"{type(spec).__name__} built a {type(model).__name__}, not an aecli.models.Autoencoder")
    model.data_shape = shape
    return model
