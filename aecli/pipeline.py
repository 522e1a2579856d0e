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
from typing import Any, Optional, Union, cast

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from aecli import analyses, plots, signals
from aecli.analyses import RunContext
from aecli.config import ConfigError, check_model_memory, source_config, validate
from aecli.data import Dataset, UnscalableData, non_finite_dtype, overflow_message
from aecli.errors import first_line
from aecli.folders import locked
from aecli.models import MLPAutoencoder
from aecli.optim import build_optimizer
from aecli.run_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    SUMMARY_FILE,
    CheckpointError,
    RunFiles,
    find_checkpoint,
    load_checkpoint,
    load_model,
    write_summary,
)
from aecli.trackers import Trackers
from aecli.train import EpochRecord, FitResult, TrainState, fit, resolve_device

log = logging.getLogger("aecli")


def run(cfg: DictConfig, run_dir: Union[str, Path]) -> dict[str, Any]:
    """Train one autoencoder as `cfg` says and write every artifact into `run_dir`; return the summary.

    The run goes through its phases in order; summary.json says "running" from the start and,
    however the run ends (a stop request between two safe points, a second Ctrl-C, an error),
    the truth at the end, with the phase it stopped in. A stop request ends the run at the next
    safe point with status "interrupted"; `aecli resume=` then does what is missing."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with signals.handling(), locked(run_dir), RunRecord(run_dir, cfg) as record:
        # setup: no stop point before config.yaml is written, so every stop leaves a resumable folder
        validate(cfg)
        cfg = smoke_settings(cfg) if cfg.trainer.fast_dev_run else cfg
        record.trackers = Trackers({name: build(spec) for name, spec in (cfg.get("logger") or {}).items()})
        resume, resume_path = read_resume(cfg)
        history = [EpochRecord(**row) for row in resume["metrics"]] if resume else []  # filled as fit goes on
        files = record.files = RunFiles(
            run_dir, OmegaConf.to_yaml(cfg, resolve=True), history, resume_path.parent.parent if resume_path else None
        )
        record.trackers.start(cfg, run_dir)
        device, dtype = set_up_torch(cfg.trainer)

        record.phase("source")  # model.decoder_from: the source run, trained first if asked
        source_model = prepare_source(cfg, run_dir, device)

        record.phase("data")
        torch.manual_seed(cfg.seed)  # model initialisation and dropout
        data_order = torch.Generator().manual_seed(cfg.seed)
        data: Dataset = build(cfg.dataset)
        check_data_fits(cfg, data)

        record.phase("model")
        check_model_memory(
            cfg, data.dim, len(data.train), len(data.val), error_map=data.dim == 2 and data.grid_extent is not None
        )
        model = build(cfg.model, input_dim=data.dim).to(device, dtype)
        if source_model is not None:
            transfer_decoder(source_model, model, cfg.model.freeze_decoder)
        initial_model = copy.deepcopy(model)  # the untrained net, for the studies' before/after figures
        optimizer, scheduler = build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
        state = restore(resume, cfg, model, optimizer, scheduler) if resume else None
        regularizer = build(cfg.regularizer)

        record.phase("train")
        result = train(cfg, model, data, optimizer, scheduler, regularizer, data_order, state, history, files, record)
        record.trained(cfg, result, history, resume, state, device, model)
        if result.status == "interrupted":  # stopped inside training: its checkpoint is written, nothing drawn
            raise signals.Stopped("train")
        if result.status == "diverged":  # no figures or analyses of a diverged model
            return record.summary

        ctx = RunContext(
            cfg, model, initial_model, source_model, data, history, device, dtype, run_dir, record.title, cfg.plots.dpi
        )
        record.phase("figures")
        if cfg.plots.enabled:
            record.metrics.update(draw_figures(ctx))
        record.phase("analyses")
        for name, spec in cfg.analyses.items():  # the study's own numbers and figures
            signals.check("analyses")
            log.info("analysis %s", name)
            record.metrics.update(build(spec, _partial_=True)(ctx))
        record.trackers.log_figures(sorted(run_dir.glob("*.png")))
        record.summary["status"] = result.status  # every file above is written: "completed"
    return record.summary


def train(
    cfg: DictConfig,
    model: MLPAutoencoder,
    data: Dataset,
    optimizer: torch.optim.Optimizer,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
    regularizer: Any,
    data_order: torch.Generator,
    state: Optional[TrainState],
    history: list[EpochRecord],
    files: RunFiles,
    record: RunRecord,
) -> FitResult:
    """fit with the run's per-epoch work: metrics row, trackers, best model, checkpoints, progress
    and log lines; then the checkpoint of where training ended."""
    t = cfg.trainer
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    train_x, val_x = data.train.to(device, dtype), data.val.to(device, dtype)
    if t.compile:  # the calls the loop makes; state_dict keys and checkpoints stay those of the plain model
        model.encode, model.decode = torch.compile(model.encode), torch.compile(model.decode)  # type: ignore[method-assign]
    regularizer.attach(model)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "%s: %d parameters, %d train / %d val points, %d epochs on %s -> %s",
        *(record.title, n_params, len(train_x), len(val_x), t.epochs, device, files.dir),
    )
    bar = tqdm(
        total=t.epochs,
        initial=history[-1].epoch if history else 0,
        desc=record.title,
        unit="epoch",
        disable=(not t.progress) or None,
        leave=False,
    )
    log_every = max(1, t.epochs // 10)  # about ten log lines per run, whatever its length

    def on_epoch(row: EpochRecord, state: TrainState) -> None:  # `fit` has appended `row` to `history`
        files.append_metrics(row)
        record.trackers.log_epoch(row)
        if record.best is None or row.val_loss < record.best["val_loss"]:  # kept in memory, saved with last.pt
            record.best = {
                "epoch": row.epoch,
                "val_loss": row.val_loss,
                "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            }
        if row.epoch % t.checkpoint_every == 0 and row.epoch < t.epochs:  # the last: once fit returns
            files.save_checkpoint(model, optimizer, scheduler, history, state, record.best)
        if row.epoch > 0:
            bar.update(1)
            bar.set_postfix(train=f"{row.train_loss:.4g}", val=f"{row.val_loss:.4g}", refresh=False)
        if bar.disable and row.epoch % log_every == 0:
            log.info("epoch %d/%d  train %.5g  val %.5g", row.epoch, t.epochs, row.train_loss, row.val_loss)

    try:
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
            stop_requested=signals.requested,
            on_step_losses=files.append_step_losses if t.log_steps else None,
            resume=state,
            history=history,
        )
    finally:
        bar.close()
        regularizer.detach()
        if t.compile:  # analyses and figures get the plain model (deepcopy-able, any input shape)
            del model.encode, model.decode
    if result.weights_match_state:  # where training ended or was stopped, even mid-epoch: resumable
        files.save_checkpoint(model, optimizer, scheduler, history, result.state, record.best)
    # otherwise last.pt keeps the last checkpoint: never weights from inside a step, never NaN ones
    return result


class RunRecord:
    """What the run knows about itself so far, and summary.json saying it: "running" from the first
    moment (so a killed run never keeps an older "completed"), then the truth however the run ends.

    Used as a context manager around the run: a stop request (signals.Stopped) ends it as
    "interrupted" in the phase it was in, and the run returns normally; a second Ctrl-C
    (KeyboardInterrupt) is "interrupted" too and propagates; any other error is "failed", with
    its first line, and propagates. Trackers are told the outcome, open files are closed."""

    def __init__(self, run_dir: Path, cfg: DictConfig) -> None:
        self.run_dir = run_dir
        self.started = time.perf_counter()
        self.summary: dict[str, Any] = {"status": "running", "phase": "setup"}
        for group in ("dataset", "model"):  # a bad config may lack them
            self.summary[group] = OmegaConf.select(
                cfg, f"{group}.name", default=None, throw_on_missing=False, throw_on_resolution_failure=False
            )
        self.summary["fast_dev_run"] = bool(
            OmegaConf.select(cfg, "trainer.fast_dev_run", default=False, throw_on_resolution_failure=False)
        )
        self.title = f"{self.summary['dataset']} / {self.summary['model']}"
        self.metrics: dict[str, float] = {}
        self.best: Optional[dict[str, Any]] = None  # the lowest-val-loss epoch's weights, for best.pt
        self.trackers = Trackers({})
        self.files: Optional[RunFiles] = None

    def phase(self, name: str) -> None:
        """Enter the next phase: a safe point, so a stop asked for before it ends the run here."""
        signals.check(name)
        self.summary["phase"] = name
        write_summary(self.run_dir, self.summary)  # a few ms: anyone can watch which phase a run is in

    def trained(
        self,
        cfg: DictConfig,
        result: FitResult,
        history: list[EpochRecord],
        resume: Optional[dict[str, Any]],
        state: Optional[TrainState],
        device: torch.device,
        model: torch.nn.Module,
    ) -> None:
        """What training gave: the losses, speed and where it ended."""
        last = history[-1]
        self.summary.update(
            epochs=last.epoch,
            steps=result.steps,
            final_train_loss=last.train_loss,
            final_val_loss=last.val_loss,
            best_val_loss=min(r.val_loss for r in history),
            best_epoch=min(history, key=lambda r: r.val_loss).epoch,
            loss=cfg.trainer.loss,
            train_seconds=round(result.seconds, 4),
            steps_per_second=round(result.steps / result.seconds, 1) if result.steps else 0.0,
            device=str(device),
            dtype=cfg.trainer.dtype,
            parameters=sum(p.numel() for p in model.parameters()),
            metrics=self.metrics,
            seed=cfg.seed,
            torch=torch.__version__,
            python=platform.python_version(),
        )
        if result.status == "diverged":
            self.summary.update(status="diverged", diverged_at_epoch=last.epoch + 1)
            self.summary["diverged_at_step"] = result.diverged_at_step
        if resume:
            self.summary["resumed_from"] = {
                "checkpoint": str(cfg.trainer.resume_from),
                "epoch": resume["epoch"],
                "step": state.steps if state else None,
            }
        log.info(
            "%s: %s after %d epochs, val loss %.5g, %.0f steps/s",
            *(self.title, result.status, last.epoch, last.val_loss, self.summary["steps_per_second"]),
        )

    def __enter__(self) -> RunRecord:
        write_summary(self.run_dir, self.summary)  # "running", phase "setup"
        return self

    def __exit__(self, kind: Optional[type[BaseException]], err: Optional[BaseException], tb: Any) -> bool:
        if err is not None:
            stopped = isinstance(err, (signals.Stopped, KeyboardInterrupt))
            self.summary["status"] = "interrupted" if stopped else "failed"
            if isinstance(err, signals.Stopped):
                self.summary.update(phase=err.phase, stopped_by=signals.reason())
            else:
                self.summary["error"] = f"{type(err).__name__}: {first_line(err)}"
        self.summary["wall_seconds"] = round(time.perf_counter() - self.started, 4)
        try:
            self.trackers.finish(self.summary)  # a failed or interrupted run's too; tracker errors go into summary
        finally:
            if self.files is not None:
                self.files.close()
            write_summary(self.run_dir, self.summary)
        if self.summary["status"] == "interrupted":
            log.info(
                "%s: interrupted during %s; continue with aecli resume=%s",
                self.title,
                self.summary["phase"],
                self.run_dir,
            )
        return isinstance(err, signals.Stopped)  # a stop request ends the run normally, as "interrupted"


def set_up_torch(t: DictConfig) -> tuple[torch.device, torch.dtype]:
    """Threads, then the device and dtype the run trains in."""
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    return resolve_device(t.device), getattr(torch, t.dtype)


def smoke_settings(cfg: DictConfig) -> DictConfig:
    """trainer.fast_dev_run: the same pipeline on one epoch of at most 2 batches (evaluated on at
    most 2 batches' worth of points), a checkpoint at its end and the error map on a coarse grid.
    The analyses read ctx.fast_dev_run to shrink their own work."""
    t, p = cfg.trainer, cfg.plots
    smoke = {
        "trainer": {
            "epochs": min(t.epochs, 1),
            "limit_train_batches": min(t.limit_train_batches or 2, 2),
            "limit_val_batches": min(t.limit_val_batches or 2, 2),
            "checkpoint_every": 1,
        },
        "plots": {"error_map_resolution": min(p.error_map_resolution, SMOKE_ERROR_MAP_RESOLUTION)},
    }
    return cast(DictConfig, OmegaConf.merge(cfg, smoke))


SMOKE_ERROR_MAP_RESOLUTION = 50


def read_resume(cfg: DictConfig) -> tuple[Optional[dict[str, Any]], Optional[Path]]:
    """The checkpoint trainer.resume_from names, and its path; (None, None) for a fresh start."""
    if not cfg.trainer.resume_from:
        return None, None
    try:
        path = find_checkpoint(cfg.trainer.resume_from)
        return load_checkpoint(path), path
    except CheckpointError as err:
        raise CheckpointError(f"trainer.resume_from={cfg.trainer.resume_from!r}: {err}") from None


def check_data_fits(cfg: DictConfig, data: Dataset) -> None:
    """The data that was built is finite in the run's dtype (settings too large overflow it, and a run would
    "diverge" on it at once), and the model and batch settings fit it."""
    for points in (data.train, data.val):
        broken = non_finite_dtype(points, getattr(torch, cfg.trainer.dtype))
        if broken is not None:
            settings = cast(dict, OmegaConf.to_container(cfg.dataset, resolve=True))
            where = str(broken).removeprefix("torch.")
            raise ConfigError(overflow_message(data.name, settings, f"makes non-finite points in {where}"))
    if cfg.model.input_dim is not None and cfg.model.input_dim != data.dim:
        raise ConfigError(
            f"model.input_dim={cfg.model.input_dim} does not match the {data.dim}-D "
            f"data of dataset={data.name}; set model.input_dim=null to infer it"
        )
    t = cfg.trainer
    if t.drop_last and t.batch_size > len(data.train):
        raise ConfigError(
            f"trainer.batch_size={t.batch_size} with trainer.drop_last=true leaves no batch "
            f"from the {len(data.train)} training points; lower the batch size"
        )


def restore(
    ckpt: dict[str, Any],
    cfg: DictConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
) -> TrainState:
    """Load a checkpoint's model, optimizer and schedule into freshly built ones; return where
    training stood. A checkpoint of another model, another optimizer or without training state is
    one sentence. Optimizer settings this config changes (e.g. a lower optimizer.lr after a
    divergence) replace the checkpoint's, and the log says so."""
    path = cfg.trainer.resume_from
    if ckpt.get("train_state") is None:
        raise CheckpointError(
            f"trainer.resume_from={path!r} holds no training state (a best.pt, or a checkpoint "
            f"from an older aecli); resume from a run folder or its checkpoints/last.pt"
        )
    saved = checkpoint_config(ckpt).get("optimizer") or {}
    if saved.get("name") != cfg.optimizer.name:
        raise ConfigError(
            f"trainer.resume_from={path!r} was trained with optimizer={saved.get('name')}, whose state "
            f"cannot continue with optimizer={cfg.optimizer.name}; resume with optimizer={saved.get('name')}"
        )
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        detail = str(err).strip().splitlines() or [type(err).__name__]
        raise ConfigError(
            f"trainer.resume_from={path!r} was saved by a different model or optimizer than this "
            f"config builds ({detail[1 if len(detail) > 1 else 0].strip()[:160]})"
        ) from None
    changed = {
        k: (saved.get(k), v)
        for k, v in plain(cfg.optimizer).items()
        if k not in ("name", "fused") and saved.get(k) != v
    }
    if changed:
        apply_optimizer_settings(cfg.optimizer, optimizer, scheduler)
        log.info(
            "trainer.resume_from: this config's optimizer settings replace the checkpoint's (%s)",
            ", ".join(f"{k} {old!s} -> {new!s}" for k, (old, new) in changed.items()),
        )
    return TrainState.from_dict(ckpt["train_state"])


def apply_optimizer_settings(
    o: DictConfig, optimizer: torch.optim.Optimizer, scheduler: Optional[torch.optim.lr_scheduler.LRScheduler]
) -> None:
    """Set every parameter group's hyperparameters from the optimizer config, over a loaded state;
    an lr schedule restarts its decay from optimizer.lr."""
    settings = {k: v for k, v in plain(o).items() if k in optimizer.defaults}
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    for group in optimizer.param_groups:
        group.update(settings)
        if "initial_lr" in group:
            group["initial_lr"] = o.lr
    if scheduler is not None:
        scheduler.base_lrs = [o.lr for _ in optimizer.param_groups]
        if o.lr_decay is not None and hasattr(scheduler, "gamma"):
            scheduler.gamma = o.lr_decay
        scheduler._last_lr = [o.lr for _ in optimizer.param_groups]


def plain(node: DictConfig) -> dict[str, Any]:
    """A config group as a plain dict, interpolations resolved."""
    return cast("dict[str, Any]", OmegaConf.to_container(node, resolve=True))


def checkpoint_config(ckpt: dict[str, Any]) -> DictConfig:
    """The config a checkpoint was saved with, as load_checkpoint checked it."""
    return cast(DictConfig, ckpt["config"])


def resumed_config(resume: str, overrides: list[str]) -> DictConfig:
    """The config of `aecli resume=<run dir>`: the run's own saved config, continuing from its last.pt
    (or, for a run stopped before its first checkpoint, starting over in its folder from its
    config.yaml). Only settings that leave the results unchanged, and trainer.epochs (to train
    further), may be overridden."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    run_dir = Path(resume).expanduser()
    status = read_status(run_dir)
    if (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file():
        path: Optional[Path] = find_checkpoint(run_dir)
        ckpt = load_checkpoint(cast(Path, path))
        cfg = copy.deepcopy(checkpoint_config(ckpt))
    else:  # stopped before its first checkpoint: start it again from its own config
        path, ckpt = None, None
        cfg = read_run_config(run_dir)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key not in RESUMABLE_OVERRIDES:
            raise ConfigError(
                f"{key} cannot change when resuming (resume= continues the run with its saved "
                f"config); allowed: {', '.join(RESUMABLE_OVERRIDES)}, or start a new run with "
                f"trainer.resume_from={path or run_dir}"
            )
        OmegaConf.update(cfg, key, override.value(), force_add=True)
    if ckpt is not None:
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
    OmegaConf.update(cfg, "trainer.resume_from", None if path is None else str(path), force_add=True)
    OmegaConf.update(cfg, "resume", str(resume), force_add=True)
    return cfg


def read_run_config(run_dir: Path) -> DictConfig:
    """A run folder's config.yaml (its resolved config, written before anything else), checked as
    any config read from a file: aecli's own targets only."""
    from aecli.trust import MAX_CONFIG_BYTES, trusted_config

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"resume={run_dir} has neither checkpoints/{LAST_CHECKPOINT} nor {CONFIG_FILE}: nothing to continue"
        )
    with open(path, "rb") as f:  # never more than the size trusted_config accepts, and one byte to tell
        text = f.read(MAX_CONFIG_BYTES + 1).decode(errors="replace")
    return trusted_config(text, str(path))


def read_status(run_dir: Path) -> Optional[str]:
    """The status in a run folder's summary.json, or None when it has none (yet) or it is unreadable."""
    summary = Path(run_dir) / SUMMARY_FILE
    try:
        status = json.loads(summary.read_text()).get("status") if summary.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None


RESUMABLE_OVERRIDES = ("trainer.epochs", "trainer.device", "trainer.num_threads", "trainer.progress")


def build(spec: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with what goes wrong inside a builder said in one sentence that names the
    part and the real cause (summary.json's `error` too), not Hydra's wrapper of it: a ConfigError (e.g.
    MNIST files missing) as itself, overflowed data with the setting likeliest to blame, anything else
    (a MemoryError, torch's "not enough memory") as `dataset=mnist could not be built: MemoryError: ...`.
    HYDRA_FULL_ERROR=1 still shows the traceback, with the cause chained. numpy's overflow warnings are
    silenced here: the checks on what was built (check_data_fits) say it in one line instead."""
    import numpy as np  # loaded with torch already

    try:
        with np.errstate(over="ignore", invalid="ignore"):
            return instantiate(spec, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        key = spec._get_full_key(None) or "config"
        name = spec.get("name") if "name" in spec else None
        if isinstance(cause, UnscalableData):
            settings = cast(dict, OmegaConf.to_container(spec, resolve=True))
            message = overflow_message(str(name), settings, f"makes points it cannot scale: {cause}")
            raise ConfigError(message) from cause
        reason = f"{type(cause).__name__}: {first_line(cause)}" if cause is not None else first_line(err)
        reason = reason.rstrip(". ")  # the sentence goes on
        what = f"{key}={name}" if name is not None else key
        raise ConfigError(f"{what} could not be built: {reason}; check its settings") from (cause or err)


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
    signals.check("figures")
    codes, x_hat = analyses.encode_reconstruct(ctx.model, ctx.tensor(data.val))
    plots.latent(
        codes, data.val_color, data.color_label, title, run_dir / "latent.png", dpi, points=f"{data.val_name} points"
    )
    signals.check("figures")
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
    signals.check("figures")
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
        status = read_status(source_dir)
        if status == "completed":  # a resumed run: its source run is already there
            log.info("model.decoder_from=train: using the source run already in %s", source_dir)
        else:
            if (source_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file() and status != "diverged":
                OmegaConf.update(source_cfg, "trainer.resume_from", str(source_dir / CHECKPOINT_DIR / LAST_CHECKPOINT))
                log.info("model.decoder_from=train: continuing the source run in %s", source_dir)
            else:
                log.info("model.decoder_from=train: training the source run first, in %s", source_dir)
            source_summary = run(source_cfg, source_dir)
            if source_summary["status"] == "interrupted":  # stopped inside the source run: so is this run
                raise signals.Stopped("source")
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
