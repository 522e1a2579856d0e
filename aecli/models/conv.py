"""A convolutional autoencoder (`model=conv`) for image data: MNIST's 28x28, digits' 8x8, or a user's
images (`dataset=file` with an (n, height, width) array, or rows with `dataset.image_shape`). The
image shape comes from the data; nothing in the model's settings repeats it.

  encoder: (1, H, W) -> [Conv2d(k, stride 2, padding k // 2), activation] per entry of `channels`
           -> flatten -> Linear -> latent_dim
  decoder: Linear -> unflatten -> [ConvTranspose2d(stride 2), activation] mirrored, the last one
           linear -> (1, H, W)

Rows stay flattened everywhere else (data, loss, figures, checkpoints' data_shape): the model
reshapes them itself, so the loop, the analyses and `aecli.load_run` treat it as any other model.
A stride-2 convolution with an odd kernel and padding k // 2 maps a side n to ceil(n / 2); each
transposed convolution's output padding (0 or 1) undoes exactly that, so the image comes back at
exactly H x W, odd sizes included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from aecli.data.base import DataShape
from aecli.errors import ConfigError
from aecli.models.base import Autoencoder, Loss, ModelSpec
from aecli.models.layers import ACTIVATIONS, activation, is_activation
from aecli.plugins import require


def downsampled(size: int, kernel: int, layers: int) -> list[int]:
    """The side length before and after each stride-2 convolution with padding kernel // 2: `size`,
    then ceil(size / 2) per layer for an odd kernel."""
    sizes = [size]
    for _ in range(layers):
        sizes.append((sizes[-1] + 2 * (kernel // 2) - kernel) // 2 + 1)
    return sizes


def output_padding(size_in: int, size_out: int, kernel: int) -> int:
    """The output padding that makes a stride-2 transposed convolution (padding kernel // 2) turn a
    side of `size_in` into exactly `size_out`: without it an odd side would come back one too long
    or an even one one too short."""
    return size_out - ((size_in - 1) * 2 - 2 * (kernel // 2) + kernel)


def times(n: int) -> str:
    """`once`, `twice`, `3 times`."""
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


class ConvAutoencoder(Autoencoder):
    """Stride-2 convolutions down to a flat code and transposed convolutions back up. Convolutions
    share their weights over the image, so they learn strokes and edges wherever they appear with
    far fewer weights than an MLP on the same pixels; the linear layers at the code let
    `latent_dim` be any size, as the MLP's."""

    encoder: nn.Sequential
    decoder: nn.Sequential

    def __init__(
        self,
        image_shape: tuple[int, int],
        channels: list[int],
        kernel_size: int = 3,
        latent_dim: int = 16,
        activation_name: str = "relu",
        loss: Loss = "mse",
    ) -> None:
        super().__init__(loss)
        self.image_shape, self.latent_dim = (int(image_shape[0]), int(image_shape[1])), int(latent_dim)
        self.heights = downsampled(self.image_shape[0], kernel_size, len(channels))
        self.widths = downsampled(self.image_shape[1], kernel_size, len(channels))
        encoder = self._encoder_layers(channels, kernel_size, activation_name)
        decoder = self._decoder_layers(channels, kernel_size, activation_name)
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)
        self.hidden_activations = [m for m in [*encoder, *decoder] if is_activation(m)]

    def _encoder_layers(self, channels: list[int], kernel: int, act: str) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for c_in, c_out in zip([1, *channels[:-1]], channels):
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2), activation(act)]
        flat = channels[-1] * self.heights[-1] * self.widths[-1]
        return [*layers, nn.Flatten(), nn.Linear(flat, self.latent_dim)]

    def _decoder_layers(self, channels: list[int], kernel: int, act: str) -> list[nn.Module]:
        """The encoder mirrored; the last transposed convolution is linear, as the MLP's output layer
        (pixels are not squashed into [0, 1]: the loss and the figures see the values as they are)."""
        deepest = (channels[-1], self.heights[-1], self.widths[-1])
        layers: list[nn.Module] = [nn.Linear(self.latent_dim, math.prod(deepest)), nn.Unflatten(1, deepest)]
        outs = list(reversed([1, *channels[:-1]]))
        for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
            level = len(channels) - i  # the side lengths go from heights[level] back to heights[level - 1]
            padding = (
                output_padding(self.heights[level], self.heights[level - 1], kernel),
                output_padding(self.widths[level], self.widths[level - 1], kernel),
            )
            layers.append(
                nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, output_padding=padding)
            )
            if i < len(channels) - 1:  # a hidden layer; the last one gives the pixels
                layers.append(activation(act))
        return [*layers, nn.Flatten()]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(len(x), 1, *self.image_shape))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def activation_modules(self) -> list[nn.Module]:
        return self.hidden_activations


@dataclass
class ConvSpec(ModelSpec):
    """The convolutional autoencoder's settings (conf/model/conv.yaml gives each its value)."""

    name: str = "conv"
    latent_dim: int = 16
    channels: list[int] = field(default_factory=lambda: [16, 32])  # feature maps after each stride-2 convolution
    kernel_size: int = 3  # odd: the padding kernel_size // 2 keeps the sampling grid centred
    activation: str = "relu"  # one of models.layers.ACTIVATIONS

    def check(self) -> None:
        super().check()
        require(
            len(self.channels) >= 1 and min(self.channels) >= 1,
            "channels",
            self.channels,
            "use a list of one or more positive channel counts, e.g. [16, 32]",
        )
        require(
            self.kernel_size >= 1 and self.kernel_size % 2 == 1,
            "kernel_size",
            self.kernel_size,
            "use an odd size >= 1 (an even kernel has no centre pixel, so the image would shift)",
        )
        require(self.activation in ACTIVATIONS, "activation", self.activation, f"use one of {', '.join(ACTIVATIONS)}")

    def check_fits(self, shape: DataShape, data_name: str) -> None:
        """Image data, and no more convolutions than halve its shorter side down to one pixel: one
        more would have a single pixel left to "halve", and only add weights."""
        super().check_fits(shape, data_name)
        if shape.image_shape is None:
            raise ConfigError(
                f"model=conv needs image data (dataset=mnist, digits, or dataset=file with images), "
                f"but dataset={data_name} has rows of {shape.dim} values; use an MLP such as model=mlp"
            )
        height, width = shape.image_shape
        most = (min(height, width) - 1).bit_length()  # halvings of the shorter side until one pixel is left
        if most == 0:
            raise ConfigError(
                f"the {height}x{width} images of dataset={data_name} are too small for model=conv, which "
                f"halves each image at least once; use an MLP such as model=mlp"
            )
        if len(self.channels) > most:
            entries = "1 entry" if most == 1 else f"{most} entries"
            raise ConfigError(
                f"model.channels={self.channels} halves each image {times(len(self.channels))}, more than the "
                f"{height}x{width} images of dataset={data_name} allow; use at most {entries}"
            )

    def build(self, shape: DataShape, loss: Loss = "mse") -> ConvAutoencoder:
        if shape.image_shape is None:  # build_training calls check_fits first; a direct call gets the sentence
            self.check_fits(shape, "data")
        assert shape.image_shape is not None
        return ConvAutoencoder(
            shape.image_shape, self.channels, self.kernel_size, self.latent_dim, self.activation, loss
        )

    def feature_maps(self, shape: DataShape) -> list[int]:
        """Values per image after each convolution (channels x height x width), input side first."""
        assert shape.image_shape is not None
        h, w = shape.image_shape
        heights = downsampled(h, self.kernel_size, len(self.channels))[1:]
        widths = downsampled(w, self.kernel_size, len(self.channels))[1:]
        return [c * s * t for c, s, t in zip(self.channels, heights, widths)]

    def layer_widths(self, shape: DataShape) -> list[int]:
        """Values per row after each layer. Right for the activations the memory estimate counts;
        as dense layers, their products overstate the weights (see `parameter_count`)."""
        if shape.image_shape is None:
            return super().layer_widths(shape)
        maps = self.feature_maps(shape)
        return [shape.dim, *maps, self.latent_dim, *reversed(maps), shape.dim]

    def parameter_count(self, shape: DataShape) -> int:
        """The model's exact number of weights and biases: convolution kernels are small and shared
        over the image, so this is far below what dense layers of `layer_widths` would hold."""
        assert shape.image_shape is not None
        k2, ins = self.kernel_size**2, [1, *self.channels[:-1]]
        convs = sum(c_in * c_out * k2 + c_out for c_in, c_out in zip(ins, self.channels))
        transposed = sum(c_out * c_in * k2 + c_in for c_in, c_out in zip(ins, self.channels))
        flat = self.feature_maps(shape)[-1]
        return convs + transposed + (flat * self.latent_dim + self.latent_dim) + (self.latent_dim * flat + flat)

    def widest_setting(self, shape: DataShape) -> str:
        return f"model.channels={self.channels}"
