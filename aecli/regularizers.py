"""Regularizers: the two hooks the training loop calls on every step.

`corrupt` may change the model's input (the target stays the clean batch), and
`penalty` returns a term added to the reconstruction loss. One class holds every
term the studies use, each off at zero, so they combine freely from the config
(`regularizer=denoising regularizer.weight_l2=1e-4` is the mnist_denoising study):

  weight_l2      gamma * sum over Linear layers of mean(W^2)       (mnist studies)
  activation_l1  lambda * mean |h| over every hidden activation     (activation_penalty)
  activation_l2  lambda * mean h^2 over every hidden activation     (activation_penalty)
  mask_rate      zero each input entry with this probability        (denoising)
"""

from __future__ import annotations

from typing import Optional, cast

import torch
from torch import nn


class Regularizer:
    """All regularization terms of one run; `attach` once to the model before training."""

    def __init__(
        self,
        name: str = "none",
        weight_l2: float = 0.0,
        activation_l1: float = 0.0,
        activation_l2: float = 0.0,
        mask_rate: float = 0.0,
    ) -> None:
        self.name = name
        self.weight_l2, self.activation_l1, self.activation_l2 = weight_l2, activation_l1, activation_l2
        self.mask_rate = mask_rate
        self._weights: list[torch.Tensor] = []
        self._activations: list[torch.Tensor] = []  # filled by forward hooks during a training step
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def needs_activations(self) -> bool:
        return self.activation_l1 > 0 or self.activation_l2 > 0

    def attach(self, model: nn.Module) -> None:
        """Find the weights and hidden activation modules the penalty terms read."""
        self._weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
        if self.needs_activations:
            for module in getattr(model, "hidden_activations", []):
                self._hooks.append(module.register_forward_hook(self._keep_activation))

    def _keep_activation(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        if module.training:  # evaluation passes must not pile up activations
            self._activations.append(output)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Masking noise: each entry kept with probability 1 - mask_rate, else set to 0."""
        if self.mask_rate == 0:
            return x
        return masking_noise(x, self.mask_rate)

    def penalty(self, model: nn.Module, x: torch.Tensor, code: torch.Tensor) -> Optional[torch.Tensor]:
        """The step's extra loss, or None when every term is off (saves an addition per step)."""
        terms: list[torch.Tensor] = []
        if self.weight_l2 > 0:
            # a tensor: every model has Linear layers, so never the int 0 of an empty sum
            terms.append(self.weight_l2 * cast(torch.Tensor, sum(torch.mean(w**2) for w in self._weights)))
        if self.needs_activations:
            acts, self._activations = self._activations, []
            if acts:
                if self.activation_l1 > 0:
                    terms.append(self.activation_l1 * torch.cat([a.abs().flatten() for a in acts]).mean())
                if self.activation_l2 > 0:
                    terms.append(self.activation_l2 * torch.cat([(a**2).flatten() for a in acts]).mean())
        return cast(torch.Tensor, sum(terms)) if terms else None

    def detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._activations = [], []


def masking_noise(x: torch.Tensor, rate: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """`x` with each entry zeroed independently with probability `rate`."""
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= rate
    return x * keep


NoRegularizer = Regularizer  # regularizer=none: every term off
