"""Everything a run writes into its folder, each file written so a crash never corrupts it.

metrics.csv grows by one flushed row per epoch; checkpoints and summary.json are
written to a temporary file, fsynced and renamed over the old one, so a kill at
any moment leaves the previous complete version readable.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional, TextIO

import torch
from omegaconf import DictConfig, OmegaConf

from aecli.data.base import DataShape
from aecli.errors import ConfigError, first_sentence
from aecli.folders import NotRegularFile, atomic_write, holds_lock, open_append, open_regular, read_regular
from aecli.models import Autoencoder
from aecli.training.state import EpochRecord, TrainState

METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.csv"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"  # the run's resolved config, written first: what resume= restarts from before a checkpoint
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"  # everything needed to resume: model, optimizer, schedule, TrainState
BEST_CHECKPOINT = "best.pt"  # the model of the epoch with the lowest validation loss
CHECKPOINT_KEYS = ("model", "config_yaml", "epoch", "metrics")  # what every aecli checkpoint holds
MAX_SUMMARY_BYTES = 1 << 20  # a summary.json is a few KiB


class CheckpointError(ConfigError):
    """A checkpoint that is missing, truncated, tampered with or not aecli's; the message is one sentence."""


class RunFiles:
    """The files of one run folder: metrics.csv, steps.csv, checkpoints/{last,best}.pt and summary.json.

    A resumed run passes the checkpoint's `history` (and the folder whose steps.csv it continues):
    the files start over from exactly what that checkpoint had seen, dropping rows written after it."""

    def __init__(
        self, run_dir: Path, config_yaml: str, history: Sequence[EpochRecord] = (), steps_from: Optional[Path] = None
    ) -> None:
        self.dir = Path(run_dir)
        self.config_yaml = config_yaml
        (self.dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / CONFIG_FILE, lambda f: f.write(config_yaml.encode()))
        self._best_written: Optional[int] = None  # the epoch best.pt holds, as this process wrote it
        self._metrics: Optional[TextIO] = None  # metrics.csv, opened with its header by the first row
        self._csv: Optional[csv.DictWriter[str]] = None
        if history:  # a resumed run: the rows its checkpoint had seen, nothing written after it
            self._start_metrics([r.row() for r in history])
        self._steps: Optional[Any] = None  # steps.csv, opened on the first row
        self._n_steps = 0
        if steps_from is not None and (steps_from / STEPS_FILE).is_file() and history:
            self._restore_steps(steps_from / STEPS_FILE, through_epoch=history[-1].epoch)

    def _restore_steps(self, source: Path, through_epoch: int) -> None:
        """steps.csv of the resumed run: the source's rows up to the checkpoint's epoch, numbered
        1, 2, 3, ... without a gap, so the rows the resumed run appends continue them; a torn or
        garbled row is left out with a warning (aecli.csv_files.steps_through)."""
        from aecli.reporting.csv_files import steps_through

        kept = 0

        def write(f: Any) -> None:
            nonlocal kept
            f.write(b"step,epoch,loss\n")
            for step, epoch, loss in steps_through(source, through_epoch):
                f.write(f"{step},{epoch},{loss!r}\n".encode())
                kept += 1

        atomic_write(self.dir / STEPS_FILE, write)
        self._steps = open_append(self.dir / STEPS_FILE)
        self._n_steps = kept

    @property
    def last_checkpoint(self) -> Path:
        return self.dir / CHECKPOINT_DIR / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.dir / CHECKPOINT_DIR / BEST_CHECKPOINT

    def _start_metrics(self, rows: list[dict[str, Any]]) -> None:
        """metrics.csv from scratch: the header (the five columns, then the run's loss terms) and `rows`."""
        start = io.StringIO()
        writer = csv.DictWriter(start, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.dir / METRICS_FILE, lambda f: f.write(start.getvalue().encode()))
        self._metrics = open_append(self.dir / METRICS_FILE)
        self._csv = csv.DictWriter(self._metrics, fieldnames=list(rows[0]), lineterminator="\n")

    def append_metrics(self, record: EpochRecord) -> None:
        with naming(self.dir / METRICS_FILE):
            if self._csv is None or self._metrics is None:
                self._start_metrics([record.row()])
                return
            self._csv.writerow(record.row())
            self._metrics.flush()

    def append_step_losses(self, epoch: int, losses: torch.Tensor) -> None:
        """Rows `step, epoch, loss` of steps.csv for one epoch's optimizer steps (trainer.log_steps)."""
        if self._steps is None:
            atomic_write(self.dir / STEPS_FILE, lambda f: f.write(b"step,epoch,loss\n"))
            self._steps = open_append(self.dir / STEPS_FILE)
        with naming(self.dir / STEPS_FILE):
            for loss in losses.tolist():
                self._n_steps += 1
                self._steps.write(f"{self._n_steps},{epoch},{loss!r}\n")
            self._steps.flush()

    def save_checkpoint(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
        history: list[EpochRecord],
        train_state: Optional[TrainState] = None,
        best: Optional[dict[str, Any]] = None,
    ) -> None:
        """last.pt: model, optimizer and schedule state, the TrainState to resume from, metrics, the
        best epoch so far and the resolved config as YAML text; then best.pt from `best` (epoch,
        val_loss, model). last.pt carries `best` too, so a kill between the two writes loses nothing.

        Only tensors, numbers, strings, lists and dicts: loadable with torch.load(weights_only=True).
        """
        state: dict[str, Any] = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": history[-1].epoch if history else 0,
            "metrics": [r.row() for r in history],
            "config_yaml": self.config_yaml,
            "data_shape": data_shape(model),
            "train_state": train_state.to_dict() if train_state is not None else None,
            "best": best,
        }
        atomic_write(self.last_checkpoint, lambda f: f.write(serialized(state)))
        if best is not None and best["epoch"] != self._best_written:  # unchanged since the last write: kept
            best_state = {
                "model": best["model"],
                "epoch": best["epoch"],
                "val_loss": best["val_loss"],
                "metrics": state["metrics"][: best["epoch"] + 1],
                "config_yaml": self.config_yaml,
                "data_shape": data_shape(model),
            }
            atomic_write(self.best_checkpoint, lambda f: f.write(serialized(best_state)))
            self._best_written = best["epoch"]

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_summary(self.dir, summary)

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
        if self._steps is not None:
            self._steps.close()


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError inside the block (a full disk) names `path`, the file being written."""
    try:
        yield
    except OSError as err:
        if err.filename:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err


def data_shape(model: torch.nn.Module) -> Optional[dict[str, Any]]:
    """The data shape a model was built for, as a checkpoint stores it."""
    shape = getattr(model, "data_shape", None)
    if shape is None:
        return None
    return {"dim": shape.dim, "image_shape": None if shape.image_shape is None else list(shape.image_shape)}


def serialized(state: dict[str, Any]) -> bytes:
    """torch.save into memory: the file is then written by plain writes, so a full disk is an
    OSError naming the file, not torch's zip writer failing in its own words."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json, atomically (readers see the old version or the new one, never half of one) and
    strict: a non-finite number is written as null, never as NaN or Infinity, which JSON lacks."""
    text = json.dumps(strict_json(summary), indent=2, allow_nan=False)
    atomic_write(Path(run_dir) / SUMMARY_FILE, lambda f: f.write(text.encode() + b"\n"))


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, in nested dicts and lists too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (weights_only) or allocating more than
    the file's size (aecli.trust.check_torch_archive, before torch reads it); a file that is
    truncated, tampered with or not aecli's raises CheckpointError instead of torch's traceback.
    The saved config, checked by aecli.trust.trusted_config, is `ckpt["config"]`: build from that,
    never from the `config_yaml` text beside it."""
    from aecli.trust import check_checkpoint_layout, check_tensor_storage, check_torch_archive, trusted_config

    try:
        with open_regular(path) as file:  # one open file: the archive checked is the one torch reads
            check_torch_archive(file, Path(path))
            ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except NotRegularFile as err:  # a FIFO would block torch.load forever
        raise CheckpointError(f"{path} is {err.strerror}, not a checkpoint") from None
    except CheckpointError:
        raise
    except pickle.UnpicklingError:  # weights_only refused an object: torch's message is a page of advice
        raise CheckpointError(
            f"{path} is not an aecli checkpoint: it holds Python objects other than tensors, numbers and text, "
            f"which only unpickling could load, and aecli never unpickles"
        ) from None
    except Exception as err:  # zip errors, EOF, ...
        raise CheckpointError(
            f"{path} is not a readable aecli checkpoint: it is truncated or corrupted ({first_sentence(err)})"
        ) from None
    check_checkpoint_layout(ckpt, Path(path), CHECKPOINT_KEYS)
    check_tensor_storage(ckpt, Path(path))
    ckpt["config"] = trusted_config(ckpt["config_yaml"], str(path))
    return ckpt


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's checkpoints/last.pt; ValueError naming what is missing."""
    path = Path(path).expanduser()
    candidate = path / CHECKPOINT_DIR / LAST_CHECKPOINT if path.is_dir() else path
    if not candidate.is_file():
        raise CheckpointError(
            f"no checkpoint at {candidate}: give a run folder (with {CHECKPOINT_DIR}/{LAST_CHECKPOINT}) or a .pt file"
        )
    return candidate


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Autoencoder, Any]:
    """The model saved in a checkpoint (or a run folder's last.pt), in eval mode, and its run's config.

    The model is rebuilt from its config's model spec (only aecli's own or a user's registered
    ModelSpec: load_checkpoint has checked the targets) for the data shape the checkpoint records,
    first on the meta device, which allocates nothing, and its layer shapes are compared with the
    saved weights: a config asking for huge layers is refused before it costs memory."""
    from aecli.models import ModelSpec, build_model
    from aecli.plugins import build_spec, spec_class

    checkpoint = find_checkpoint(path)
    ckpt = load_checkpoint(checkpoint, map_location=device)
    cfg, state = ckpt["config"], ckpt["model"]
    node = cfg.get("model")
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    try:  # a ModelSpec, aecli's own or a registered one; never another spec (a data set's) in its place
        named = isinstance(target, str) and bool(spec_class(target, "model", ModelSpec))
    except ConfigError:
        named = False
    if not named:
        raise CheckpointError(
            f"{checkpoint} holds no model config (model._target_: a ModelSpec such as aecli.models.mlp.MLPSpec)"
        )
    shape = saved_shape(ckpt, checkpoint)
    dtype = next(iter(state.values())).dtype
    try:
        spec = build_spec(cfg.get("model"), "model", ModelSpec)
        loss = OmegaConf.select(cfg, "trainer.loss", default="mse")
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(spec, shape, loss).state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in state.items()}:
            raise ValueError("its weights do not have the layers its config describes")
        model = build_model(spec, shape, loss)
        model.load_state_dict(state)
    except Exception as err:  # a bad value in the config, or weights of another model
        raise CheckpointError(
            f"{checkpoint} holds a model aecli cannot rebuild ({first_sentence(' '.join(str(err).split()), 200)})"
        ) from None
    return model.to(device=device, dtype=dtype).eval(), cfg


def saved_shape(ckpt: dict[str, Any], checkpoint: Path) -> DataShape:
    """The data shape a checkpoint's model was built for (`data_shape`; else, for an MLP, the width of
    its first encoder weight matrix)."""
    saved = ckpt.get("data_shape")
    if isinstance(saved, dict) and isinstance(saved.get("dim"), int) and saved["dim"] >= 1:
        image = saved.get("image_shape")
        if image is None or (
            isinstance(image, (list, tuple)) and len(image) == 2 and all(isinstance(v, int) for v in image)
        ):
            return DataShape(saved["dim"], None if image is None else (int(image[0]), int(image[1])))
    weights = [v for k, v in ckpt["model"].items() if k.startswith("encoder") and k.endswith("weight") and v.ndim == 2]
    if not weights or not weights[0].is_floating_point():
        raise CheckpointError(f"{checkpoint} records no data shape and holds no encoder weight matrix to read one from")
    return DataShape(int(weights[0].shape[1]))


def confined(run_dir: str | Path, name: str | os.PathLike[str], key: str = "file") -> Path:
    """`run_dir / name`, resolved, for a file name that comes from a config value: ConfigError (one
    sentence naming `key`) when it would land outside `run_dir` (an absolute path, `..`, a symlink
    leading out) or names the folder itself. Creates nothing."""
    text = os.fspath(name)
    root = Path(run_dir).resolve()
    path = (root / text).resolve() if text and "\0" not in text else root
    if path == root or not path.is_relative_to(root):
        raise ConfigError(f"{key}={text!r} is not allowed: use a file name inside the run folder {run_dir}")
    return path


class RunLogHandler(logging.FileHandler):
    """aecli.log (Hydra's job log, conf/hydra/job_logging/aecli.yaml): opened at the first record, and
    only in a folder this process has claimed (aecli.folders.claim_folder), so a folder refused to a
    run or a sweep job never gets a line; appended without following a link or opening a FIFO."""

    def __init__(self, filename: str, mode: str = "a", encoding: Optional[str] = None, delay: bool = True) -> None:
        super().__init__(filename, mode, encoding, delay=True)  # nothing opened before the folder is claimed
        self.folder = Path(self.baseFilename).parent.resolve()

    def emit(self, record: logging.LogRecord) -> None:
        if holds_lock(self.folder):
            super().emit(record)

    def _open(self) -> TextIO:  # type: ignore[override]
        return open_append(Path(self.baseFilename))


def read_status(run_dir: Path) -> Optional[str]:
    """The status in a run folder's summary.json, or None when it has none (yet) or it is unreadable."""
    try:
        status = json.loads(read_regular(Path(run_dir) / SUMMARY_FILE, MAX_SUMMARY_BYTES)).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None
