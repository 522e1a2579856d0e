"""What the figures show, computed from a trained model: codes, reconstructions, error grids.

Each function is one batched forward pass in eval mode; results come back as numpy.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def encode_reconstruct(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Codes and reconstructions of `x` (eval mode: no dropout, batch-norm running stats)."""
    was_training = model.training
    model.eval()
    code = model.encode(x)
    x_hat = model.decode(code)
    model.train(was_training)
    return code.float().cpu().numpy(), x_hat.float().cpu().numpy()


@torch.no_grad()
def error_grid(
    model: nn.Module, extent: tuple[float, float, float, float], resolution: int, device: torch.device
) -> np.ndarray:
    """||x_hat - x|| on a resolution x resolution grid; row i is y[i] (bottom to top), column j is x[j]."""
    xmin, xmax, ymin, ymax = extent
    xs = torch.linspace(xmin, xmax, resolution, device=device)
    ys = torch.linspace(ymin, ymax, resolution, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    was_training = model.training
    model.eval()
    err = torch.linalg.vector_norm(model(points) - points, dim=1)
    model.train(was_training)
    return err.reshape(resolution, resolution).cpu().numpy()
