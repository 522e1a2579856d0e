"""What the figures show, computed from a trained model, and the study analyses.

This module holds what every run computes (codes, reconstructions, error grids: each one
batched forward pass in eval mode, results as numpy) and `RunContext`, what a study
analysis receives. The study analyses live in the modules beside it; a config names
them under `analyses:` and the pipeline calls each after training:

    analyses:
      fresh_roll:                                   # any name
        _target_: aecli.analyses.swiss_roll.fresh_roll_rmse
        n: 2500                                     # keyword arguments after ctx

An analysis is a function `(ctx: RunContext, **settings) -> dict[str, float]`: it writes
its figures into ctx.run_dir (only where ctx.draw: plots.enabled=false means no PNG) and
returns numbers for summary.json's "metrics".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from aecli.data import Dataset
from aecli.models import Autoencoder
from aecli.training.loop import EpochRecord, evaluating  # noqa: F401  (evaluating: re-exported for the analyses)


@dataclass
class RunContext:
    """Everything a study analysis may read after training."""

    cfg: DictConfig  # the run's composed config
    model: Autoencoder  # trained weights (eval mode is up to the analysis)
    initial_model: Autoencoder  # the same model before its first step (the "untrained" comparisons)
    source_model: Optional[Autoencoder]  # the run transfer.decoder_from named, if any
    data: Dataset
    history: list[EpochRecord]
    device: torch.device
    dtype: torch.dtype
    run_dir: Path
    title: str  # "<dataset> / <model>", for figure titles
    dpi: int

    @property
    def fast_dev_run(self) -> bool:
        """A smoke run (trainer.fast_dev_run); also read from a partial config without `trainer`."""
        return bool(OmegaConf.select(self.cfg, "trainer.fast_dev_run", default=False))

    @property
    def draw(self) -> bool:
        """Whether to write figures (plots.enabled): false means no PNG at all, while every analysis
        still computes and returns its numbers. Also read from a partial config without `plots`."""
        return bool(OmegaConf.select(self.cfg, "plots.enabled", default=True))

    def size(self, full: int, small: int) -> int:
        """`full` in a normal run; at most `small` in a smoke run, where an analysis still does all its
        work, so every figure and metric is written, but on a few points or a coarse grid: a smoke run
        checks code paths, not numbers."""
        return min(full, small) if self.fast_dev_run else full

    def tensor(self, array: Union[np.ndarray, torch.Tensor, Any]) -> torch.Tensor:
        """`array` as a tensor on the run's device and dtype."""
        return torch.as_tensor(np.asarray(array) if not torch.is_tensor(array) else array).to(self.device, self.dtype)


def encode(model: Autoencoder, x: torch.Tensor) -> np.ndarray:
    """The codes of the rows of `x`, (n, latent_dim) float64, in eval mode."""
    with evaluating(model):
        return model.encode(x).double().cpu().numpy()


def decode(model: Autoencoder, codes: np.ndarray) -> np.ndarray:
    """The decoder's output for each row of `codes`, (n, input_dim) float64, in eval mode, on the
    model's own device and dtype."""
    param = next(model.parameters())
    z = torch.as_tensor(np.asarray(codes, dtype=np.float64)).reshape(len(codes), -1).to(param.device, param.dtype)
    with evaluating(model):
        return model.decode(z).double().cpu().numpy()


def encode_reconstruct(model: Autoencoder, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Codes and reconstructions of `x` (eval mode: no dropout, batch-norm running stats)."""
    with evaluating(model):
        code = model.encode(x)
        return code.float().cpu().numpy(), model.decode(code).float().cpu().numpy()


def error_grid(
    model: Autoencoder, extent: tuple[float, float, float, float], resolution: int, device: torch.device
) -> np.ndarray:
    """||x_hat - x|| on a resolution x resolution grid; row i is y[i] (bottom to top), column j is x[j]."""
    xmin, xmax, ymin, ymax = extent
    dtype = next(model.parameters()).dtype
    xs = torch.linspace(xmin, xmax, resolution, device=device, dtype=dtype)
    ys = torch.linspace(ymin, ymax, resolution, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with evaluating(model):
        err = torch.linalg.vector_norm(model.reconstruct(points) - points, dim=1)
    return err.reshape(resolution, resolution).cpu().numpy()
