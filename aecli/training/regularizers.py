"""Regularizers: one small class per term, chosen by the `regularizer` config group.

The group is a flat mapping of term name to weight (conf/regularizer/none.yaml sets every term
to 0), so terms combine freely: `regularizer=denoising regularizer.weight_l2=1e-4` is the
mnist_denoising study, `regularizer=[denoising,weight_l2]` picks two presets at once. Each term
with a weight above 0 becomes its class below, registered by its key:

  weight_l2      gamma * sum over weight layers of mean(W^2)        (mnist studies)
  activation_l1  lambda * mean |h| over every hidden activation      (activation_penalty)
  activation_l2  lambda * mean h^2 over every hidden activation      (activation_penalty)
  mask_rate      zero each input value with this probability         (denoising)

A term may change the model's input in training (`corrupt`; the target stays the clean batch)
and may add a loss term of its own name (`penalty`), logged as `train_<name>` and `val_<name>`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar, Optional, cast

import torch
from omegaconf import DictConfig
from torch import nn

from aecli.errors import ConfigError
from aecli.models.base import Autoencoder
from aecli.plugins import finite

REGULARIZERS: dict[str, type[Regularizer]] = {}  # config key -> its class, as each is defined


class Regularizer:
    """One term. Subclasses set `key` (their config key and term name) and override what they do."""

    key: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REGULARIZERS[cls.key] = cls

    def __init__(self, weight: float) -> None:
        self.weight = weight

    @classmethod
    def check(cls, weight: Any) -> Optional[str]:
        """Why `weight` is not allowed (the rule to follow), or None."""
        return None if finite(weight) and weight >= 0 else "use a finite weight >= 0"

    def attach(self, model: Autoencoder) -> None:
        """Before training: find what the term reads."""

    def detach(self) -> None:
        """After training: let go of the model."""

    def corrupt(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The training input made of the batch `x` (the loss still compares with `x`); `generator`: the
        random numbers it draws, where a caller must repeat them (the identity baseline)."""
        return x

    @property
    def corrupts(self) -> bool:
        """Whether the term changes the input the model sees (a denoising autoencoder's noise)."""
        return type(self).corrupt is not Regularizer.corrupt

    def penalty(self, model: Autoencoder) -> Optional[torch.Tensor]:
        """This step's loss term, or None when the term adds none."""
        return None


class WeightL2(Regularizer):
    key = "weight_l2"

    def attach(self, model: Autoencoder) -> None:
        layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
        self.weights = [m.weight for m in model.modules() if isinstance(m, layers)]

    def penalty(self, model: Autoencoder) -> Optional[torch.Tensor]:
        # a tensor: every model has weight layers, so never the int 0 of an empty sum
        return self.weight * cast(torch.Tensor, sum(torch.mean(w**2) for w in self.weights))


class ActivationPenalty(Regularizer):
    """Reads the model's hidden activations through forward hooks, kept until the step's penalty."""

    def attach(self, model: Autoencoder) -> None:
        self.kept: list[torch.Tensor] = []
        self.hooks = [m.register_forward_hook(self._keep) for m in model.activation_modules()]

    def _keep(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self.kept.append(output)

    def detach(self) -> None:
        for hook in getattr(self, "hooks", []):
            hook.remove()
        self.hooks, self.kept = [], []

    def penalty(self, model: Autoencoder) -> Optional[torch.Tensor]:
        acts, self.kept = self.kept, []
        return self.weight * self.reduce(torch.cat([a.flatten() for a in acts])) if acts else None

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ActivationL1(ActivationPenalty):
    key = "activation_l1"

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        return values.abs().mean()


class ActivationL2(ActivationPenalty):
    key = "activation_l2"

    def reduce(self, values: torch.Tensor) -> torch.Tensor:
        return (values**2).mean()


class MaskingNoise(Regularizer):
    key = "mask_rate"

    @classmethod
    def check(cls, weight: Any) -> Optional[str]:
        return None if finite(weight) and 0 <= weight < 1 else "use a probability in [0, 1)"

    def corrupt(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return masking_noise(x, self.weight, generator)


def masking_noise(x: torch.Tensor, rate: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """`x` with each entry zeroed independently with probability `rate`."""
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= rate
    return x * keep


def build_regularizers(settings: Any) -> list[Regularizer]:
    """The terms a `regularizer` config node switches on (weight above 0), in the node's order;
    one ConfigError sentence for an unknown key or a bad weight."""
    if not isinstance(settings, (Mapping, DictConfig)):  # e.g. regularizer=${seed}: a number, no terms
        raise ConfigError(
            f"regularizer={settings!r} is not allowed: give a mapping of terms to weights, "
            f"e.g. regularizer=weight_l2 or regularizer.weight_l2=1e-4"
        )
    values = dict(settings)
    values.pop("name", None)
    terms = []
    for key, weight in values.items():
        if key not in REGULARIZERS:
            close = difflib.get_close_matches(str(key), list(REGULARIZERS), n=1)
            hint = f" (did you mean regularizer.{close[0]}?)" if close else f"; the terms are {', '.join(REGULARIZERS)}"
            raise ConfigError(f"regularizer.{key} is not a regularizer term{hint}")
        rule = REGULARIZERS[key].check(weight)
        if rule is not None:
            raise ConfigError(f"regularizer.{key}={weight!r} is not allowed: {rule}")
        if weight > 0:
            terms.append(REGULARIZERS[key](float(weight)))
    return terms
