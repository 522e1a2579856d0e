"""The MLP autoencoder (`model=mlp`); the studies' nets in conf/model are presets of it.

  encoder: input -> hidden_sizes (activation, dropout) -> latent_dim (latent_activation)
  decoder: [code_dropout] [latent_batchnorm] -> decoder_hidden_sizes (activation, dropout) -> input

The nonlinear_2d study's 2-3-2 nets are `hidden_sizes=[]`, `latent_dim=3` with the activation on
the code (`latent_activation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional

import torch
from torch import nn

from aecli.data.base import DataShape
from aecli.models.base import Autoencoder, Loss, ModelSpec
from aecli.models.layers import ACTIVATIONS, activation, is_activation, mlp_layers
from aecli.plugins import require


class MLPAutoencoder(Autoencoder):
    """Linear layers both ways; `hidden_activations` are the activations after each hidden layer
    (not the code), what activation penalties and the activation analysis read."""

    code_outputs: ClassVar[int] = 1  # encoder outputs per code value (a VAE: mean and log-variance)
    encoder: nn.Sequential
    decoder: nn.Sequential

    def __init__(
        self,
        input_dim: int,
        hidden_sizes: Sequence[int] = (),
        latent_dim: int = 2,
        activation: str = "relu",
        latent_activation: str = "identity",
        bias: bool = True,
        dropout: float = 0.0,
        code_dropout: float = 0.0,
        latent_batchnorm: bool = False,
        decoder_hidden_sizes: Optional[Sequence[int]] = None,
        init: str = "default",
        loss: Loss = "mse",
    ) -> None:
        super().__init__(loss)
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        hidden = [int(h) for h in hidden_sizes]
        dec_hidden = list(reversed(hidden)) if decoder_hidden_sizes is None else [int(h) for h in decoder_hidden_sizes]
        encoder = self._encoder_layers(hidden, activation, latent_activation, bias, dropout)
        decoder = self._decoder_layers(dec_hidden, activation, bias, dropout, code_dropout, latent_batchnorm)
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)
        self.hidden_activations = [layer for layer in [*encoder[:-1], *decoder] if is_activation(layer)]
        if init == "zeros":  # every weight 0, biases as torch drew them (mnist_bottleneck)
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.zeros_(layer.weight)

    def _encoder_layers(
        self, hidden: list[int], act: str, latent_act: str, bias: bool, dropout: float
    ) -> list[nn.Module]:
        layers = mlp_layers([self.input_dim, *hidden], act, bias, dropout)
        layers.append(nn.Linear([self.input_dim, *hidden][-1], self.latent_dim * self.code_outputs, bias=bias))
        return [*layers, activation(latent_act)]

    def _decoder_layers(
        self, hidden: list[int], act: str, bias: bool, dropout: float, code_dropout: float, batchnorm: bool
    ) -> list[nn.Module]:
        layers: list[nn.Module] = []
        if code_dropout > 0:
            layers.append(nn.Dropout(code_dropout))
        if batchnorm:
            layers.append(nn.BatchNorm1d(self.latent_dim))
        layers += mlp_layers([self.latent_dim, *hidden], act, bias, dropout)
        layers.append(nn.Linear([self.latent_dim, *hidden][-1], self.input_dim, bias=bias))
        return layers

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def activation_modules(self) -> list[nn.Module]:
        return self.hidden_activations


@dataclass
class MLPSpec(ModelSpec):
    """The MLP's settings (conf/model/mlp.yaml gives each its value; the presets change some)."""

    name: str = "mlp"
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 32])  # encoder hidden layers
    decoder_hidden_sizes: Optional[list[int]] = None  # null: the encoder's, reversed
    activation: str = "relu"  # after every hidden layer: one of models.layers.ACTIVATIONS
    latent_activation: str = "identity"  # on the code itself
    bias: bool = True
    dropout: float = 0.0  # after every hidden activation, encoder and decoder
    code_dropout: float = 0.0  # on the code, as the decoder's first step
    latent_batchnorm: bool = False  # BatchNorm1d on the code, decoder side
    init: Literal["default", "zeros"] = "default"  # torch's init, or every weight 0 (biases keep torch's)

    def check(self) -> None:
        super().check()
        for key in ("hidden_sizes", "decoder_hidden_sizes"):
            sizes = getattr(self, key) or []
            require(all(s >= 1 for s in sizes), key, sizes, "use positive layer sizes")
        for key in ("activation", "latent_activation"):
            value = getattr(self, key)
            require(value in ACTIVATIONS, key, value, f"use one of {', '.join(ACTIVATIONS)}")
        for key in ("dropout", "code_dropout"):
            value = getattr(self, key)
            require(0 <= value < 1, key, value, "use a probability in [0, 1)")

    def build(self, shape: DataShape, loss: Loss = "mse") -> MLPAutoencoder:
        return MLPAutoencoder(shape.dim, **self.model_settings(), loss=loss)

    def model_settings(self) -> dict[str, Any]:
        """The settings the model class takes (all but name and input_dim)."""
        return {k: v for k, v in self.settings().items() if k not in ("_target_", "name", "input_dim")}

    def decoder_sizes(self) -> list[int]:
        return list(reversed(self.hidden_sizes)) if self.decoder_hidden_sizes is None else self.decoder_hidden_sizes

    def layer_widths(self, shape: DataShape) -> list[int]:
        return [shape.dim, *self.hidden_sizes, self.latent_dim, *self.decoder_sizes(), shape.dim]

    def widest_setting(self, shape: DataShape) -> str:
        candidates = [
            (max(self.hidden_sizes, default=0), f"model.hidden_sizes={self.hidden_sizes}"),
            (max(self.decoder_sizes(), default=0), f"model.decoder_hidden_sizes={self.decoder_sizes()}"),
            (self.latent_dim, f"model.latent_dim={self.latent_dim}"),
            (shape.dim, f"the data's {shape.dim} values per row"),
        ]
        return max(candidates, key=lambda c: c[0])[1]
