"""The stacked training engine (aecli.vectorized): K jobs trained as one stacked model must leave, for
every member, what fit() leaves for the job alone. Tiny data and few epochs: seconds in all."""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from aecli.config import compose
from aecli.pipeline import build_data, build_training
from aecli.reporting.trackers import Trackers
from aecli.run_files import RunFiles, load_checkpoint
from aecli.summary import Status
from aecli.training.callbacks import Checkpoints, RunHandles
from aecli.training.loop import fit
from aecli.training.state import FitResult
from aecli.validation import validate
from aecli.vectorized import TrainRequest, bytes_per_member, fit_group, stack_key, stacked_optim
from aecli.vectorized.group import Group
from aecli.vectorized.members import Member

BASE = ["dataset=polynomial", "dataset.n=240", "trainer.epochs=3", "trainer.device=cpu", "trainer.batch_size=32"]
MIXED = [  # activations tanh, relu, linear; bias on and off; two learning rates; two seeds
    ["model=tanh"],
    ["model=relu"],
    ["model=linear"],
    ["model=relu_nobias"],
    ["model=tanh_nobias", "optimizer.lr=0.01"],
    ["model=tanh", "optimizer.lr=0.01", "seed=7"],
]
HIDDEN = ["model=mlp", "model.hidden_sizes=[6]", "model.latent_dim=2", "model.activation=tanh"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def request(overrides: Sequence[str], base: Sequence[str] = BASE) -> TrainRequest:
    """A job's fit() arguments, built as the pipeline builds them (seeded, regularizers attached)."""
    plan = validate(compose([*base, *overrides]))
    torch.manual_seed(plan.cfg.seed)
    data = build_data(plan)
    training, start = build_training(plan, data, None, None, [], torch.device("cpu"), torch.float32)
    for regularizer in training.regularizers:
        regularizer.attach(training.model)
    return TrainRequest(training, data.train.float(), data.val.float(), plan.cfg.trainer, [], start)


def alone(r: TrainRequest, **kwargs) -> FitResult:
    return fit(r.training, r.train, r.val, r.cfg, r.callbacks, r.start, **kwargs)


def pair(
    variants: Sequence[Sequence[str]], base: Sequence[str] = BASE
) -> tuple[list[TrainRequest], list[TrainRequest]]:
    """Two identical sets of requests: one to run alone, one to run as a group."""
    return [request(v, base) for v in variants], [request(v, base) for v in variants]


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-12)


def test_same_seed_same_initial_weights_and_batch_order():
    solo, grouped = pair(MIXED[:3])
    group = Group([Member.of(r, i) for i, r in enumerate(grouped)])
    for k, a in enumerate(solo):
        for slot, param in zip(group.stack.slots[k], a.training.model.parameters()):
            assert torch.equal(slot.stacked(group.stack.flat[k]), param.detach())
    data, _ = group.shuffled()
    for k, a in enumerate(solo):  # run_epoch's first permutation, drawn from the job's own generator
        expected = a.train[torch.randperm(len(a.train), generator=a.training.data_order)]
        assert torch.equal(data[k], expected)


@pytest.mark.parametrize("fused", [True, False], ids=["fused_kernel", "formula"])
def test_group_matches_fit_alone(fused, monkeypatch):
    monkeypatch.setattr(stacked_optim, "FUSED", fused)
    solo, grouped = pair(MIXED)
    expected = [alone(r) for r in solo]
    results = fit_group(grouped)
    for a, g, ra, rg in zip(expected, results, solo, grouped):
        assert g.status == Status.completed and g.steps == a.steps and g.weights_match_state
        assert len(g.history) == len(a.history) == 4
        first_a, first_g = a.history[1], g.history[1]
        assert relative(first_a.train_loss, first_g.train_loss) < 1e-5
        assert relative(first_a.val_loss, first_g.val_loss) < 1e-5
        assert relative(a.history[-1].val_loss, g.history[-1].val_loss) < 0.01
        assert [r.epoch for r in g.history] == [0, 1, 2, 3] and set(first_g.terms) == set(first_a.terms)
        for p, q in zip(ra.training.model.parameters(), rg.training.model.parameters()):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)
        assert g.state.epoch == a.state.epoch and g.state.steps == a.state.steps
        assert torch.equal(g.state.order_state, a.state.order_state)


def test_regularizers_and_schedule_match_fit_alone():
    variants = [
        [*HIDDEN, "regularizer.weight_l2=0.01"],
        [*HIDDEN, "regularizer.activation_l1=0.05", "optimizer.lr_decay=0.9"],
        [*HIDDEN, "regularizer.activation_l2=0.1", "regularizer.weight_l2=0.001", "optimizer.weight_decay=0.01"],
        [*HIDDEN, "model.activation=relu", "optimizer.betas=[0.8,0.99]"],
    ]
    solo, grouped = pair(variants)
    expected = [alone(r) for r in solo]
    for a, g in zip(expected, fit_group(grouped)):
        assert [sorted(r.terms) for r in g.history] == [sorted(r.terms) for r in a.history]
        assert [r.lr for r in g.history] == pytest.approx([r.lr for r in a.history])
        for ra, rg in zip(a.history[:2], g.history[:2]):
            for name, value in ra.terms.items():
                assert relative(value, rg.terms[name]) < 1e-5, name
        assert relative(a.history[-1].val_loss, g.history[-1].val_loss) < 0.01


def test_checkpoint_of_a_member_resumes_as_a_plain_run(tmp_path: Path):
    """A member's last.pt (written by its own Checkpoints callback) holds its plain weights and torch's
    own optimizer state: a plain fit resumed from it ends where a plain uninterrupted run ends."""
    full = request(["model=relu", "trainer.epochs=4"])
    expected = alone(full)
    grouped = [request(["model=relu", "trainer.epochs=2"]), request(["model=tanh", "trainer.epochs=2"])]
    files = RunFiles(tmp_path, "test: true\n")
    checkpoints = Checkpoints(every=10)
    checkpoints.setup(RunHandles(files, Trackers({}), grouped[0].training, grouped[0].cfg, "member"))
    grouped[0].callbacks = [checkpoints]
    fit_group(grouped)
    files.close()
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    resumed = request(["model=relu", "trainer.epochs=4"])
    resumed.training.model.load_state_dict(saved["model"])
    resumed.training.optimizer.load_state_dict(saved["optimizer"])
    assert set(saved["optimizer"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert float(saved["optimizer"]["state"][0]["step"]) == 2 * math.ceil(len(full.train) / 32)
    from aecli.training.state import EpochRecord, TrainState

    resumed.training.history = [EpochRecord.from_row(row) for row in saved["metrics"]]
    result = fit(
        resumed.training, resumed.train, resumed.val, resumed.cfg, (), TrainState.from_dict(saved["train_state"])
    )
    assert relative(expected.history[-1].val_loss, result.history[-1].val_loss) < 1e-4
    for p, q in zip(full.training.model.parameters(), resumed.training.model.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)


def test_a_diverging_member_stops_alone():
    variants = [
        ["optimizer=sgd", "optimizer.lr=0.05"],
        ["optimizer=sgd", "optimizer.lr=1e6", "optimizer.momentum=0.9"],
        ["optimizer=sgd", "optimizer.lr=0.02", "optimizer.momentum=0.5", "model=relu"],
    ]
    base = [*BASE, "trainer.epochs=4", "model=linear"]
    solo, grouped = pair(variants, base)
    expected = [alone(r) for r in solo]
    results = fit_group(grouped)
    assert expected[1].status == results[1].status == Status.diverged
    assert results[1].diverged_at_step == expected[1].diverged_at_step
    assert len(results[1].history) == len(expected[1].history) and not results[1].weights_match_state
    for a, g in zip(expected[::2], results[::2]):
        assert g.status == Status.completed and len(g.history) == 5
        for ra, rg in zip(a.history, g.history):
            assert relative(ra.val_loss, rg.val_loss) < 1e-4


def test_stop_request_interrupts_every_member_resumably():
    def after(n: int):
        calls = [0]

        def stop() -> bool:
            calls[0] += 1
            return calls[0] > n

        return stop

    solo, grouped = pair(MIXED[:3])
    stop_at = 11  # inside epoch 2: 204 training points make 7 steps per epoch
    expected = [alone(r, stop_requested=after(stop_at)) for r in solo]
    results = fit_group(grouped, stop_requested=after(stop_at))
    for a, g, ra, rg in zip(expected, results, solo, grouped):
        assert g.status == a.status == Status.interrupted and g.weights_match_state
        assert (
            (g.state.epoch, g.state.batch, g.state.steps) == (a.state.epoch, a.state.batch, a.state.steps) == (1, 4, 11)
        )
        assert g.state.terms == a.state.terms and torch.equal(g.state.order_state, a.state.order_state)
        assert torch.allclose(g.state.running, a.state.running, rtol=1e-5)
        assert len(g.history) == len(a.history) == 2
        for p, q in zip(ra.training.model.parameters(), rg.training.model.parameters()):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)


def test_noise_is_statistically_the_same_as_alone():
    """Dropout and masking noise are drawn differently in a group (one draw for all members), so the
    final losses of one job (same data, same initial weights) under six noise streams must agree in
    distribution with six members' in a group; a member without noise still matches exactly."""
    noisy = [*HIDDEN, "model.dropout=0.3", "regularizer.mask_rate=0.3", "trainer.epochs=6"]
    expected = []
    for stream in range(6):
        job = request(noisy)
        torch.manual_seed(100 + stream)  # the noise stream of this run alone
        expected.append(alone(job).history[-1].val_loss)
    quiet = [*HIDDEN, "trainer.epochs=6"]
    results = [r.history[-1].val_loss for r in fit_group([*(request(noisy) for _ in range(6)), request(quiet)])]
    assert relative(alone(request(quiet)).history[-1].val_loss, results[-1]) < 1e-4
    a, g = expected, results[:-1]
    error = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(g) / len(g))
    assert abs(statistics.mean(a) - statistics.mean(g)) < 3 * error
    assert len(set(g)) == len(g)  # every member drew its own noise


def test_stack_key():
    compatible = [request(v) for v in MIXED]
    keys = {stack_key(r)[0] for r in compatible}
    assert len(keys) == 1 and None not in keys
    vae = request(["model=vae"])
    key, reason = stack_key(vae)
    assert key is None and "VAE" in reason
    batchnorm = request(["model=swiss_roll_mlp"])
    key, reason = stack_key(batchnorm)
    assert key is None and "BatchNorm" in reason
    resumed = copy.copy(compatible[0])
    resumed.start = alone(request(["model=tanh", "trainer.epochs=1"])).state
    assert stack_key(resumed) == (None, "resumed runs train alone")
    assert stack_key(request(["trainer.batch_size=16"]))[0] != stack_key(compatible[0])[0]
    with pytest.raises(ValueError):
        fit_group([compatible[0], batchnorm])


def test_bytes_per_member_counts_parameters_state_and_data():
    small, wide = request(["model=tanh"]), request(HIDDEN + ["model.hidden_sizes=[64]"])
    for r in (small, wide):
        params = sum(p.numel() for p in r.training.model.parameters())
        floor = 4 * 4 * params + 4 * (2 * r.train.numel() + r.val.numel())  # weights, grads, Adam's two buffers; data
        assert floor <= bytes_per_member(r) <= 10 * floor
    assert bytes_per_member(wide) > bytes_per_member(small)


@pytest.mark.parametrize(
    "settings",
    [
        ["trainer.loss=sse", "trainer.drop_last=true", "trainer.limit_val_batches=2"],
        ["trainer.shuffle=false", "trainer.limit_train_batches=3", "optimizer=sgd", "optimizer.lr_decay=0.8"],
        ["trainer.epochs=0"],
    ],
    ids=["sse_drop_last_limit_val", "no_shuffle_limit_train_sgd_schedule", "no_epochs"],
)
def test_trainer_settings_match_fit_alone(settings):
    solo, grouped = pair([[*settings, "model=tanh"], [*settings, "model=relu_nobias", "seed=5"]])
    expected = [alone(r) for r in solo]
    for a, g in zip(expected, fit_group(grouped)):
        assert (g.status, g.steps, len(g.history)) == (a.status, a.steps, len(a.history))
        for ra, rg in zip(a.history, g.history):
            assert relative(ra.train_loss, rg.train_loss) < 1e-5 and relative(ra.val_loss, rg.val_loss) < 1e-5
            assert ra.lr == pytest.approx(rg.lr)


FAULTS_SCRIPT = """
import resource, sys, torch
import aecli.memory
if sys.argv[1] == "default":  # glibc's own settings: the runs' call made a no-op
    aecli.memory.reuse_freed_memory = lambda: False
import aecli.pipeline
aecli.pipeline.reuse_freed_memory = aecli.memory.reuse_freed_memory
from aecli.vectorized import fit_group
from aecli.vectorized.scaling import plan_of, request
plan = plan_of(["experiment=rectangle_capacity", "model=big", "trainer.epochs=5"], torch.device("cpu"))
requests = [request(plan, seed=i) for i in range(64)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fit_group(requests)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_memory_is_reused_instead_of_faulting_in_fresh_pages():
    """A stacked group's steps free and allocate the same blocks: with reuse_freed_memory (every run
    calls it) they come back from the heap; with glibc's defaults many are fresh mappings whose pages
    fault in again (64 rectangle `big` nets, 5 epochs: 19,000 minor page faults against 12,000 here)."""
    import subprocess
    import sys

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    reused, default = faults("reuse"), faults("default")
    assert reused < 0.8 * default, (reused, default)
