"""One run, start to finish: config -> data -> model -> train -> evaluate -> plot -> save.

`run` is the whole flow in one function; the CLI calls it from inside Hydra,
and anything else (tests, notebooks) can call it with a composed config and a
folder of its choosing.
"""

from __future__ import annotations

import copy
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from aecli import analyses, plots
from aecli.analyses import RunContext
from aecli.config import ConfigError, source_config, validate
from aecli.data import Dataset
from aecli.models import MLPAutoencoder
from aecli.optim import build_optimizer
from aecli.run_files import (
    SUMMARY_FILE,
    CheckpointError,
    RunFiles,
    find_checkpoint,
    load_checkpoint,
    load_model,
    write_summary,
)
from aecli.trackers import Trackers
from aecli.train import EpochRecord, TrainState, fit, resolve_device, stop_on_signal

log = logging.getLogger("aecli")


def run(cfg: DictConfig, run_dir: Union[str, Path]) -> dict[str, Any]:
    """Train one autoencoder as `cfg` says and write every artifact into `run_dir`; return the summary."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    summary: dict[str, Any] = {
        "status": "failed",
        **{
            group: OmegaConf.select(  # a bad config may lack them
                cfg, f"{group}.name", default=None, throw_on_missing=False, throw_on_resolution_failure=False
            )
            for group in ("dataset", "model")
        },
    }
    try:
        validate(cfg)
        # experiment trackers (aecli/trackers.py): a missing package stops the run here, before any data
        trackers = Trackers({name: build(spec) for name, spec in (cfg.get("logger") or {}).items()})
    except ConfigError as err:  # say why in the folder too (a sweep report shows it), then stop
        run_dir.mkdir(parents=True, exist_ok=True)
        write_summary(run_dir, {**summary, "error": f"ConfigError: {err}"})
        raise
    resume, resume_path = None, None
    if cfg.trainer.resume_from:
        try:
            resume_path = find_checkpoint(cfg.trainer.resume_from)
            resume = load_checkpoint(resume_path)
        except CheckpointError as err:
            raise CheckpointError(f"trainer.resume_from={cfg.trainer.resume_from!r}: {err}") from None
    history = [EpochRecord(**row) for row in resume["metrics"]] if resume else []  # filled as fit goes on
    files = RunFiles(
        run_dir,
        OmegaConf.to_yaml(cfg, resolve=True),
        history,
        steps_from=resume_path.parent.parent if resume_path else None,
    )
    try:
        trackers.start(cfg, run_dir)
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
            raise ConfigError(
                f"model.input_dim={cfg.model.input_dim} does not match the {data.dim}-D "
                f"data of dataset={data.name}; set model.input_dim=null to infer it"
            )
        if t.drop_last and t.batch_size > len(data.train):
            raise ConfigError(
                f"trainer.batch_size={t.batch_size} with trainer.drop_last=true leaves no batch "
                f"from the {len(data.train)} training points; lower the batch size"
            )
        train_x, val_x = data.train.to(device, dtype), data.val.to(device, dtype)
        model = build(cfg.model, input_dim=data.dim).to(device, dtype)
        if source_model is not None:
            transfer_decoder(source_model, model, cfg.model.freeze_decoder)
        initial_model = copy.deepcopy(model)  # the untrained net, for the studies' before/after figures
        if t.compile:  # the calls the loop makes; state_dict keys and checkpoints stay those of the plain model
            model.encode, model.decode = torch.compile(model.encode), torch.compile(model.decode)
        optimizer, scheduler = build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
        state = restore(resume, cfg.trainer.resume_from, model, optimizer, scheduler) if resume else None
        regularizer = build(cfg.regularizer)
        regularizer.attach(model)
        title = f"{data.name} / {cfg.model.name}"
        n_params = sum(p.numel() for p in model.parameters())
        log.info(
            "%s: %d parameters, %d train / %d val points, %d epochs on %s -> %s",
            title,
            n_params,
            len(train_x),
            len(val_x),
            t.epochs,
            device,
            run_dir,
        )

        # --- train: one metrics row per epoch, a checkpoint every `checkpoint_every`, best.pt alongside
        bar = tqdm(
            total=t.epochs,
            initial=history[-1].epoch if history else 0,
            desc=title,
            unit="epoch",
            disable=(not t.progress) or None,
            leave=False,
        )
        log_every = max(1, t.epochs // 10)  # about ten log lines per run, whatever its length
        best: Optional[dict[str, Any]] = resume.get("best") if resume else None

        def on_epoch(record: EpochRecord, state: TrainState) -> None:
            nonlocal best  # `fit` has appended `record` to `history`
            files.append_metrics(record)
            trackers.log_epoch(record)
            if best is None or record.val_loss < best["val_loss"]:  # kept in memory, saved with last.pt
                best = {
                    "epoch": record.epoch,
                    "val_loss": record.val_loss,
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                }
            if record.epoch % t.checkpoint_every == 0 and record.epoch < t.epochs:  # the last: once fit returns
                files.save_checkpoint(model, optimizer, scheduler, history, state, best)
            if record.epoch > 0:
                bar.update(1)
                bar.set_postfix(train=f"{record.train_loss:.4g}", val=f"{record.val_loss:.4g}", refresh=False)
            if bar.disable and record.epoch % log_every == 0:
                log.info(
                    "epoch %d/%d  train %.5g  val %.5g", record.epoch, t.epochs, record.train_loss, record.val_loss
                )

        with stop_on_signal() as stop_requested:
            result = fit(
                model,
                train_x,
                val_x,
                optimizer,
                scheduler,
                regularizer,
                t,
                data_order,
                on_epoch=on_epoch,
                stop_requested=stop_requested,
                on_step_losses=files.append_step_losses if t.log_steps else None,
                resume=state,
                history=history,
            )
        bar.close()
        regularizer.detach()
        if t.compile:  # analyses and figures get the plain model (deepcopy-able, any input shape)
            del model.encode, model.decode
        if result.weights_match_state:  # where training ended or was stopped, even mid-epoch: resumable
            files.save_checkpoint(model, optimizer, scheduler, history, result.state, best)
        # otherwise last.pt keeps the last checkpoint: never weights from inside a step, never NaN ones

        # --- evaluate and plot (the current weights; none for a diverged run)
        last = history[-1]
        ctx = RunContext(
            cfg, model, initial_model, source_model, data, history, device, dtype, run_dir, title, cfg.plots.dpi
        )
        metrics: dict[str, float] = {}
        if result.status != "diverged":
            if cfg.plots.enabled:
                metrics.update(draw_figures(ctx))
            for name, spec in cfg.analyses.items():  # the study's own numbers and figures
                log.info("analysis %s", name)
                metrics.update(build(spec, _partial_=True)(ctx))

        trackers.log_figures(sorted(run_dir.glob("*.png")))

        # --- save: summary.json last, so "completed" means every file above is there
        summary.update(
            status=result.status,
            epochs=last.epoch,
            steps=result.steps,
            final_train_loss=last.train_loss,
            final_val_loss=last.val_loss,
            best_val_loss=min(r.val_loss for r in history),
            best_epoch=min(history, key=lambda r: r.val_loss).epoch,
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
            summary.update(diverged_at_epoch=last.epoch + 1, diverged_at_step=result.diverged_at_step)
        if resume:
            summary["resumed_from"] = {
                "checkpoint": str(cfg.trainer.resume_from),
                "epoch": resume["epoch"],
                "step": state.steps if state else None,
            }
        log.info(
            "%s: %s after %d epochs, val loss %.5g, %.0f steps/s",
            title,
            result.status,
            last.epoch,
            last.val_loss,
            summary["steps_per_second"],
        )
        return summary
    except BaseException as err:
        summary["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        summary["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
        raise
    finally:
        trackers.finish(summary)  # a failed or interrupted run's too; tracker errors go into summary
        files.write_summary(summary)
        files.close()


def restore(
    ckpt: dict[str, Any],
    path: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
) -> TrainState:
    """Load a checkpoint's model, optimizer and schedule into freshly built ones; return where
    training stood. A checkpoint of another model, or one without training state, is a ConfigError."""
    if ckpt.get("train_state") is None:
        raise CheckpointError(
            f"trainer.resume_from={path!r} holds no training state (a best.pt, or a checkpoint "
            f"from an older aecli); resume from a run folder or its checkpoints/last.pt"
        )
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, ValueError, KeyError) as err:
        detail = str(err).strip().splitlines()
        raise ConfigError(
            f"trainer.resume_from={path!r} was saved by a different model or optimizer than this "
            f"config builds ({detail[1 if len(detail) > 1 else 0].strip()[:160]})"
        ) from None
    return TrainState.from_dict(ckpt["train_state"])


def resumed_config(resume: str, overrides: list[str]) -> DictConfig:
    """The config of `aecli resume=<run dir>`: the run's own saved config, continuing from its last.pt.
    Only settings that leave the results unchanged, and trainer.epochs (to train further), may be overridden."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    path = find_checkpoint(resume)
    ckpt = load_checkpoint(path)
    cfg = OmegaConf.create(ckpt["config_yaml"])
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise ConfigError(
                f"{key} cannot change when resuming (resume= continues the run with its saved "
                f"config); allowed: {', '.join(RESUMABLE_OVERRIDES)}, or start a new run with "
                f"trainer.resume_from={path}"
            )
        OmegaConf.update(cfg, key, override.value(), force_add=True)
    status = read_status(path.parent.parent)
    done = ckpt["train_state"] is not None and ckpt["train_state"]["batch"] == 0
    if status == "completed" and done and ckpt["epoch"] >= cfg.trainer.epochs:
        raise ConfigError(
            f"the run in {resume} already completed its {ckpt['epoch']} epochs; add "
            f"trainer.epochs=N with N > {ckpt['epoch']} to train it further"
        )
    if status == "diverged":
        raise ConfigError(
            f"the run in {resume} diverged and would diverge again from its last checkpoint; start "
            f"a new run with e.g. a lower optimizer.lr and trainer.resume_from={path}"
        )
    OmegaConf.update(cfg, "trainer.resume_from", str(path), force_add=True)
    OmegaConf.update(cfg, "resume", str(resume), force_add=True)
    return cfg


def read_status(run_dir: Path) -> Optional[str]:
    """The status in a run folder's summary.json, or None when it has none (yet)."""
    summary = Path(run_dir) / SUMMARY_FILE
    return json.loads(summary.read_text()).get("status") if summary.is_file() else None


RESUMABLE_OVERRIDES = ("trainer.epochs", "trainer.device", "trainer.num_threads", "trainer.progress")


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
    plots.loss_curve(
        [r.epoch for r in history],
        [r.train_loss for r in history],
        [r.val_loss for r in history],
        title,
        cfg.trainer.loss,
        run_dir / "loss_curve.png",
        dpi,
    )
    codes, x_hat = analyses.encode_reconstruct(ctx.model, ctx.tensor(data.val))
    plots.latent(
        codes, data.val_color, data.color_label, title, run_dir / "latent.png", dpi, points=f"{data.val_name} points"
    )
    plots.reconstruction(
        data.val.numpy(),
        x_hat,
        data.val_color,
        data.color_label,
        title,
        run_dir / "reconstruction.png",
        dpi,
        image_shape=data.image_shape,
    )
    if data.dim == 2 and data.grid_extent is not None:
        err = analyses.error_grid(ctx.model, data.grid_extent, cfg.plots.error_map_resolution, ctx.device)
        plots.error_map(err, data.grid_extent, cfg.plots.error_threshold, title, run_dir / "error_map.png", dpi)
        return {"error_map_share_below_threshold": float((err < cfg.plots.error_threshold).mean())}
    if data.dim != 2:
        log.info("error_map.png skipped: the error map needs 2-D data, %s is %d-D", data.name, data.dim)
    return {}


def prepare_source(cfg: DictConfig, run_dir: Path, device: torch.device) -> Optional[MLPAutoencoder]:
    """The model whose decoder `model.decoder_from` names, or None. `train` first trains that source
    run into <run_dir>/source: this config with `source` merged in and no decoder transfer."""
    source = cfg.model.decoder_from
    if source is None:
        return None
    if source == "train":
        source_cfg = source_config(cfg)
        source_dir = run_dir / "source"
        if read_status(source_dir) == "completed":  # a resumed run: its source run is already there
            log.info("model.decoder_from=train: using the source run already in %s", source_dir)
        else:
            log.info("model.decoder_from=train: training the source run first, in %s", source_dir)
            source_summary = run(source_cfg, source_dir)
            if source_summary["status"] != "completed":
                raise ConfigError(
                    f"model.decoder_from=train trained a source run that ended "
                    f"{source_summary['status']} (see {source_dir}); change the source settings"
                )
        source = str(source_dir)
    try:
        model, _ = load_model(source, device)
    except Exception as err:  # missing, unreadable, or an aecli checkpoint whose model cannot be rebuilt
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model.decoder_from={cfg.model.decoder_from!r} is not usable: {reason}") from None
    return model


def transfer_decoder(source: MLPAutoencoder, model: MLPAutoencoder, freeze: bool) -> None:
    """Copy the source model's decoder weights into `model` (shapes must match); optionally freeze them."""
    try:
        model.decoder.load_state_dict(source.decoder.state_dict())
    except RuntimeError as err:
        lines = str(err).splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise ConfigError(
            f"model.decoder_from names a decoder whose layers do not match this model's ({detail})"
        ) from None
    if freeze:
        model.decoder.requires_grad_(False)
