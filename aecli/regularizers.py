"""Regularizers: hooks the training loop calls on every step.

`corrupt` may change the model's input (the target stays the clean batch), and
`penalty` returns a term added to the reconstruction loss. New regularizers
(weight or activation penalties, denoising) subclass `Regularizer` and get a
config in conf/regularizer; the training loop does not change.
"""

from __future__ import annotations

import torch
from torch import nn


class Regularizer:
    """The interface, and the do-nothing default for both hooks."""

    name = "none"

    def __init__(self, name: str = "none") -> None:
        self.name = name

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Input the model sees in training; the loss still compares against `x`."""
        return x

    def penalty(self, model: nn.Module, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor | None:
        """Extra loss for this step, or None for no penalty (skips an addition per step)."""
        return None


class NoRegularizer(Regularizer):
    """The plain reconstruction loss (regularizer=none)."""
