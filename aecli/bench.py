"""Speed benchmark: aecli's training loop against hand-written loops and Lightning, in one process.

    python -m aecli.bench                      # every workload, every side, 3 repeats, CPU
    python -m aecli.bench --device cuda        # the same table on a GPU
    python -m aecli.bench --workloads rectangle_big --repeats 5 --steps-scale 0.2
    python -m aecli.bench --workloads sweep_nonlinear_2d sweep_rectangle_64   # hydra/launcher=vectorized

Every side trains the same model (same initial weights), on the same data, with the same
optimizer and the same batch order for the same number of steps; only the loop differs:

  aecli       aecli.training.loop.fit with what a run adds: per-epoch validation, metrics.csv rows,
              periodic checkpoints and the progress bar as `aecli` configures them
  bare        a hand-written loop that shuffles once per epoch and slices the shuffled
              tensor: the fastest honest baseline
  dataloader  the studies' loop: TensorDataset + DataLoader(shuffle=True) and loss.item()
              every step
  lightning   lightning.Trainer with logger, checkpointing, progress bar and model summary
              off (needs `pip install lightning`: the bench extra); skipped if not installed
  compiled    aecli's loop with trainer.compile=true (torch.compile), compile time included

The sweep workloads measure hydra/launcher=vectorized (aecli.vectorized.fit_group) against the
ways a sweep trains today, in member-steps per second (every job's optimizer steps, summed):

  sweep_nonlinear_2d   the ten jobs of experiment=nonlinear_2d, 60 epochs: one after another
                       (plain fit) vs stacked; then the whole command `aecli -m
                       experiment=nonlinear_2d` with the basic and the vectorized launcher
  sweep_rectangle_64   64 jobs of rectangle_capacity's `big` net (8 seeds x 8 learning rates):
                       one job alone, joblib (one worker per core, one thread each, the jobs
                       split between them) and stacked

Each side runs `--repeats` times, interleaved, and the table shows the median steps per
second and its ratio to aecli's. Whole-process wall times of `aecli --help`,
`aecli --cfg job` and the default `aecli` run, and the time to draw a 2-D run's figures,
follow. Speed goals live here, never in the tests.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, cast

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from aecli.config import TrainerConfig
from aecli.models import Loss, MLPAutoencoder
from aecli.run_files import RunFiles
from aecli.training.loop import Training, fit
from aecli.training.optim import make_optimizer
from aecli.training.state import EpochRecord, FitResult
from aecli.validation import Plan
from aecli.vectorized import TrainRequest


@dataclass
class Workload:
    name: str
    what: str
    input_dim: int
    hidden: list[int]
    latent: int
    n: int  # training rows
    batch_size: int
    steps: int
    drop_last: bool
    lr: float
    loss: str  # "mse" or "sse"


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "rectangle_big",
            "rectangle_capacity's big net [50,50,50]->1, 100 points, batch 8",
            2,
            [50, 50, 50],
            1,
            100,
            8,
            12_000,
            True,
            1e-3,
            "mse",
        ),
        Workload(
            "beta_bs1",
            "beta_curves' 100-128-2 net at batch size 1",
            100,
            [128],
            2,
            10_000,
            1,
            10_000,
            False,
            1e-4,
            "sse",
        ),
        Workload(
            "mnist_sized",
            "784-256-32 net, batch 256, random data of MNIST's shape",
            784,
            [256],
            32,
            60_000,
            256,
            2_000,
            False,
            1e-3,
            "mse",
        ),
    ]
}


@dataclass
class Problem:
    """One workload made concrete on a device: data, initial weights and the epoch count."""

    workload: Workload
    data: torch.Tensor
    val: torch.Tensor
    initial: MLPAutoencoder
    epochs: int
    steps_per_epoch: int
    fused: bool = True  # aecli's optimizer kernel on every side; False: torch's default Adam (--default-adam)

    def fresh_model(self) -> MLPAutoencoder:
        return copy.deepcopy(self.initial)

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimizer aecli builds (Adam, fused kernel where available) for every side, so the
        table measures the loops; --default-adam gives every side torch's default Adam instead."""
        return make_optimizer(torch.optim.Adam, list(model.parameters()), {"lr": self.workload.lr}, fused=self.fused)


def make_problem(w: Workload, device: torch.device, steps_scale: float, fused: bool = True) -> Problem:
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(w.n, w.input_dim, generator=gen).to(device)
    per_epoch = w.n // w.batch_size if w.drop_last else -(-w.n // w.batch_size)
    epochs = max(1, round(w.steps * steps_scale / per_epoch))
    torch.manual_seed(0)
    model = MLPAutoencoder(w.input_dim, w.hidden, w.latent, loss=cast(Loss, w.loss)).to(device)
    return Problem(w, data, data[: min(len(data), 1000)], model, epochs, per_epoch, fused)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- the sides
def run_aecli(p: Problem, device: torch.device, compile: bool = False) -> tuple[int, torch.nn.Module]:
    """aecli's loop with a run's per-epoch callbacks: metrics rows, a checkpoint every 10 epochs,
    progress bar. compile: as trainer.compile=true, compilation time included."""
    from aecli.reporting.trackers import Trackers
    from aecli.training import callbacks as cb

    w, model = p.workload, p.fresh_model()
    optimizer = p.optimizer(model)
    if compile:
        # compiled callables shadow the methods on the instance, as trainer.compile=true does
        model.encode, model.decode = torch.compile(model.encode), torch.compile(model.decode)  # type: ignore[method-assign]
    cfg = OmegaConf.structured(
        TrainerConfig(epochs=p.epochs, batch_size=w.batch_size, drop_last=w.drop_last, loss=w.loss)
    )
    training = Training(model, optimizer, None, [], torch.Generator().manual_seed(1), [])
    with tempfile.TemporaryDirectory() as tmp:
        files = RunFiles(Path(tmp), "bench: true\n")
        handles = cb.RunHandles(files, Trackers({}), training, cfg, "bench")
        # what the loop has always been measured with: metrics rows, checkpoints, the progress bar
        callbacks = [cb.MetricsFile(), cb.Checkpoints(cfg.checkpoint_every), cb.ProgressBar()]
        for callback in callbacks:
            callback.setup(handles)
        result = fit(training, p.data, p.val, cfg, callbacks)
        files.close()
    if compile:
        del model.encode, model.decode
    return result.steps, model


def batch_loss(model: MLPAutoencoder, x: torch.Tensor, kind: str) -> torch.Tensor:
    return F.mse_loss(model.reconstruct(x), x, reduction="mean" if kind == "mse" else "sum")


def run_bare(p: Problem, device: torch.device) -> tuple[int, torch.nn.Module]:
    """Shuffle once per epoch, slice views, nothing else."""
    w, model = p.workload, p.fresh_model()
    optimizer = p.optimizer(model)
    gen, steps, bs = torch.Generator().manual_seed(1), 0, w.batch_size
    for _ in range(p.epochs):
        shuffled = p.data[torch.randperm(len(p.data), generator=gen).to(device)]
        for b in range(p.steps_per_epoch):
            loss = batch_loss(model, shuffled[b * bs : (b + 1) * bs], w.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
    return steps, model


class OnePermutationPerEpoch(torch.utils.data.Sampler[int]):
    """shuffle=True's order, one seeded permutation per epoch. (torch's RandomSampler also draws an
    empty extra permutation at the end of each epoch, which would shift the other sides' batches.)"""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.n


def shuffled_loader(p: Problem) -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
    """The studies' DataLoader over a TensorDataset, in the other sides' batch order."""
    from torch.utils.data import DataLoader, TensorDataset

    return DataLoader(
        TensorDataset(p.data),
        batch_size=p.workload.batch_size,
        sampler=OnePermutationPerEpoch(len(p.data), seed=1),
        drop_last=p.workload.drop_last,
    )


def run_dataloader(p: Problem, device: torch.device) -> tuple[int, torch.nn.Module]:
    """The studies' loop: a DataLoader over a TensorDataset and loss.item() every step."""
    w, model = p.workload, p.fresh_model()
    optimizer = p.optimizer(model)
    loader = shuffled_loader(p)
    steps, total = 0, 0.0
    for _ in range(p.epochs):
        for (x,) in loader:
            loss = batch_loss(model, x, w.loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
    return steps, model


def run_lightning(p: Problem, device: torch.device) -> tuple[int, torch.nn.Module]:
    import lightning as L

    w = p.workload

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = p.fresh_model()

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            return batch_loss(self.model, batch[0], w.loss)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return p.optimizer(self.model)

    module = Module()
    loader = shuffled_loader(p)
    trainer = L.Trainer(
        max_epochs=p.epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, loader)
    return int(trainer.global_step), module.model


SIDES: dict[str, Callable[[Problem, torch.device], tuple[int, torch.nn.Module]]] = {
    "aecli": run_aecli,
    "bare": run_bare,
    "dataloader": run_dataloader,
    "lightning": run_lightning,
    "compiled": lambda p, device: run_aecli(p, device, compile=True),
}


def lightning_available() -> bool:
    try:
        import lightning  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- measurement
def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench_workload(
    w: Workload, sides: list[str], device: torch.device, repeats: int, steps_scale: float, fused: bool
) -> dict[str, dict[str, float]]:
    problem = make_problem(w, device, steps_scale, fused)
    rates: dict[str, list[float]] = {s: [] for s in sides}
    memory: dict[str, float] = {}
    for _ in range(repeats):  # interleaved, so a slow moment of the machine hits every side alike
        for side in sides:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync(device)
            start = time.perf_counter()
            steps, _ = SIDES[side](problem, device)
            sync(device)
            rates[side].append(steps / (time.perf_counter() - start))
            memory[side] = peak_memory_mb(device)
    return {s: {"steps_per_s": statistics.median(r), "peak_mb": memory[s]} for s, r in rates.items()}


def wall_time(args: list[str], repeats: int, cwd: str) -> float:
    return statistics.median(command_time(args, cwd)[0] for _ in range(repeats))


def command_time(args: list[str], cwd: str) -> tuple[float, float]:
    """One command's wall seconds and CPU seconds (user + system, its worker processes included)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def figure_time(repeats: int) -> float:
    """Seconds to draw every figure of a default 2-D run (loss curve, latent, reconstruction, 500x500 error map)."""
    from aecli.analyses import RunContext
    from aecli.config import compose
    from aecli.data import PolynomialCurve
    from aecli.pipeline import draw_figures, run_analyses

    cfg = compose(["trainer.epochs=1"])
    data = PolynomialCurve(seed=0, grid_extent=[-2, 2, -2, 2]).build()
    model = MLPAutoencoder(2, [], 3, latent_activation="tanh")
    history = [EpochRecord(e, 1.0 / (e + 1), 1.0 / (e + 1), 1e-3, float(e)) for e in range(61)]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(
            cfg,
            model,
            model,
            None,
            data,
            history,
            torch.device("cpu"),
            torch.float32,
            Path(tmp),
            "polynomial / tanh",
            cfg.plots.dpi,
        )
        draw_figures(ctx)  # warm-up: font cache, first imports
        for _ in range(repeats):
            start = time.perf_counter()
            draw_figures(ctx)
            run_analyses(ctx)  # the default run's one analysis: the error map
            times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------------------- vectorized sweeps
NONLINEAR_2D_JOBS = [
    ["experiment=nonlinear_2d", f"dataset={d}", f"model={m}"]
    for d in ("polynomial", "spiral")
    for m in ("linear", "relu", "relu_nobias", "tanh", "tanh_nobias")
]
RECTANGLE_64_JOBS = [
    ["experiment=rectangle_capacity", "model=big", f"seed={seed}", f"optimizer.lr={lr}"]
    for seed in range(8)
    for lr in (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2)
]


def sweep_requests(jobs: list[list[str]], extra: list[str]) -> list[TrainRequest]:
    """Each job's TrainRequest as its run builds it (config, seed, data, model, optimizer), without
    folders or callbacks: what fit, or fit_group, then trains."""
    from aecli.config import compose
    from aecli.pipeline import settle

    return [plan_request(settle(compose([*overrides, *extra]))) for overrides in jobs]


def plan_request(plan: Plan) -> TrainRequest:
    """One job's TrainRequest from its checked config, seeded and built as its run builds it."""
    from aecli.pipeline import build_data, build_training, set_up_torch

    device, dtype = set_up_torch(plan.cfg.trainer)
    torch.manual_seed(plan.cfg.seed)
    data = build_data(plan)
    training, _ = build_training(plan, data, None, None, [], device, dtype)
    train, val = data.train.to(device, dtype), data.val.to(device, dtype)
    return TrainRequest(training, train, val, plan.cfg.trainer, [], None)


def timed(train: Callable[[list[TrainRequest]], list[FitResult]], requests: list[TrainRequest]) -> float:
    """Member-steps per second of `train` on these requests (built beforehand, not timed)."""
    start = time.perf_counter()
    results = train(requests)
    return sum(r.steps for r in results) / (time.perf_counter() - start)


def one_by_one(requests: list[TrainRequest]) -> list[FitResult]:
    from aecli.grouped import plain_fit

    return [plain_fit(r, lambda: False) for r in requests]


def stacked(requests: list[TrainRequest]) -> list[FitResult]:
    from aecli.vectorized import fit_group

    return fit_group(requests)


def joblib_chunk(jobs: list[list[str]], extra: list[str]) -> tuple[int, float]:
    """One joblib worker's share, one after another: (steps, seconds of training)."""
    requests = sweep_requests(jobs, extra)
    start = time.perf_counter()
    steps = sum(r.steps for r in one_by_one(requests))
    return steps, time.perf_counter() - start


def stacked_chunk(jobs: list[list[str]], extra: list[str]) -> tuple[int, float]:
    """One worker process's share, stacked as hydra.launcher.processes=N stacks it: (steps, seconds of training)."""
    requests = sweep_requests(jobs, extra)
    start = time.perf_counter()
    steps = sum(r.steps for r in stacked(requests))
    return steps, time.perf_counter() - start


def process_rate(
    chunk: Callable[[list[list[str]], list[str]], tuple[int, float]],
    jobs: list[list[str]],
    extra: list[str],
    workers: int,
) -> float:
    """Member-steps per second of the jobs dealt round-robin over `workers` processes (one thread each),
    each training its share with `chunk`, from the first step to the last worker's end: worker
    start-up and building are not counted."""
    from joblib import Parallel, delayed

    chunks = [jobs[i::workers] for i in range(workers)]
    done = Parallel(n_jobs=workers, backend="loky")(delayed(chunk)(c, extra) for c in chunks)
    return sum(steps for steps, _ in done) / max(seconds for _, seconds in done)


def bench_sweep_rectangle_64(repeats: int, steps_scale: float, device: str) -> dict[str, float]:
    """64 rectangle `big` jobs (seeds x lrs): one job alone, joblib, stacked in one process and in one
    process per core (hydra.launcher.processes); median member-steps/s."""
    epochs = max(1, round(20 * steps_scale))  # 12 steps per epoch
    extra = [f"trainer.epochs={epochs}", "trainer.num_threads=1", f"trainer.device={device}"]
    workers = os.cpu_count() or 1
    process_rate(joblib_chunk, RECTANGLE_64_JOBS[:workers], extra, workers)  # start the workers, import torch there
    per_core = f"stacked, {workers} processes"
    rates: dict[str, list[float]] = {"one job": [], "joblib": [], "stacked": [], per_core: []}
    for _ in range(repeats):
        rates["one job"].append(timed(one_by_one, sweep_requests(RECTANGLE_64_JOBS[:1], extra)))
        rates["joblib"].append(process_rate(joblib_chunk, RECTANGLE_64_JOBS, extra, workers))
        rates["stacked"].append(timed(stacked, sweep_requests(RECTANGLE_64_JOBS, extra)))
        if device == "cpu" and workers > 1:  # one GPU: the processes would share it
            rates[per_core].append(process_rate(stacked_chunk, RECTANGLE_64_JOBS, extra, workers))
    return {side: statistics.median(r) for side, r in rates.items() if r}


def bench_sweep_nonlinear_2d(repeats: int, steps_scale: float, device: str) -> dict[str, float]:
    """The ten nonlinear_2d jobs trained one after another and stacked; median member-steps/s."""
    epochs = max(1, round(60 * steps_scale))
    extra = [f"trainer.epochs={epochs}", "trainer.num_threads=1", f"trainer.device={device}"]
    rates: dict[str, list[float]] = {"one by one": [], "stacked": []}
    for _ in range(repeats):
        rates["one by one"].append(timed(one_by_one, sweep_requests(NONLINEAR_2D_JOBS, extra)))
        rates["stacked"].append(timed(stacked, sweep_requests(NONLINEAR_2D_JOBS, extra)))
    return {side: statistics.median(r) for side, r in rates.items()}


def sweep_command_times(repeats: int) -> dict[str, float]:
    """Whole-process seconds of `aecli -m experiment=nonlinear_2d`, basic and vectorized launcher
    (figures and the sweep report included), and where the basic sweep's time went: its jobs'
    training, the rest of its jobs (config, data, model, figures, analyses), and neither
    (start-up, Hydra, the sweep report), from its jobs' summary.json."""
    import json

    aecli = str(Path(sys.executable).with_name("aecli"))
    cores = os.cpu_count() or 1
    sides = {  # name: the launcher's overrides
        "basic": ["hydra/launcher=basic"],
        "vectorized": ["hydra/launcher=vectorized"],
        "vectorized, processes": ["hydra/launcher=vectorized", f"hydra.launcher.processes={cores}"],
    }
    times: dict[str, list[float]] = {side: [] for side in sides}
    cpu: dict[str, list[float]] = {f"{side} cpu": [] for side in sides}
    trained, jobs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for side, launcher in sides.items():
                sweep = Path(tmp) / f"{side.replace(', ', '-')}{r}"
                args = [aecli, "-m", "experiment=nonlinear_2d", *launcher, "trainer.progress=false"]
                wall, cpu_s = command_time([*args, f"hydra.sweep.dir={sweep}"], tmp)
                times[side].append(wall)
                cpu[f"{side} cpu"].append(cpu_s)
            summaries = [json.loads(p.read_text()) for p in (Path(tmp) / f"basic{r}").glob("*/summary.json")]
            trained.append(sum(s["train_seconds"] for s in summaries))
            jobs.append(sum(s["wall_seconds"] for s in summaries))
    split = {"basic training": statistics.median(trained), "basic jobs": statistics.median(jobs)}
    return {**{k: statistics.median(v) for k, v in {**times, **cpu}.items()}, **split}


def print_sweep(name: str, rates: dict[str, float], base: str, target: float) -> None:
    """A sweep workload's rows: member-steps/s of each side and its ratio to `base`."""
    for side, rate in rates.items():
        print(f"{name:<19} {side:<21} {rate:>10.0f} {rate / rates[base]:7.2f}")
    best = max((side for side in rates if side.startswith("stacked")), key=rates.__getitem__)
    print(f"{'':<19} {best}/{base} = {rates[best] / rates[base]:.2f} (target >= {target:g})\n")


SWEEPS = {  # name: (bench function, the side stacked is compared with, the target ratio)
    "sweep_nonlinear_2d": (bench_sweep_nonlinear_2d, "one by one", 5.0),
    "sweep_rectangle_64": (bench_sweep_rectangle_64, "joblib", 8.0),
}


def bench_sweeps(names: list[str], args: argparse.Namespace) -> None:
    """The sweep workloads' table, and the nonlinear_2d sweep's whole-command times (unless --no-process)."""
    if not names:
        return
    header = f"{'sweep workload':<19} {'side':<21} {'m-steps/s':>10} {'ratio':>7}"
    print(header + "\n" + "-" * len(header))
    for name in names:
        bench, base, target = SWEEPS[name]
        print_sweep(name, bench(args.repeats, args.steps_scale, args.device), base, target)
    if "sweep_nonlinear_2d" in names and not args.no_process:
        t = sweep_command_times(args.repeats)
        rest, outside = t["basic jobs"] - t["basic training"], t["basic"] - t["basic jobs"]
        split = f"training {t['basic training']:.1f} s, rest of the jobs {rest:.1f} s, outside the jobs {outside:.1f} s"
        cores, pad = os.cpu_count() or 1, " " * 34
        print(f"aecli -m experiment=nonlinear_2d: basic launcher {t['basic']:.1f} s ({split})")
        ratio = t["basic"] / t["vectorized"]
        print(f"{pad}vectorized {t['vectorized']:.1f} s, basic/vectorized = {ratio:.2f} (target >= 3)")
        ratio = t["basic"] / t["vectorized, processes"]
        print(f"{pad}vectorized, {cores} processes {t['vectorized, processes']:.1f} s, basic/that = {ratio:.2f}")
        # CPU seconds over the cores: no way of sharing the work out can take less wall time than that
        for side in ("basic", "vectorized", "vectorized, processes"):
            used = t[f"{side} cpu"]
            print(f"{pad}{side}: {used:.1f} CPU s (worker processes included) / {cores} cores = {used / cores:.1f} s")
        print()


def print_workload(name: str, results: dict[str, dict[str, float]]) -> None:
    """One workload's rows of the table, and its ratios against the targets."""
    base = results["aecli"]["steps_per_s"] if "aecli" in results else None
    for side, r in results.items():
        ratio = f"{r['steps_per_s'] / base:7.2f}" if base else "      -"
        print(f"{name:<14} {side:<11} {r['steps_per_s']:>10.0f} {ratio} {r['peak_mb']:>9.0f}")
    if base and "bare" in results:
        lightning = results.get("lightning")
        versus = f", aecli/lightning = {base / lightning['steps_per_s']:.2f} (target >= 3)" if lightning else ""
        print(f"{'':<14} aecli/bare = {base / results['bare']['steps_per_s']:.3f} (target >= 0.9){versus}")
    print()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aecli.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3)
    every = [*WORKLOADS, *SWEEPS]
    parser.add_argument("--workloads", nargs="*", default=every, choices=every)
    parser.add_argument(
        "--sides",
        nargs="*",
        default=["aecli", "bare", "dataloader", "lightning"],
        choices=list(SIDES),
        help="add `compiled` to measure trainer.compile=true",
    )
    parser.add_argument("--steps-scale", type=float, default=1.0, help="shorter (<1) or longer runs")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads, as aecli's default")
    parser.add_argument("--no-process", action="store_true", help="skip the whole-process wall times")
    parser.add_argument(
        "--default-adam",
        action="store_true",
        help="torch's default for-loop Adam on every side instead of aecli's fused one",
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    sides = [s for s in args.sides if s != "lightning" or lightning_available()]
    print(
        f"aecli bench: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
    )
    if "lightning" in args.sides and "lightning" not in sides:
        print("(lightning not installed: pip install lightning, or aecli[bench])")
    print(
        f"median of {args.repeats} repeats; ratio = side's steps/s / aecli's; every side uses "
        f"{'torch default' if args.default_adam else 'fused'} Adam\n"
    )
    header = f"{'workload':<14} {'side':<11} {'steps/s':>10} {'ratio':>7} {'peak MB':>9}"
    if any(w in WORKLOADS for w in args.workloads):
        print(header + "\n" + "-" * len(header))
    for name in [w for w in args.workloads if w in WORKLOADS]:
        results = bench_workload(WORKLOADS[name], sides, device, args.repeats, args.steps_scale, not args.default_adam)
        print_workload(name, results)
    bench_sweeps([w for w in args.workloads if w in SWEEPS], args)
    if not args.no_process:
        aecli = str(Path(sys.executable).with_name("aecli"))
        with tempfile.TemporaryDirectory() as tmp:
            for name, argv in (("--help", ["--help"]), ("--cfg job", ["--cfg", "job"])):
                print(f"aecli {name:<19}{wall_time([aecli, *argv], args.repeats, tmp):6.2f} s (target < 1.5)")
            print(f"aecli (default run)      {wall_time([aecli, 'trainer.progress=false'], args.repeats, tmp):6.2f} s")
        print(f"figures of a 2-D run     {figure_time(args.repeats):6.2f} s (target < 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
