"""Everything a run writes into its folder, each file written so a crash never corrupts it.

metrics.csv grows by one flushed row per epoch; checkpoints and summary.json are
written to a temporary file, fsynced and renamed over the old one, so a kill at
any moment leaves the previous complete version readable.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Optional

import torch

from aecli.train import EpochRecord

METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"


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
    """The files of one run folder: metrics.csv, checkpoints/last.pt and summary.json."""

    def __init__(self, run_dir: Path, config_yaml: str) -> None:
        self.dir = Path(run_dir)
        self.config_yaml = config_yaml
        (self.dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.dir / METRICS_FILE, "w", newline="")
        self._csv = csv.DictWriter(self._metrics, fieldnames=[f.name for f in fields(EpochRecord)])
        self._csv.writeheader()
        self._steps: Optional[Any] = None  # steps.csv, opened on the first row
        self._n_steps = 0

    @property
    def last_checkpoint(self) -> Path:
        return self.dir / CHECKPOINT_DIR / LAST_CHECKPOINT

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
    ) -> None:
        """Model, optimizer and schedule state, epoch, metrics and the resolved config as YAML text.

        Only tensors, numbers, strings, lists and dicts: loadable with torch.load(weights_only=True).
        """
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": history[-1].epoch if history else 0,
            "metrics": [asdict(r) for r in history],
            "config_yaml": self.config_yaml,
        }
        atomic_write(self.last_checkpoint, lambda f: torch.save(state, f))

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
    """Read a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location=map_location, weights_only=True)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's checkpoints/last.pt; ValueError naming what is missing."""
    path = Path(path).expanduser()
    candidate = path / CHECKPOINT_DIR / LAST_CHECKPOINT if path.is_dir() else path
    if not candidate.is_file():
        raise ValueError(f"no checkpoint at {candidate}: give a run folder (with {CHECKPOINT_DIR}/{LAST_CHECKPOINT}) "
                         f"or a .pt file")
    return candidate


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Any]:
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
