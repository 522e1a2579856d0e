"""The stacked model's loss terms: each member's reconstruction loss and regularizer penalties, as
its plain model and its own regularizers compute them, one column per term.

A member's objective is its loss plus its penalties; the stack minimises the sum over members,
whose gradient with respect to member k's weights is member k's own gradient. Members may have
different regularizer weights (a term a member lacks has weight 0 for it and is not in its
history). Masking noise is one draw of torch's global generator of shape [K, B, D] per step (see
stacked_model.py on what that means for equality with a job run alone).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from aecli.training.regularizers import ActivationL1, ActivationL2, MaskingNoise, Regularizer, WeightL2
from aecli.vectorized.stacked_model import StackedMLP, forward

RECONSTRUCTION = "reconstruction"  # the plain MLP's one model term (aecli.models.base.Autoencoder.forward)
PENALTIES = {WeightL2: WeightL2.key, ActivationL1: ActivationL1.key, ActivationL2: ActivationL2.key}
SUPPORTED = (*PENALTIES, MaskingNoise)


def unsupported_regularizer(regularizers: Sequence[Regularizer]) -> Optional[str]:
    """Why these regularizers cannot train stacked, or None."""
    for r in regularizers:
        if type(r) not in SUPPORTED:
            return f"regularizer {r.key} is not stacked"
    return None


@dataclass
class StackedTerms:
    """Which terms each member has (in its own order), and the per-member weights of each."""

    names: list[str]  # every member's terms together: reconstruction, then penalties
    member_columns: list[list[int]]  # member k's terms, as columns of `names`, in its own order
    weights: dict[str, torch.Tensor]  # penalty -> [K] weight (0 for members without it)
    mask_rate: Optional[torch.Tensor]  # [K, 1, 1], or None when no member masks its input
    mean: bool  # trainer.loss=mse: each term is a batch mean (else a batch sum)

    def member_names(self, k: int) -> list[str]:
        return [self.names[c] for c in self.member_columns[k]]


def build_terms(
    regularizers: Sequence[Sequence[Regularizer]], has_hidden: bool, ref: torch.Tensor, mean: bool
) -> StackedTerms:
    """Terms of K members: a penalty is a member's term when its plain run would log it (an activation
    penalty only where the model has hidden activations)."""
    names = [RECONSTRUCTION]
    own: list[list[str]] = []
    for regs in regularizers:
        keys = [r.key for r in regs if type(r) in PENALTIES and (type(r) is WeightL2 or has_hidden)]
        names += [key for key in keys if key not in names]
        own.append([RECONSTRUCTION, *keys])

    def column(key: str) -> torch.Tensor:
        values = [next((r.weight for r in regs if r.key == key), 0.0) for regs in regularizers]
        return torch.tensor(values, device=ref.device, dtype=ref.dtype)

    rates = column(MaskingNoise.key)
    mask = rates.view(-1, 1, 1) if bool((rates > 0).any()) else None
    weights = {key: column(key) for key in names[1:]}
    return StackedTerms(names, [[names.index(n) for n in keys] for keys in own], weights, mask, mean)


def batch_terms(
    stack: StackedMLP, terms: StackedTerms, x: torch.Tensor, training: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass of every member on its batch x [K, B, D]: the summed objective, and each
    member's terms [K, T] (a term a member lacks is 0)."""
    x_in = x
    if training and terms.mask_rate is not None:
        x_in = x * (torch.rand(x.shape, device=x.device, dtype=x.dtype) >= terms.mask_rate)
    recon, hidden = forward(stack, x_in, training)
    squared = (recon - x).square()
    loss = squared.mean((1, 2)) if terms.mean else squared.sum((1, 2))
    if len(terms.names) == 1:  # the common case, kept short: it runs every step
        return loss.sum(), loss.unsqueeze(1)
    columns = [loss]
    for key in terms.names[1:]:
        columns.append(terms.weights[key] * _penalty(key, stack, hidden))
    values = torch.stack(columns, 1) if len(columns) > 1 else columns[0].unsqueeze(1)
    return values.sum(), values


def _penalty(key: str, stack: StackedMLP, hidden: Sequence[torch.Tensor]) -> torch.Tensor:
    """One penalty's unweighted value per member [K], as the plain regularizer computes it."""
    if key == WeightL2.key:
        return _total([layer.weight.square().mean((1, 2)) for layer in stack.layers])
    count = sum(h.shape[1] * h.shape[2] for h in hidden)  # the plain penalty's mean is over every hidden value
    if key == ActivationL1.key:
        return _total([h.abs().sum((1, 2)) for h in hidden]) / count
    return _total([h.square().sum((1, 2)) for h in hidden]) / count


def _total(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    return functools.reduce(operator.add, parts)


def evaluate(stack: StackedMLP, terms: StackedTerms, x: torch.Tensor, chunk: int = 16384) -> torch.Tensor:
    """Every member's terms as per-sample averages over all of x [K, N, D], in float64, without noise or
    dropout and without autograd: what aecli.training.loop.evaluate gives for each member alone."""
    k, n = x.shape[0], x.shape[1]
    chunk = max(1, chunk // max(k, 1))
    sums = torch.zeros(k, len(terms.names), device=x.device, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, n, chunk):
            xb = x[:, i : i + chunk]
            values = batch_terms(stack, terms, xb, training=False)[1]
            sums += (values * xb.shape[1] if terms.mean else values).double()
    return sums / max(n, 1)
