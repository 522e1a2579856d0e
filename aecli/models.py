"""The general MLP autoencoder; every model preset in conf/model is one configuration of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

ACTIVATION_MODULES = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def _mlp(sizes: Sequence[int], activation: str, bias: bool, dropout: float) -> list[nn.Module]:
    """Linear layers between consecutive sizes, each followed by activation (and dropout)."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, bias=bias), ACTIVATION_MODULES[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class MLPAutoencoder(nn.Module):
    """encoder: input -> hidden_sizes -> latent_dim; decoder: latent_dim -> decoder_hidden_sizes -> input.

    The nonlinear_2d study's 2-3-2 nets are `hidden_sizes=[]`, `latent_dim=3`
    with the activation on the code (`latent_activation`).
    """

    name: str
    input_dim: int
    latent_dim: int
    encoder: nn.Sequential
    decoder: nn.Sequential
    hidden_activations: list[nn.Module]

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
        name: str = "mlp",
        **ignored: object,  # run-level model settings (decoder_from, freeze_decoder) the pipeline applies
    ) -> None:
        super().__init__()
        self.name = name
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        hidden = [int(h) for h in hidden_sizes]
        dec_hidden = list(reversed(hidden)) if decoder_hidden_sizes is None else [int(h) for h in decoder_hidden_sizes]

        enc_layers = _mlp([self.input_dim, *hidden], activation, bias, dropout)
        enc_layers += [nn.Linear(([self.input_dim, *hidden])[-1], self.latent_dim, bias=bias)]
        enc_layers += [ACTIVATION_MODULES[latent_activation]()]
        self.encoder = nn.Sequential(*enc_layers)

        dec_layers: list[nn.Module] = []
        if code_dropout > 0:
            dec_layers.append(nn.Dropout(code_dropout))
        if latent_batchnorm:
            dec_layers.append(nn.BatchNorm1d(self.latent_dim))
        dec_layers += _mlp([self.latent_dim, *dec_hidden], activation, bias, dropout)
        dec_layers.append(nn.Linear(([self.latent_dim, *dec_hidden])[-1], self.input_dim, bias=bias))
        self.decoder = nn.Sequential(*dec_layers)

        # The activations after each hidden layer (not the code): what activation penalties read.
        self.hidden_activations = [
            layer for layer in [*enc_layers[:-1], *dec_layers] if isinstance(layer, tuple(ACTIVATION_MODULES.values()))
        ]
        if init == "zeros":  # every weight 0, biases as torch drew them (mnist_bottleneck)
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.zeros_(layer.weight)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
