"""How stacked training scales with the number of members K, on any device:

    python -m aecli.vectorized.scaling --device cuda --ks 1 16 64 256 1024

First a check that a mixed group (tanh, relu, linear, with and without biases, two learning
rates) follows each job trained alone on the same device; then member-steps per second of
`fit_group` for each K beside one plain `fit`, for the 2-3-2 net of nonlinear_2d and the
rectangle study's `big` net. Members differ in seed (and, for the rectangle, learning rate).
The README's GPU table comes from this command.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence
from typing import Optional

import torch
from omegaconf import OmegaConf

from aecli.config import compose
from aecli.training.loop import fit
from aecli.validation import Plan, validate
from aecli.vectorized import TrainRequest, fit_group

MIXED = [
    ["model=tanh"],
    ["model=relu"],
    ["model=linear"],
    ["model=relu_nobias"],
    ["model=tanh_nobias", "optimizer.lr=0.01"],
]
WORKLOADS = {  # name: (overrides, learning rates the members cycle through)
    "nonlinear_2d 2-3-2, 10 epochs": (
        ["experiment=nonlinear_2d", "trainer.epochs=10", "dataset=polynomial", "model=tanh"],
        [3e-3],
    ),
    "rectangle big, 20 epochs": (
        ["experiment=rectangle_capacity", "model=big", "trainer.epochs=20", "trainer.log_steps=false"],
        [1e-3, 3e-3, 1e-2, 3e-4],
    ),
}


def plan_of(overrides: Sequence[str], device: torch.device) -> Plan:
    return validate(compose([f"trainer.device={device.type}", "trainer.progress=false", *overrides]))


def request(plan: Plan, seed: Optional[int] = None, lr: Optional[float] = None) -> TrainRequest:
    """One job's TrainRequest, built as its run builds it (aecli.bench.plan_request); the plan is
    copied with another seed and lr rather than composed again (a thousand composes take minutes)."""
    from aecli.bench import plan_request

    cfg = copy.deepcopy(plan.cfg)
    if seed is not None:
        OmegaConf.update(cfg, "seed", seed)
    if lr is not None:
        OmegaConf.update(cfg, "optimizer.lr", lr)
    plan = copy.copy(plan)
    plan.cfg = cfg
    return plan_request(plan)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_equivalence(device: torch.device) -> None:
    """Each member of a mixed group against the same job trained alone: relative val-loss differences."""
    plans = [plan_of(["experiment=nonlinear_2d", "trainer.epochs=5", *v], device) for v in MIXED]
    alone = [fit(r.training, r.train, r.val, r.cfg) for r in (request(p) for p in plans)]
    group = fit_group([request(p) for p in plans])
    for variant, a, g in zip(MIXED, alone, group):
        first = abs(a.history[1].val_loss - g.history[1].val_loss) / a.history[1].val_loss
        last = abs(a.history[-1].val_loss - g.history[-1].val_loss) / a.history[-1].val_loss
        print(f"{' '.join(variant)}: epoch-1 val loss rel. diff {first:.1e}, final {last:.1e} ({g.status})")


def measure(name: str, overrides: Sequence[str], lrs: Sequence[float], ks: Sequence[int], device: torch.device) -> None:
    """Member-steps per second of one plain fit, then of fit_group for each K."""
    plan = plan_of(overrides, device)
    one = request(plan)
    sync(device)
    start = time.perf_counter()
    steps = fit(one.training, one.train, one.val, one.cfg).steps
    sync(device)
    alone = steps / (time.perf_counter() - start)
    print(f"{name}: one plain fit {alone:,.0f} steps/s")
    for k in ks:
        requests = [request(plan, seed=i, lr=lrs[i % len(lrs)]) for i in range(k)]
        sync(device)
        start = time.perf_counter()
        results = fit_group(requests)
        sync(device)
        rate = sum(r.steps for r in results) / (time.perf_counter() - start)
        print(f"{name}: K={k} {rate:,.0f} member-steps/s = {rate / alone:.1f}x one fit")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aecli.vectorized.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"stacked training on {device} ({label}), torch {torch.__version__}, 1 thread")
    check_equivalence(device)
    for name, (overrides, lrs) in WORKLOADS.items():
        measure(name, overrides, lrs, args.ks, device)


if __name__ == "__main__":
    main()
