"""Optimizers and the optional exponential learning-rate schedule, from the optimizer config."""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from omegaconf import DictConfig, OmegaConf

# Config name -> torch class; every other key of the config is a keyword argument of
# the class except `name` and `lr_decay` (the ExponentialLR gamma).
OPTIMIZER_CLASSES = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def build_optimizer(
    cfg: DictConfig, params: Iterable[torch.nn.Parameter]
) -> tuple[torch.optim.Optimizer, Optional[torch.optim.lr_scheduler.LRScheduler]]:
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(kwargs, dict)
    name, gamma = kwargs.pop("name"), kwargs.pop("lr_decay")
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    optimizer = OPTIMIZER_CLASSES[name](params, **kwargs)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma) if gamma is not None else None
    return optimizer, scheduler
