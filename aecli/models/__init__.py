"""Model families as plug-ins: `ModelSpec` subclasses that build an `Autoencoder` (aecli/models/base.py).

A config option of the `model` group names its family's spec with `_target_` (its import path):
each family is one module here (mlp.py, vae.py, conv.py), found through that path, so adding one
changes nothing in this package.
"""

from __future__ import annotations

from aecli.models.base import Autoencoder, AutoencoderOutput, Loss, ModelSpec, build_model
from aecli.models.layers import ACTIVATIONS
from aecli.models.mlp import MLPAutoencoder, MLPSpec

__all__ = [
    "ACTIVATIONS",
    "Autoencoder",
    "AutoencoderOutput",
    "Loss",
    "MLPAutoencoder",
    "MLPSpec",
    "ModelSpec",
    "build_model",
]
