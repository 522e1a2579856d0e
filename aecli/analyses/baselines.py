"""Baselines in every run: is the trained model any better than the two simplest answers?

  mean predictor  every point reconstructed as the training mean: the loss a model that learned
                  nothing about the points gets (with mse: the data's variance per value)
  PCA-k           the best linear code of the model's size k (model.latent_dim): fit on the
                  training split, points projected onto the top k principal directions
  identity        where the run corrupts its inputs (regularizer.mask_rate: a denoising
                  autoencoder), the corrupted point returned as it is: what doing nothing
                  scores against the clean point (the corruption seeded, IDENTITY_SEED)

Both are scored on the points the run's val_loss is scored on (the validation split, its first
`trainer.limit_val_batches` batches' worth when that is set) with the run's loss (`trainer.loss`,
a per-sample average as aecli.training.loop.evaluate computes it), so they compare directly with
the model's final validation reconstruction loss: `final_val_loss`, or a VAE's
`final_val_reconstruction` (its val_loss adds the KL term, which the baselines do not have).

A model that does not beat PCA is flagged (`beats_pca` 0). Where k >= the data's dimension PCA
reconstructs every point exactly (loss 0): no model can beat it, so `baseline_pca_exact` is 1 and
`beats_pca` is left out rather than reported as a failure.
"""

from __future__ import annotations

import logging
import math
from typing import Optional, cast

import torch

from aecli.analyses import RunContext
from aecli.training.loop import Batches
from aecli.training.regularizers import build_regularizers

log = logging.getLogger("aecli")

CHUNK = 8192  # rows per float64 block: MNIST's 60000 x 784 never needs a float64 copy of its own
COVARIANCE_BYTES = 2**28  # a float64 dim x dim covariance up to 256 MiB (dim <= 5792): exact PCA
LOWRANK_OVERSAMPLING, LOWRANK_ITERATIONS = 10, 4  # wider data: torch.svd_lowrank's extra columns and power steps
SMOKE_FIT_ROWS = 2048  # a smoke run fits PCA on at most this many training rows (it checks paths, not numbers)
IDENTITY_SEED = 0  # the identity baseline's corruption: the same masks as analyses.denoising's default seed


def baselines(ctx: RunContext) -> dict[str, float]:
    """baseline_mean_loss, baseline_pca_loss (with its code size) and whether the model beats PCA."""
    data, kind = ctx.data, str(ctx.cfg.trainer.loss)
    train = data.train[: ctx.size(len(data.train), SMOKE_FIT_ROWS)]
    k = int(ctx.model.latent_dim)
    mean, directions = pca_fit(train, k)
    scored = scored_points(ctx)
    mean_loss = loss(scored, mean, None, kind)
    exact = k >= data.dim
    pca_loss = 0.0 if exact else loss(scored, mean, directions, kind)
    model_loss, what = compared_loss(ctx)
    out = {
        "baseline_mean_loss": mean_loss,
        "baseline_pca_loss": pca_loss,
        "baseline_pca_code_size": float(k),
        "baseline_pca_exact": float(exact),
    }
    if not exact:
        out["beats_pca"] = float(model_loss < pca_loss)
    corrupting = [r for r in build_regularizers(ctx.cfg.get("regularizer") or {}) if r.corrupts]
    if corrupting:
        generator, corrupted = torch.Generator().manual_seed(IDENTITY_SEED), scored
        for term in corrupting:
            corrupted = term.corrupt(corrupted, generator)
        out["baseline_identity_loss"] = loss(scored, None, None, kind, corrupted)
    log.info("%s", verdict_line(ctx.title, what, model_loss, mean_loss, pca_loss, k, exact))
    return out


def verdict_line(title: str, what: str, model: float, mean: float, pca: float, k: int, exact: bool) -> str:
    """ "polynomial / tanh: val loss 0.0091 vs mean predictor 0.52, PCA-1 0.031: beats PCA"."""
    if exact:
        verdict = "PCA is exact (code size >= data dimension), no model can beat it"
    elif model < pca:
        verdict = "beats PCA"
    elif pca > 0 and model <= pca * 1.005:
        verdict = f"matches PCA ({model / pca:.4g}x its loss)"
    else:
        verdict = f"does NOT beat PCA ({model / pca:.3g}x its loss)" if pca > 0 else "does NOT beat PCA"
    return f"{title}: {what} {model:.4g} vs mean predictor {mean:.4g}, PCA-{k} {pca:.4g}: {verdict}"


def compared_loss(ctx: RunContext) -> tuple[float, str]:
    """The model's final validation reconstruction loss and what it is called: val_loss, unless the
    model's loss has other terms (a VAE's kl), then its reconstruction term alone."""
    last = ctx.history[-1]
    reconstruction = last.terms.get("val_reconstruction", last.val_loss)
    if math.isclose(reconstruction, last.val_loss, rel_tol=1e-12, abs_tol=0.0):
        return last.val_loss, "val loss"
    return reconstruction, "val reconstruction"


def scored_points(ctx: RunContext) -> torch.Tensor:
    """The validation rows the run's val_loss is scored on (aecli.training.loop.fit's cut)."""
    t = ctx.cfg.trainer
    return Batches.of(len(ctx.data.train), t).evaluated(ctx.data.val, t.limit_val_batches)


def pca_fit(train: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training mean (dim,) and the top min(k, dim) principal directions (dim, k') in float64,
    from the covariance accumulated in blocks (two passes: mean, then centred cross products). Data
    too wide for a dim x dim covariance (over COVARIANCE_BYTES) gets a randomized SVD instead."""
    n, dim = train.shape
    mean = torch.zeros(dim, dtype=torch.float64)
    for i in range(0, n, CHUNK):
        mean += train[i : i + CHUNK].to("cpu", torch.float64).sum(0)
    mean /= max(n, 1)
    if dim * dim * 8 > COVARIANCE_BYTES:
        q = min(k + LOWRANK_OVERSAMPLING, n, dim)
        centre = mean[None].to(train.device, train.dtype)
        _, _, v = torch.svd_lowrank(train, q=q, niter=LOWRANK_ITERATIONS, M=centre)
        return mean, v[:, : min(k, dim)].to("cpu", torch.float64)
    cov = torch.zeros(dim, dim, dtype=torch.float64)
    for i in range(0, n, CHUNK):
        c = train[i : i + CHUNK].to("cpu", torch.float64) - mean
        cov += c.T @ c
    _, vectors = torch.linalg.eigh(cov)  # eigenvalues ascending: the last columns are the top directions
    return mean, vectors[:, dim - min(k, dim) :]


def loss(
    points: torch.Tensor,
    mean: Optional[torch.Tensor],
    directions: Optional[torch.Tensor],
    kind: str,
    answers: Optional[torch.Tensor] = None,
) -> float:
    """The run's loss of reconstructing `points` as `mean` (directions None), as their projection onto
    `directions` through `mean`, or as `answers` (the identity baseline's corrupted points), as a
    per-sample average: mse, the mean over every value; sse, each row's sum of squares, averaged over
    rows (evaluate's per_sample convention)."""
    n, dim = points.shape
    total = 0.0
    for i in range(0, n, CHUNK):
        rows = points[i : i + CHUNK].to("cpu", torch.float64)
        if answers is not None:
            residual = rows - answers[i : i + CHUNK].to("cpu", torch.float64)
        else:
            c = rows - cast(torch.Tensor, mean)
            residual = c if directions is None else c - (c @ directions) @ directions.T
        total += float((residual**2).sum())
    per_sample = total / max(n, 1)
    return per_sample / dim if kind == "mse" else per_sample
