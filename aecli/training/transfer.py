"""Starting from another run's decoder (`transfer` group; the rectangle_frozen_decoder study).

`transfer.decoder_from` names a run folder or checkpoint whose decoder weights the new model
starts from, or `train`: then the source run (this config with `transfer.source` merged in) is
trained first, into `<run dir>/source`, or continued there if a resumed run finds it unfinished.
`transfer.freeze_decoder` keeps those weights fixed, so only the encoder trains.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from aecli import grouped, signals
from aecli.errors import ConfigError, first_line
from aecli.models import Autoencoder
from aecli.run_files import CHECKPOINT_DIR, LAST_CHECKPOINT, load_model, read_status
from aecli.summary import Status
from aecli.validation import source_config

log = logging.getLogger("aecli")
SOURCE_DIR = "source"  # the source run's folder inside the run's own


def prepare_source(cfg: DictConfig, run_dir: Path, device: torch.device) -> Optional[Autoencoder]:
    """The model whose decoder `transfer.decoder_from` names, or None; `train` trains it first."""
    source = cfg.transfer.decoder_from
    if source is None:
        return None
    if source == "train":
        source = str(train_source(cfg, run_dir / SOURCE_DIR))
    try:
        model, _ = load_model(source, device)
    except Exception as err:  # missing, unreadable, or an aecli checkpoint whose model cannot be rebuilt
        raise ConfigError(
            f"transfer.decoder_from={cfg.transfer.decoder_from!r} is not usable: {first_line(err)}"
        ) from None
    return model


def train_source(cfg: DictConfig, source_dir: Path) -> Path:
    """The source run of decoder_from=train, completed in `source_dir`: already there (a resumed run),
    continued from its checkpoint, or trained from scratch. A stop inside it stops this run too."""
    from aecli.pipeline import run  # the same pipeline, one level down

    status = read_status(source_dir)
    if status == Status.completed:
        log.info("transfer.decoder_from=train: using the source run already in %s", source_dir)
        return source_dir
    source_cfg = source_config(cfg)
    checkpoint = source_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if checkpoint.is_file() and status != Status.diverged:
        OmegaConf.update(source_cfg, "trainer.resume_from", str(checkpoint))
        log.info("transfer.decoder_from=train: continuing the source run in %s", source_dir)
    else:
        log.info("transfer.decoder_from=train: training the source run first, in %s", source_dir)
    with grouped.alone():  # under hydra/launcher=vectorized the job's place in its group is for its own run
        summary = run(source_cfg, source_dir)
    if summary.status == Status.interrupted:
        raise signals.Stopped("source")
    if summary.status != Status.completed:
        raise ConfigError(
            f"transfer.decoder_from=train trained a source run that ended {summary.status} "
            f"(see {source_dir}); change the settings in transfer.source"
        )
    return source_dir


def transfer_decoder(source: Autoencoder, model: Autoencoder, freeze: bool) -> None:
    """Copy the source model's decoder weights into `model` (the layers must match); optionally freeze them."""
    try:
        model.decoder.load_state_dict(source.decoder.state_dict())
    except RuntimeError as err:
        lines = str(err).splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ConfigError(
            f"transfer.decoder_from names a decoder whose layers do not match this model's ({detail})"
        ) from None
    if freeze:
        model.decoder.requires_grad_(False)
