"""One run, start to finish: config -> data -> model -> train -> evaluate -> plot -> save.

`run` is the whole flow in one function; the CLI calls it from inside Hydra,
and anything else (tests, notebooks) can call it with a composed config and a
folder of its choosing.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from aecli import analysis, plots
from aecli.config import ConfigError, validate
from aecli.data import Dataset
from aecli.optim import build_optimizer
from aecli.run_files import RunFiles
from aecli.train import EpochRecord, fit, resolve_device, stop_on_signal

log = logging.getLogger("aecli")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one autoencoder as `cfg` says and write every artifact into `run_dir`; return the summary."""
    started = time.perf_counter()
    validate(cfg)
    run_dir = Path(run_dir)
    files = RunFiles(run_dir, OmegaConf.to_yaml(cfg, resolve=True))
    summary: dict[str, Any] = {"status": "failed", "dataset": cfg.dataset.name, "model": cfg.model.name}
    try:
        # --- set-up: threads, device, seeds
        t = cfg.trainer
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        device = resolve_device(t.device)
        torch.manual_seed(cfg.seed)  # model initialisation and dropout
        data_order = torch.Generator().manual_seed(cfg.seed)

        # --- data and model
        data: Dataset = instantiate(cfg.dataset)
        if cfg.model.input_dim is not None and cfg.model.input_dim != data.dim:
            raise ConfigError(f"model.input_dim={cfg.model.input_dim} does not match the {data.dim}-D "
                              f"data of dataset={data.name}; set model.input_dim=null to infer it")
        if t.drop_last and t.batch_size > len(data.train):
            raise ConfigError(f"trainer.batch_size={t.batch_size} with trainer.drop_last=true leaves no batch "
                              f"from the {len(data.train)} training points; lower the batch size")
        train_x, val_x = data.train.to(device), data.val.to(device)
        model = instantiate(cfg.model, input_dim=data.dim).to(device)
        optimizer, scheduler = build_optimizer(cfg.optimizer, model.parameters())
        regularizer = instantiate(cfg.regularizer)
        title = f"{data.name} / {cfg.model.name}"
        n_params = sum(p.numel() for p in model.parameters())
        log.info("%s: %d parameters, %d train / %d val points, %d epochs on %s -> %s",
                 title, n_params, len(train_x), len(val_x), t.epochs, device, run_dir)

        # --- train: one metrics row per epoch, a checkpoint every `checkpoint_every`
        bar = tqdm(total=t.epochs, desc=title, unit="epoch", disable=(not t.progress) or None, leave=False)
        log_every = max(1, t.epochs // 10)  # about ten log lines per run, whatever its length

        def on_epoch(record: EpochRecord) -> None:
            files.append_metrics(record)
            if record.epoch % t.checkpoint_every == 0 or record.epoch == t.epochs:
                files.save_checkpoint(model, optimizer, scheduler, history)
            if record.epoch > 0:
                bar.update(1)
                bar.set_postfix(train=f"{record.train_loss:.4g}", val=f"{record.val_loss:.4g}", refresh=False)
            if bar.disable and record.epoch % log_every == 0:
                log.info("epoch %d/%d  train %.5g  val %.5g", record.epoch, t.epochs, record.train_loss,
                         record.val_loss)

        history: list[EpochRecord] = []  # filled by fit as it goes; on_epoch checkpoints it
        with stop_on_signal() as stop_requested:
            result = fit(model, train_x, val_x, optimizer, scheduler, regularizer, t, data_order,
                         on_epoch=lambda r: (history.append(r), on_epoch(r)), stop_requested=stop_requested)
        bar.close()
        if result.weights_match_last_epoch:
            files.save_checkpoint(model, optimizer, scheduler, history)  # the epoch training ended on
        # otherwise last.pt keeps the last checkpointed epoch: never mid-epoch or NaN weights

        # --- evaluate and plot (the current weights; none for a diverged run)
        last = history[-1]
        if cfg.plots.enabled and result.status != "diverged":
            draw_figures(cfg, model, data, history, title, run_dir, device)

        # --- save: summary.json last, so "completed" means every file above is there
        summary.update(
            status=result.status,
            epochs=last.epoch,
            steps=result.steps,
            final_train_loss=last.train_loss,
            final_val_loss=last.val_loss,
            best_val_loss=min(r.val_loss for r in history),
            loss=t.loss,
            train_seconds=round(result.seconds, 4),
            wall_seconds=round(time.perf_counter() - started, 4),
            steps_per_second=round(result.steps / result.seconds, 1) if result.steps else 0.0,
            device=str(device),
            parameters=n_params,
            seed=cfg.seed,
            torch=torch.__version__,
            python=platform.python_version(),
        )
        if result.status == "diverged":
            summary["diverged_at_epoch"] = last.epoch + 1
        log.info("%s: %s after %d epochs, val loss %.5g, %.0f steps/s", title, result.status, last.epoch,
                 last.val_loss, summary["steps_per_second"])
        return summary
    except BaseException as err:
        summary["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        summary["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
        raise
    finally:
        files.write_summary(summary)
        files.close()


def draw_figures(cfg: DictConfig, model: torch.nn.Module, data: Dataset, history: list[EpochRecord],
                 title: str, run_dir: Path, device: torch.device) -> None:
    """loss_curve.png, latent.png, reconstruction.png and, for 2-D data, error_map.png."""
    p = cfg.plots
    plots.loss_curve([r.epoch for r in history], [r.train_loss for r in history], [r.val_loss for r in history],
                     title, cfg.trainer.loss, run_dir / "loss_curve.png", p.dpi)
    codes, x_hat = analysis.encode_reconstruct(model, data.val.to(device))
    plots.latent(codes, data.val_color, data.color_label, title, run_dir / "latent.png", p.dpi)
    plots.reconstruction(data.val.numpy(), x_hat, data.val_color, data.color_label, title,
                         run_dir / "reconstruction.png", p.dpi)
    if data.dim == 2 and data.grid_extent is not None:
        err = analysis.error_grid(model, data.grid_extent, p.error_map_resolution, device)
        plots.error_map(err, data.grid_extent, p.error_threshold, title, run_dir / "error_map.png", p.dpi)
    elif data.dim != 2:
        log.info("error_map.png skipped: the error map needs 2-D data, %s is %d-D", data.name, data.dim)
