"""Building blocks the model families share: the one list of activations, and MLP stacks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

# The activations a model setting may name: the one list (specs check against it, models build from it).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def mlp_layers(sizes: Sequence[int], act: str, bias: bool, dropout: float) -> list[nn.Module]:
    """Linear layers between consecutive sizes, each followed by the activation (and dropout)."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, bias=bias), activation(act)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


def is_activation(module: nn.Module) -> bool:
    return isinstance(module, tuple(ACTIVATIONS.values()))
