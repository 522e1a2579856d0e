"""One run, start to finish: config -> data -> model -> train -> figures -> analyses -> summary.

`run` is the whole flow in one function, a table of contents; the CLI calls it from inside
Hydra, and anything else (tests, notebooks, aecli.run) can call it with a composed config and a
folder of its choosing. Each step it names is a short function below, or a module of its own:
the data set and the model are plug-ins (aecli/data, aecli/models), the per-epoch work is
callbacks (aecli/training/callbacks.py), the study figures are analyses (aecli/analyses).
"""

from __future__ import annotations

import copy
import logging
import platform
import time
from pathlib import Path
from typing import Any, Optional, Union, cast

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from aecli import grouped, signals
from aecli.analyses import RunContext, encode_reconstruct
from aecli.config import tracker_places
from aecli.data import Dataset, UnscalableData, non_finite_dtype, overflow_message
from aecli.errors import ConfigError, first_line, first_sentence
from aecli.folders import locked, open_regular
from aecli.memory import check_model_memory, reuse_freed_memory
from aecli.models import Autoencoder, build_model
from aecli.reporting import drawing, plots
from aecli.reporting.trackers import Trackers
from aecli.run_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    CheckpointError,
    RunFiles,
    find_checkpoint,
    load_checkpoint,
    read_status,
    write_summary,
)
from aecli.summary import RunSummary, Status
from aecli.training.callbacks import RunCallback, RunHandles
from aecli.training.loop import Training, resolve_device
from aecli.training.optim import build_optimizer
from aecli.training.regularizers import build_regularizers
from aecli.training.state import EpochRecord, FitResult, TrainState
from aecli.training.transfer import prepare_source, transfer_decoder
from aecli.trust import check_resumable
from aecli.validation import Plan, validate
from aecli.vectorized import TrainRequest

log = logging.getLogger("aecli")


def run(cfg: DictConfig, run_dir: Union[str, Path]) -> RunSummary:
    """Train one autoencoder as `cfg` says and write every artifact into `run_dir`; return the summary.
    summary.json says "running" from the start and the truth at the end, however the run ends (see
    RunRecord); `aecli resume=` then does what is missing."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with signals.handling(), locked(run_dir), RunRecord(run_dir, cfg) as record:
        # setup: no stop point before config.yaml is written, so every stop leaves a resumable folder
        plan = settle(cfg)
        cfg = plan.cfg
        record.trackers = Trackers({name: build(spec) for name, spec in cfg.logger.items()})
        checkpoint, checkpoint_path = read_resume(cfg)
        history = [EpochRecord.from_row(row) for row in checkpoint["metrics"]] if checkpoint else []
        steps_from = checkpoint_path.parent.parent if checkpoint_path else None
        files = record.files = RunFiles(run_dir, OmegaConf.to_yaml(cfg, resolve=True), history, steps_from)
        record.trackers.start(cfg, run_dir)
        device, dtype = set_up_torch(cfg.trainer)

        record.phase("source")
        source_model = prepare_source(cfg, run_dir, device)

        record.phase("data")
        torch.manual_seed(cfg.seed)  # model initialisation, dropout, noise
        data = build_data(plan)

        record.phase("model")
        training, start = build_training(plan, data, source_model, checkpoint, history, device, dtype)
        initial_model = copy.deepcopy(training.model)  # the untrained net, for the studies' before/after figures

        record.phase("train")
        best = checkpoint.get("best") if checkpoint else None  # the lowest-val-loss epoch a resumed run had seen
        result = train(cfg, training, data, start, best, files, record)
        record.trained(cfg, result, checkpoint, start, training.model)
        if result.status == Status.interrupted:  # stopped inside training: its checkpoint is written, nothing drawn
            raise signals.Stopped("train")
        if result.status == Status.diverged:  # no figures or analyses of a diverged model
            return record.summary

        ctx = RunContext(
            cfg,
            training.model,
            initial_model,
            source_model,
            data,
            history,
            device,
            dtype,
            run_dir,
            record.title,
            cfg.plots.dpi,
        )
        with drawing.run_figures(failed_in=record.failed_in):  # figures a worker draws: all written before the end
            record.phase("figures")
            record.metrics.update(draw_figures(ctx))  # none with plots.enabled=false
            record.phase("analyses")
            record.metrics.update(run_analyses(ctx))
            grouped.let_others_finish()  # a vectorized group: the next member goes on while these figures are drawn
        record.trackers.log_figures(sorted(run_dir.glob("*.png")))
        record.summary.status = result.status  # every file above is written: "completed"
    return record.summary


# ---------------------------------------------------------------------------- setup
def settle(cfg: DictConfig) -> Plan:
    """The checked config (and, for a smoke run, its smoke settings) the run trains with."""
    plan = validate(cfg)
    if plan.cfg.trainer.fast_dev_run:
        plan.cfg = smoke_settings(plan.cfg)
    return plan


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


def set_up_torch(t: DictConfig) -> tuple[torch.device, torch.dtype]:
    """Threads and malloc's reuse of freed memory, then the device and dtype the run trains in."""
    reuse_freed_memory()
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    return resolve_device(t.device), getattr(torch, t.dtype)


def read_resume(cfg: DictConfig) -> tuple[Optional[dict[str, Any]], Optional[Path]]:
    """The checkpoint trainer.resume_from names, and its path; (None, None) for a fresh start."""
    if not cfg.trainer.resume_from:
        return None, None
    try:
        path = find_checkpoint(cfg.trainer.resume_from)
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, path)
        return checkpoint, path
    except CheckpointError as err:
        raise CheckpointError(f"trainer.resume_from={cfg.trainer.resume_from!r}: {err}") from None


def build(spec: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate for what a config names by _target_ (trackers, callbacks, analyses),
    with a builder's error as one ConfigError sentence naming the real cause."""
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        reason = f"{type(cause).__name__}: {first_line(cause)}" if cause is not None else first_line(err)
        raise ConfigError(f"{spec.get('_target_')} could not be built: {reason}") from err


# ----------------------------------------------------------------------------- data
def build_data(plan: Plan) -> Dataset:
    """The data set the plan's spec describes, checked: finite in the run's dtype, and batches that suit it."""
    spec, t = plan.data, plan.cfg.trainer
    if plan.cfg.resume is not None:  # a config read from a file: never a download into a folder it names
        spec = spec.offline()
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, in one sentence
            data = spec.build()
    except UnscalableData as err:
        raise ConfigError(
            overflow_message(spec.name, spec.settings(), f"makes points it cannot scale: {err}")
        ) from None
    except MemoryError as err:
        raise ConfigError(f"dataset={spec.name} could not be built: MemoryError: {first_line(err)}") from None
    for part in (data.train, data.val):
        bad = non_finite_dtype(part, getattr(torch, t.dtype))
        if bad is not None:
            problem = f"makes non-finite points in {str(bad).removeprefix('torch.')}"
            raise ConfigError(overflow_message(spec.name, spec.settings(), problem))
    if t.drop_last and t.batch_size > len(data.train):
        raise ConfigError(
            f"trainer.batch_size={t.batch_size} with trainer.drop_last=true leaves no batch "
            f"from the {len(data.train)} training points; lower the batch size"
        )
    unsuited = spec.check_batches(t.batch_size, len(data.train))
    if unsuited is not None:
        raise ConfigError(unsuited)
    return data


# ---------------------------------------------------------------------------- model
def build_training(
    plan: Plan,
    data: Dataset,
    source: Optional[Autoencoder],
    checkpoint: Optional[dict[str, Any]],
    history: list[EpochRecord],
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Training, Optional[TrainState]]:
    """The model for this data (the source's decoder in it, if any), its optimizer, schedule and
    regularizer terms; with a checkpoint, all restored, and the state training continues from."""
    cfg = plan.cfg
    plan.model.check_fits(data.shape, data.name)
    check_model_memory(plan.model, data.shape, len(data.train), len(data.val), cfg)
    try:
        model = build_model(plan.model, data.shape, cfg.trainer.loss).to(device, dtype)
    except ConfigError:
        raise
    except Exception as err:  # an allocation that failed after all, a plug-in's own error: the real cause
        raise ConfigError(
            f"model={plan.model.name} could not be built: {type(err).__name__}: {first_line(err)}"
        ) from err
    if source is not None:
        transfer_decoder(source, model, cfg.transfer.freeze_decoder)
    optimizer, scheduler = build_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad])
    data_order = torch.Generator().manual_seed(cfg.seed)
    training = Training(model, optimizer, scheduler, build_regularizers(cfg.regularizer), data_order, history)
    start = restore(checkpoint, cfg, training) if checkpoint else None
    return training, start


def restore(checkpoint: dict[str, Any], cfg: DictConfig, training: Training) -> TrainState:
    """Load a checkpoint's model, optimizer and schedule into freshly built ones; return where
    training stood. A checkpoint of another model, another optimizer or without training state is
    one sentence. Optimizer settings this config changes (e.g. a lower optimizer.lr after a
    divergence) replace the checkpoint's, and the log says so."""
    path = cfg.trainer.resume_from
    saved: Any = checkpoint["config"].get("optimizer") or {}
    if saved.get("name") != cfg.optimizer.name:
        raise ConfigError(
            f"trainer.resume_from={path!r} was trained with optimizer={saved.get('name')}, whose state "
            f"cannot continue with optimizer={cfg.optimizer.name}; resume with optimizer={saved.get('name')}"
        )
    try:
        training.model.load_state_dict(checkpoint["model"])
        training.optimizer.load_state_dict(checkpoint["optimizer"])
        if training.scheduler is not None and checkpoint["scheduler"] is not None:
            training.scheduler.load_state_dict(checkpoint["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        detail = str(err).strip().splitlines() or [type(err).__name__]
        raise ConfigError(
            f"trainer.resume_from={path!r} was saved by a different model or optimizer than this "
            f"config builds ({first_sentence(detail[1 if len(detail) > 1 else 0].strip())})"
        ) from None
    best = checkpoint.get("best")
    shapes = {k: tuple(v.shape) for k, v in training.model.state_dict().items()}
    if best is not None and {k: tuple(v.shape) for k, v in best["model"].items()} != shapes:
        raise CheckpointError(f"trainer.resume_from={path!r}: its best.model is not the weights of this model")
    changed = {
        k: (saved.get(k), v)
        for k, v in plain(cfg.optimizer).items()
        if k not in ("name", "fused") and saved.get(k) != v
    }
    if changed:
        apply_optimizer_settings(cfg.optimizer, training.optimizer, training.scheduler)
        log.info(
            "trainer.resume_from: this config's optimizer settings replace the checkpoint's (%s)",
            ", ".join(f"{k} {old!s} -> {new!s}" for k, (old, new) in changed.items()),
        )
    return TrainState.from_dict(checkpoint["train_state"])


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


# ---------------------------------------------------------------------------- train
def train(
    cfg: DictConfig,
    training: Training,
    data: Dataset,
    start: Optional[TrainState],
    best: Optional[dict[str, Any]],
    files: RunFiles,
    record: RunRecord,
) -> FitResult:
    """fit, with the per-epoch work the `callbacks` group chooses (aecli.grouped: alone, or as one member of a
    stacked group when the vectorized launcher runs it)."""
    t, model = cfg.trainer, training.model
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    train_x, val_x = data.train.to(device, dtype), data.val.to(device, dtype)
    handles = RunHandles(files, record.trackers, training, t, record.title, best)
    callbacks = [build(spec) for spec in cfg.callbacks.values()]
    for callback in callbacks:
        if not isinstance(callback, RunCallback):
            raise ConfigError(f"callbacks has a {type(callback).__name__}, not an aecli.training.callbacks.RunCallback")
        callback.setup(handles)
    if t.compile:  # the calls the loop makes; state_dict keys and checkpoints stay those of the plain model
        model.encode, model.decode = torch.compile(model.encode), torch.compile(model.decode)  # type: ignore[method-assign]
    for regularizer in training.regularizers:
        regularizer.attach(model)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "%s: %d parameters, %d train / %d val points, %d epochs on %s -> %s",
        *(record.title, n_params, len(train_x), len(val_x), t.epochs, device, files.dir),
    )
    try:  # plain fit, or this job's share of its group's training under hydra/launcher=vectorized
        result = grouped.train(TrainRequest(training, train_x, val_x, t, callbacks, start), signals.requested)
        record.summary.group_size = grouped.group_size()
        return result
    finally:
        for regularizer in training.regularizers:
            regularizer.detach()
        if t.compile:  # analyses and figures get the plain model (deepcopy-able, any input shape)
            del model.encode, model.decode


# -------------------------------------------------------------------------- figures
def draw_figures(ctx: RunContext) -> dict[str, float]:
    """loss_curve.png, latent.png, reconstruction.png, and the model family's own figures (a VAE's
    samples); a stop request is answered between two figures. Nothing with plots.enabled=false (ctx.draw).
    latent.png and reconstruction.png are the run's only code and reconstruction figures: the
    studies' analyses draw no copies of them."""
    if not ctx.draw:
        return {}
    cfg, data, history, title, run_dir, dpi = ctx.cfg, ctx.data, ctx.history, ctx.title, ctx.run_dir, ctx.dpi
    epochs = [r.epoch for r in history]
    train_loss, val_loss = [r.train_loss for r in history], [r.val_loss for r in history]
    plots.loss_curve(epochs, train_loss, val_loss, title, cfg.trainer.loss, run_dir / "loss_curve.png", dpi)
    signals.check("figures")
    codes, x_hat = encode_reconstruct(ctx.model, ctx.tensor(data.val))
    points = f"{data.val_name} points"
    plots.latent(codes, data.val_color, data.color_label, title, run_dir / "latent.png", dpi, points=points)
    signals.check("figures")
    val = data.val.numpy()
    path = run_dir / "reconstruction.png"
    plots.reconstruction(val, x_hat, data.val_color, data.color_label, title, path, dpi, image_shape=data.image_shape)
    signals.check("figures")
    return ctx.model.figures(ctx)


def run_analyses(ctx: RunContext) -> dict[str, float]:
    """The config's analyses (the error map, the studies' own), in order; a stop request is answered between two.
    Each computes its numbers always and draws only where ctx.draw (plots.enabled)."""
    metrics: dict[str, float] = {}
    for name, spec in ctx.cfg.analyses.items():
        signals.check("analyses")
        log.info("analysis %s", name)
        metrics.update(build(spec, _partial_=True)(ctx))
    return metrics


# -------------------------------------------------------------------------- summary
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
        select = lambda key: OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)  # noqa: E731
        self.summary = RunSummary(
            dataset=select("dataset.name"),
            model=select("model.name"),
            fast_dev_run=bool(select("trainer.fast_dev_run")),
        )
        self.title = f"{self.summary.dataset} / {self.summary.model}"
        self.metrics: dict[str, float] = {}
        self.trackers = Trackers({})
        self.files: Optional[RunFiles] = None

    def phase(self, name: str) -> None:
        """Enter the next phase: a safe point, so a stop asked for before it ends the run here."""
        signals.check(name)
        self.summary.phase = name
        drawing.set_phase(name)
        write_summary(self.run_dir, self.summary.as_dict())  # a few ms: anyone can watch which phase a run is in

    def failed_in(self, phase: str) -> None:
        """A figure drawn by a worker failed: the run fails in the phase that figure was drawn in."""
        self.summary.phase = phase

    def trained(
        self,
        cfg: DictConfig,
        result: FitResult,
        checkpoint: Optional[dict[str, Any]],
        start: Optional[TrainState],
        model: Autoencoder,
    ) -> None:
        """What training gave: the losses, speed and where it ended."""
        history, s = result.history, self.summary
        last, best = history[-1], min(history, key=lambda r: r.val_loss)
        s.epochs, s.steps, s.loss = last.epoch, result.steps, cfg.trainer.loss
        s.final_train_loss, s.final_val_loss, s.final_terms = last.train_loss, last.val_loss, dict(last.terms)
        s.best_val_loss, s.best_epoch = best.val_loss, best.epoch
        s.train_seconds = round(result.seconds, 4)
        s.steps_per_second = round(result.steps / result.seconds, 1) if result.steps else 0.0
        s.device, s.dtype, s.seed = str(next(model.parameters()).device), cfg.trainer.dtype, cfg.seed
        s.parameters = sum(p.numel() for p in model.parameters())
        s.metrics, s.torch, s.python = self.metrics, torch.__version__, platform.python_version()
        if result.status == Status.diverged:
            s.status, s.diverged_at_epoch, s.diverged_at_step = Status.diverged, last.epoch + 1, result.diverged_at_step
        if checkpoint:
            s.resumed_from = {
                "checkpoint": str(cfg.trainer.resume_from),
                "epoch": checkpoint["epoch"],
                "step": start.steps if start else None,
            }
        log.info(
            "%s: %s after %d epochs, val loss %.5g, %.0f steps/s",
            *(self.title, result.status, last.epoch, last.val_loss, s.steps_per_second),
        )

    def __enter__(self) -> RunRecord:
        write_summary(self.run_dir, self.summary.as_dict())  # "running", phase "setup"
        return self

    def __exit__(self, kind: Optional[type[BaseException]], err: Optional[BaseException], tb: Any) -> bool:
        s = self.summary
        if err is not None:
            stopped = isinstance(err, (signals.Stopped, KeyboardInterrupt))
            s.status = Status.interrupted if stopped else Status.failed
            if isinstance(err, signals.Stopped):
                s.phase, s.stopped_by = err.phase, signals.reason()
            else:
                s.error = f"{type(err).__name__}: {first_line(err)}"
        s.wall_seconds = round(time.perf_counter() - self.started, 4)
        summary = s.as_dict()
        try:
            self.trackers.finish(summary)  # a failed or interrupted run's too; tracker errors go into summary
        finally:
            s.tracker_errors = summary.get("tracker_errors")
            if self.files is not None:
                self.files.close()
            write_summary(self.run_dir, s.as_dict())
        if s.status == Status.interrupted:
            log.info("%s: interrupted during %s; continue with aecli resume=%s", self.title, s.phase, self.run_dir)
        return isinstance(err, signals.Stopped)  # a stop request ends the run normally, as "interrupted"


# --------------------------------------------------------------------------- resume
RESUMABLE_OVERRIDES = ("trainer.epochs", "trainer.device", "trainer.num_threads", "trainer.progress")


def resumed_config(resume: str, overrides: list[str]) -> DictConfig:
    """The config of `aecli resume=<run dir>`: the run's own saved config, continuing from its last.pt
    (or, for a run stopped before its first checkpoint, starting over in its folder from its
    config.yaml). Only settings that leave the results unchanged, and trainer.epochs (to train
    further), may be overridden."""
    run_dir = Path(resume).expanduser()
    status = read_status(run_dir)
    path: Optional[Path] = None
    checkpoint: Optional[dict[str, Any]] = None
    if (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file():
        path = find_checkpoint(run_dir)
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, path)
        cfg = copy.deepcopy(checkpoint["config"])
    else:  # stopped before its first checkpoint: start it again from its own config
        cfg = read_run_config(run_dir)
    apply_resume_overrides(cfg, overrides, path or run_dir)
    if checkpoint is not None:
        done = checkpoint["train_state"] is not None and checkpoint["train_state"]["batch"] == 0
        if status == Status.completed and done and checkpoint["epoch"] >= cfg.trainer.epochs:
            raise ConfigError(
                f"the run in {resume} already completed its {checkpoint['epoch']} epochs; add "
                f"trainer.epochs=N with N > {checkpoint['epoch']} to train it further"
            )
    if status == Status.diverged:
        raise ConfigError(
            f"the run in {resume} diverged and would diverge again from its last checkpoint; start "
            f"a new run with e.g. a lower optimizer.lr and trainer.resume_from={path}"
        )
    OmegaConf.update(cfg, "trainer.resume_from", None if path is None else str(path), force_add=True)
    OmegaConf.update(cfg, "resume", str(resume), force_add=True)
    return cfg


def apply_resume_overrides(cfg: DictConfig, overrides: list[str], source: Path) -> None:
    """The command line's overrides of a resumed run: only RESUMABLE_OVERRIDES, dataset.root (where the
    data's files are now), and the places the saved config's trackers write to. The saved config is
    read from a file, so it never chooses where aecli writes or uploads: each tracker place it sets
    to other than aecli's default must be typed again on the command line to be used."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    places = tracker_places(cfg)
    allowed = (*RESUMABLE_OVERRIDES, *places, *(["dataset.root"] if "root" in cfg.dataset else []))
    typed = set()
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if key not in allowed:
            raise ConfigError(
                f"{key} cannot change when resuming (resume= continues the run with its saved "
                f"config); allowed: {', '.join(allowed)}, or start a new run with "
                f"trainer.resume_from={source}"
            )
        OmegaConf.update(cfg, key, override.value(), force_add=True)
        typed.add(key)
    for key, value in places.items():
        if key not in typed:
            raise ConfigError(
                f"the saved config of {source} sets {key}={value}, a place outside the run folder where its "
                f"tracker writes or uploads; a config read from a file never chooses one: add ++{key}={value} "
                f"to the command line to resume with it"
            )


def read_run_config(run_dir: Path) -> DictConfig:
    """A run folder's config.yaml (its resolved config, written before anything else), checked as
    any config read from a file: aecli's own targets only."""
    from aecli.trust import MAX_CONFIG_BYTES, trusted_config

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"resume={run_dir} has neither checkpoints/{LAST_CHECKPOINT} nor {CONFIG_FILE}: nothing to continue"
        )
    with open_regular(path) as f:  # never more than the size trusted_config accepts, and one byte to tell
        text = f.read(MAX_CONFIG_BYTES + 1).decode(errors="replace")
    return trusted_config(text, str(path))
