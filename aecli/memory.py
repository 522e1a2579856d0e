"""Will it fit? Memory estimated from the settings, before anything is allocated, so a size that
cannot fit is one sentence instead of a MemoryError (or the kernel's OOM killer) later.

Coarse on purpose: the estimates refuse only what cannot fit. The data set's spec says how much
its points take while they are made (`DataSpec.estimated_bytes`; data read from files has a
fixed, small size), the model's spec lists its layer widths (`ModelSpec.layer_widths`).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from aecli.errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from aecli.data import DataShape, DataSpec
    from aecli.models import ModelSpec

PARAM_COPIES = 6  # weights, gradients, Adam's two moments, the untrained copy and the best epoch's copy
ACTIVATION_COPIES = 3  # per layer and row: its linear output, its activation, and a dropout mask or input
EVAL_CHUNK = 16384  # rows per pass of training.loop.evaluate
FALLBACK_MEMORY = 64 * 2**30  # where the OS does not say how much memory there is (no os.sysconf)
MEMORY_SHARE = 0.8  # of the machine's memory a run may plan on: the OS, other processes and the estimates' gaps


@functools.lru_cache(maxsize=1)
def machine_memory() -> int:
    """Bytes of memory this process may use: the physical memory, or the cgroup v2/v1 limit where lower
    (a container, a SLURM job); FALLBACK_MEMORY where the OS does not say."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        total = FALLBACK_MEMORY
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit():  # cgroup v2 says "max" when unlimited
            total = min(total, int(limit))
    return total


def size_text(n_bytes: float) -> str:
    """Bytes in binary units: 596 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}" if n_bytes < 1000 or unit == "PiB" else f"{n_bytes:.0f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


# ------------------------------------------------------------ what a file may make aecli allocate
# A file's header declares sizes (an IDX's image count, an .npy's shape, a checkpoint's tensors) that a
# few bytes on disk can inflate into gigabytes. Everything a file declares is checked against this
# budget before it is allocated. 4 GiB: full MNIST as aecli holds it (70,000 x 784 values in float64
# and its copies) takes 1.6 GiB, the largest real checkpoint a few MB; on a shared lab machine one
# hostile or mistaken file must not take the memory of everyone else's jobs. Bigger data: raise it.
BUDGET_ENV = "AECLI_MEMORY_BUDGET"
DEFAULT_BUDGET = 4 * 2**30
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def file_budget() -> int:
    """Bytes that what one file declares may make aecli allocate: $AECLI_MEMORY_BUDGET (e.g. 16G, 500M
    or a number of bytes), else DEFAULT_BUDGET; never more than a run may plan on (MEMORY_SHARE)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    budget = DEFAULT_BUDGET if not text else parse_size(text)
    return min(budget, int(machine_memory() * MEMORY_SHARE))


def parse_size(text: str) -> int:
    """`16G`, `16GiB`, `500M`, `2.5g` or `1000000` as bytes; ConfigError naming BUDGET_ENV otherwise."""
    number, unit = text.upper().removesuffix("B").removesuffix("I"), ""
    if number and number[-1] in UNITS:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        value = -1.0
    if not (0 < value < 2**63):
        raise ConfigError(f"{BUDGET_ENV}={text!r} is not a size; use e.g. 16G, 500M or a number of bytes")
    return int(value)


def check_file_budget(need: float, what: str) -> None:
    """ConfigError when `what` (a file and what it declares) would take more than file_budget()."""
    budget = file_budget()
    if need > budget:
        raise ConfigError(
            f"{what} would take about {size_text(need)} of memory, more than the {size_text(budget)} aecli allows "
            f"what a file declares; for data that big, raise it with {BUDGET_ENV}=<size> (e.g. {BUDGET_ENV}=16G)"
        )


def cores() -> int:
    """The cores this process may run on (its CPU affinity: a taskset, a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def machine() -> str:
    """What the memory messages say about the machine."""
    return f"this machine has {size_text(machine_memory())} (a run may plan on {MEMORY_SHARE:.0%} of it)"


def check_data_memory(data: DataSpec) -> None:
    """The data set's points fit in memory, judged from its settings alone."""
    need = data.estimated_bytes()
    if need is not None and need > machine_memory() * MEMORY_SHARE:
        key = max(("n", "points"), key=lambda k: getattr(data, k, 0))
        raise ConfigError(
            f"dataset.{key}={getattr(data, key)} needs about {size_text(need)} for its points; {machine()}; "
            f"use a smaller dataset.{key}"
        )


def check_model_memory(model: ModelSpec, shape: DataShape, n_train: int, n_val: int, cfg: DictConfig) -> None:
    """The model fits in memory with its optimizer state, copies and largest forward pass on data of
    `shape`: one sentence naming the widest layer's setting otherwise, before torch allocates it."""
    t, p = cfg.trainer, cfg.plots
    widths = model.layer_widths(shape)
    per_value = 8 if t.dtype == "float64" else 4
    weights = model.parameter_count(shape) * per_value * PARAM_COPIES
    error_map = shape.dim == 2 and "error_map" in cfg.get("analyses", {})
    # autograd keeps every layer of a training batch; passes without it (validation, figures) about one
    grid_rows = p.error_map_resolution**2 if error_map else 0
    eval_rows = max(min(n_val, EVAL_CHUNK), n_val if p.enabled else 0, grid_rows)
    train_pass = min(t.batch_size, n_train) * sum(widths)
    eval_pass = eval_rows * max(widths)
    activations = max(train_pass, eval_pass) * ACTIVATION_COPIES * per_value
    memory = machine_memory() * MEMORY_SHARE
    if weights + activations <= memory:
        return
    what = model.widest_setting(shape)
    if weights > memory:
        need, why = weights, "for the model's weights, gradients and optimizer state"
    else:
        rows = eval_rows if eval_pass > train_pass else min(t.batch_size, n_train)
        need, why = weights + activations, f"to pass {rows} points through the model at once"
        if error_map and eval_pass > train_pass and rows == grid_rows:
            why += f" (the error map's plots.error_map_resolution={p.error_map_resolution} squared)"
    raise ConfigError(f"{what} needs about {size_text(need)} {why}; {machine()}; use smaller layers")


# glibc's mallopt parameters (malloc.h); HEAP_REUSE_BYTES is glibc's own ceiling for its dynamic mmap threshold
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_REUSE_BYTES = 32 * 2**20


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to serve blocks below 32 MiB from its heap and to keep up to 64 MiB of freed
    heap, instead of giving each large block a fresh mapping of its own; True where that was set.

    Why: a training step frees and allocates the same tensors every step. A block above glibc's
    mmap threshold (128 KiB until its dynamic adjustment catches up) is a new mapping each time,
    whose every 4 KiB page faults in again when first written: a stacked group of 64 rectangle
    `big` nets took 19,000 minor page faults in 5 epochs, 12,000 with this (5-10% more steps/s).
    Blocks of 32 MiB and more (data sets) still get their own mappings and go back to the OS when
    freed. Nothing happens where malloc is not glibc's (macOS, musl)."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_REUSE_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * HEAP_REUSE_BYTES))
