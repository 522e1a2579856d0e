"""One run, start to finish: config -> data -> model -> train -> evaluate -> plot -> save.

`run` is the whole flow in one function; the CLI calls it from inside Hydra,
and anything else (tests, notebooks) can call it with a composed config and a
folder of its choosing.
"""

from __future__ import annotations

import copy
import logging
import platform
import time
from pathlib import Path
from typing import Any, Optional

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from aecli import analyses, plots
from aecli.analyses import RunContext
from aecli.config import ConfigError, validate
from aecli.data import Dataset
from aecli.optim import build_optimizer
from aecli.run_files import RunFiles, load_model, write_summary
from aecli.train import EpochRecord, fit, resolve_device, stop_on_signal

log = logging.getLogger("aecli")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one autoencoder as `cfg` says and write every artifact into `run_dir`; return the summary."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    summary: dict[str, Any] = {"status": "failed", "dataset": cfg.dataset.name, "model": cfg.model.name}
    try:
        validate(cfg)
    except ConfigError as err:  # say why in the folder too (a sweep report shows it), then stop
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, {**summary, "error": f"ConfigError: {err}"})
        raise
    files = RunFiles(run_dir, OmegaConf.to_yaml(cfg, resolve=True))
    try:
        # --- set-up: threads, device, seeds
        t = cfg.trainer
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        device = resolve_device(t.device)
        dtype = getattr(torch, t.dtype)
        source_model = prepare_source(cfg, run_dir, device)  # model.decoder_from, trained first if asked
        torch.manual_seed(cfg.seed)  # model initialisation and dropout
        data_order = torch.Generator().manual_seed(cfg.seed)

        # --- data and model
        data: Dataset = build(cfg.dataset)
        if cfg.model.input_dim is not None and cfg.model.input_dim != data.dim:
            raise ConfigError(f"model.input_dim={cfg.model.input_dim} does not match the {data.dim}-D "
                              f"data of dataset={data.name}; set model.input_dim=null to infer it")
        if t.drop_last and t.batch_size > len(data.train):
            raise ConfigError(f"trainer.batch_size={t.batch_size} with trainer.drop_last=true leaves no batch "
                              f"from the {len(data.train)} training points; lower the batch size")
        train_x, val_x = data.train.to(device, dtype), data.val.to(device, dtype)
        model = build(cfg.model, input_dim=data.dim).to(device, dtype)
        if source_model is not None:
            transfer_decoder(source_model, model, cfg.model.freeze_decoder)
        initial_model = copy.deepcopy(model)  # the untrained net, for the studies' before/after figures
        if t.compile:  # the calls the loop makes; state_dict keys and checkpoints stay those of the plain model
            model.encode, model.decode = torch.compile(model.encode), torch.compile(model.decode)
        optimizer, scheduler = build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
        regularizer = build(cfg.regularizer)
        regularizer.attach(model)
        title = f"{data.name} / {cfg.model.name}"
        n_params = sum(p.numel() for p in model.parameters())
        log.info("%s: %d parameters, %d train / %d val points, %d epochs on %s -> %s",
                 title, n_params, len(train_x), len(val_x), t.epochs, device, run_dir)

        # --- train: one metrics row per epoch, a checkpoint every `checkpoint_every`
        bar = tqdm(total=t.epochs, desc=title, unit="epoch", disable=(not t.progress) or None, leave=False)
        log_every = max(1, t.epochs // 10)  # about ten log lines per run, whatever its length

        def on_epoch(record: EpochRecord) -> None:
            files.append_metrics(record)
            if record.epoch % t.checkpoint_every == 0:  # the last epoch's is written once fit returns
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
                         on_epoch=lambda r: (history.append(r), on_epoch(r)), stop_requested=stop_requested,
                         on_step_losses=files.append_step_losses if t.log_steps else None)
        bar.close()
        regularizer.detach()
        if t.compile:  # analyses and figures get the plain model (deepcopy-able, any input shape)
            del model.encode, model.decode
        if result.weights_match_last_epoch:
            files.save_checkpoint(model, optimizer, scheduler, history)  # the epoch training ended on
        # otherwise last.pt keeps the last checkpointed epoch: never mid-epoch or NaN weights

        # --- evaluate and plot (the current weights; none for a diverged run)
        last = history[-1]
        ctx = RunContext(cfg, model, initial_model, source_model, data, history, device, dtype, run_dir, title,
                         cfg.plots.dpi)
        metrics: dict[str, float] = {}
        if result.status != "diverged":
            if cfg.plots.enabled:
                metrics.update(draw_figures(ctx))
            for name, spec in cfg.analyses.items():  # the study's own numbers and figures
                log.info("analysis %s", name)
                metrics.update(build(spec, _partial_=True)(ctx))

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
            dtype=t.dtype,
            parameters=n_params,
            metrics=metrics,
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


def build(spec: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, except that a ConfigError raised while building (e.g. MNIST files
    missing) reaches the CLI as itself, one sentence, instead of wrapped in Hydra's exception."""
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, ConfigError):
            raise err.__cause__ from None
        raise


def draw_figures(ctx: RunContext) -> dict[str, float]:
    """loss_curve.png, latent.png, reconstruction.png and, for 2-D data, error_map.png; returns the
    error map's number: the share of the window reconstructed within plots.error_threshold."""
    cfg, data, history, title, run_dir, dpi = ctx.cfg, ctx.data, ctx.history, ctx.title, ctx.run_dir, ctx.dpi
    plots.loss_curve([r.epoch for r in history], [r.train_loss for r in history], [r.val_loss for r in history],
                     title, cfg.trainer.loss, run_dir / "loss_curve.png", dpi)
    codes, x_hat = analyses.encode_reconstruct(ctx.model, ctx.tensor(data.val))
    plots.latent(codes, data.val_color, data.color_label, title, run_dir / "latent.png", dpi,
                 points=f"{data.val_name} points")
    plots.reconstruction(data.val.numpy(), x_hat, data.val_color, data.color_label, title,
                         run_dir / "reconstruction.png", dpi, image_shape=data.image_shape)
    if data.dim == 2 and data.grid_extent is not None:
        err = analyses.error_grid(ctx.model, data.grid_extent, cfg.plots.error_map_resolution, ctx.device)
        plots.error_map(err, data.grid_extent, cfg.plots.error_threshold, title, run_dir / "error_map.png", dpi)
        return {"error_map_share_below_threshold": float((err < cfg.plots.error_threshold).mean())}
    if data.dim != 2:
        log.info("error_map.png skipped: the error map needs 2-D data, %s is %d-D", data.name, data.dim)
    return {}


def prepare_source(cfg: DictConfig, run_dir: Path, device: torch.device) -> Optional[torch.nn.Module]:
    """The model whose decoder `model.decoder_from` names, or None. `train` first trains that source
    run into <run_dir>/source: this config with `source` merged in and no decoder transfer."""
    source = cfg.model.decoder_from
    if source is None:
        return None
    if source == "train":
        source_cfg = OmegaConf.merge(cfg, {"model": {"decoder_from": None, "freeze_decoder": False}}, cfg.source)
        source_cfg.analyses, source_cfg.source = {}, {}  # assigned, not merged: merging {} keeps old keys
        log.info("model.decoder_from=train: training the source run first, in %s", run_dir / "source")
        source_summary = run(source_cfg, run_dir / "source")
        if source_summary["status"] != "completed":
            raise RuntimeError(f"the source run in {run_dir / 'source'} ended {source_summary['status']}")
        source = str(run_dir / "source")
    try:
        model, _ = load_model(source, device)
    except (ValueError, KeyError, RuntimeError) as err:
        raise ConfigError(f"model.decoder_from={cfg.model.decoder_from!r} is not usable: {err}") from None
    return model


def transfer_decoder(source: torch.nn.Module, model: torch.nn.Module, freeze: bool) -> None:
    """Copy the source model's decoder weights into `model` (shapes must match); optionally freeze them."""
    try:
        model.decoder.load_state_dict(source.decoder.state_dict())
    except RuntimeError as err:
        lines = str(err).splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ConfigError(f"model.decoder_from names a decoder whose layers do not match this model's ({detail})"
                          ) from None
    if freeze:
        model.decoder.requires_grad_(False)
