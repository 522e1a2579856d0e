"""Everything a run writes into its folder, each file written so a crash never corrupts it.

metrics.csv grows by one flushed row per epoch; checkpoints and summary.json are
written to a temporary file, fsynced and renamed over the old one, so a kill at
any moment leaves the previous complete version readable.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Optional

import torch

from aecli.config import ConfigError
from aecli.models import MLPAutoencoder
from aecli.train import EpochRecord, TrainState

METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"  # everything needed to resume: model, optimizer, schedule, TrainState
BEST_CHECKPOINT = "best.pt"  # the model of the epoch with the lowest validation loss
CHECKPOINT_KEYS = ("model", "config_yaml", "epoch", "metrics")  # what every aecli checkpoint holds


class CheckpointError(ConfigError):
    """A checkpoint that is missing, truncated, tampered with or not aecli's; the message is one sentence."""


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(file)` on a temporary sibling of `path`, fsync it, then rename it into place.
    The temporary name carries the process id, so concurrent writers never share one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
        names = [f.name for f in fields(EpochRecord)]
        start = io.StringIO()  # the header and the rows so far, written as append_metrics writes rows
        start_csv = csv.DictWriter(start, fieldnames=names, lineterminator="\n")
        start_csv.writeheader()
        start_csv.writerows(asdict(r) for r in history)
        atomic_write(self.dir / METRICS_FILE, lambda f: f.write(start.getvalue().encode()))
        self._metrics = open(self.dir / METRICS_FILE, "a", newline="")
        self._csv = csv.DictWriter(self._metrics, fieldnames=names, lineterminator="\n")
        self._steps: Optional[Any] = None  # steps.csv, opened on the first row
        self._n_steps = 0
        if steps_from is not None and (steps_from / STEPS_FILE).is_file() and history:
            self._restore_steps(steps_from / STEPS_FILE, through_epoch=history[-1].epoch)

    def _restore_steps(self, source: Path, through_epoch: int) -> None:
        """steps.csv of the resumed run: the source's rows up to the checkpoint's epoch."""
        with open(source) as f:
            kept = [line for line in f.readlines()[1:] if int(line.split(",")[1]) <= through_epoch]
        atomic_write(self.dir / STEPS_FILE, lambda f: f.write(("step,epoch,loss\n" + "".join(kept)).encode()))
        self._steps = open(self.dir / STEPS_FILE, "a", newline="")
        self._n_steps = len(kept)

    @property
    def last_checkpoint(self) -> Path:
        return self.dir / CHECKPOINT_DIR / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.dir / CHECKPOINT_DIR / BEST_CHECKPOINT

    def append_metrics(self, record: EpochRecord) -> None:
        self._csv.writerow(asdict(record))
        self._metrics.flush()

    def append_step_losses(self, epoch: int, losses: torch.Tensor) -> None:
        """Rows `step, epoch, loss` of steps.csv for one epoch's optimizer steps (trainer.log_steps)."""
        if self._steps is None:
            self._steps = open(self.dir / STEPS_FILE, "w", newline="")
            self._steps.write("step,epoch,loss\n")
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
            "metrics": [asdict(r) for r in history],
            "config_yaml": self.config_yaml,
            "train_state": train_state.to_dict() if train_state is not None else None,
            "best": best,
        }
        atomic_write(self.last_checkpoint, lambda f: torch.save(state, f))
        if best is not None:
            best_state = {
                "model": best["model"],
                "epoch": best["epoch"],
                "val_loss": best["val_loss"],
                "metrics": state["metrics"][: best["epoch"] + 1],
                "config_yaml": self.config_yaml,
            }
            atomic_write(self.best_checkpoint, lambda f: torch.save(best_state, f))

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_summary(self.dir, summary)

    def close(self) -> None:
        self._metrics.close()
        if self._steps is not None:
            self._steps.close()


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """summary.json, atomically: readers see the old version or the new one, never half of one."""
    atomic_write(Path(run_dir) / SUMMARY_FILE, lambda f: f.write(json.dumps(summary, indent=2).encode() + b"\n"))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (weights_only); a file that is
    truncated, tampered with or not aecli's raises CheckpointError instead of torch's traceback."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as err:  # zip errors, EOF, unpickling refused by weights_only, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable aecli checkpoint: it is truncated, corrupted or "
            f"holds objects other than tensors ({reason[:160]})"
        ) from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in CHECKPOINT_KEYS):
        raise CheckpointError(
            f"{path} is a torch file but not an aecli checkpoint (it needs the keys {', '.join(CHECKPOINT_KEYS)})"
        )
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


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[MLPAutoencoder, Any]:
    """The model saved in a checkpoint (or a run folder's last.pt), in eval mode, and its run's config."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    ckpt = load_checkpoint(find_checkpoint(path), map_location=device)
    cfg = OmegaConf.create(ckpt["config_yaml"])
    state = ckpt["model"]
    input_dim = next(v for k, v in state.items() if k.endswith("weight") and k.startswith("encoder")).shape[1]
    model = instantiate(cfg.model, input_dim=input_dim)
    model.load_state_dict(state)
    dtype = next(iter(state.values())).dtype
    return model.to(device=device, dtype=dtype).eval(), cfg


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
