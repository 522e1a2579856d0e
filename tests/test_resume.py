"""Crash safety and resume: a stopped run continued with resume ends bit-identical to one that never
stopped; checkpoints survive kill -9; tampered checkpoints give one sentence, never an unpickled object."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aecli.config import ConfigError, compose
from aecli.pipeline import resumed_config, run
from aecli.run_files import CheckpointError, atomic_write, load_checkpoint, load_model
from aecli.training.regularizers import MaskingNoise
from tests.conftest import read_summary, run_cli

# Dropout and masking noise draw from torch's global generator, the data order from its own, and the
# schedule decays the lr: a resume that restored any of these wrongly would give other weights.
OVERRIDES = [
    "dataset=spiral",
    "dataset.n=300",
    "model=relu",
    "model.hidden_sizes=[16]",
    "model.dropout=0.1",
    "regularizer=denoising",
    "regularizer.mask_rate=0.1",
    "optimizer.lr_decay=0.9",
    "trainer.epochs=6",
    "trainer.checkpoint_every=2",
    "trainer.log_steps=true",
    "trainer.progress=false",
    "plots.enabled=false",
]
STEPS_PER_EPOCH = 8  # 255 training points in batches of 32


def run_stopping_after(step: int | None, run_dir: Path, *extra: str) -> dict:
    """Run OVERRIDES in-process, sending ourselves SIGTERM during optimizer step `step` (as SLURM would)."""
    calls = {"n": 0}
    corrupt = MaskingNoise.corrupt  # called once per optimizer step (OVERRIDES: regularizer=denoising)

    def corrupt_and_maybe_signal(self, x, generator=None):
        calls["n"] += 1
        if calls["n"] == step:
            signal.raise_signal(signal.SIGTERM)
        return corrupt(self, x, generator)

    MaskingNoise.corrupt = corrupt_and_maybe_signal
    try:
        return run(compose([*OVERRIDES, *extra]), run_dir).as_dict()
    finally:
        MaskingNoise.corrupt = corrupt


def outcome(run_dir: Path) -> tuple[dict, list, str, dict]:
    """What must be identical: final weights, the losses of every epoch, every step's loss, best.pt."""
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    rows = [
        (r["epoch"], r["train_loss"], r["val_loss"], r["lr"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))
    ]
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    return last["model"], rows, (run_dir / "steps.csv").read_text(), {"epoch": best["epoch"], **best["model"]}


def assert_same(a: tuple, b: tuple) -> None:
    (wa, rows_a, steps_a, best_a), (wb, rows_b, steps_b, best_b) = a, b
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert rows_a == rows_b
    assert steps_a == steps_b
    assert best_a.keys() == best_b.keys() and all(
        best_a[k] == best_b[k] if k == "epoch" else torch.equal(best_a[k], best_b[k]) for k in best_a
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple:
    run_dir = tmp_path_factory.mktemp("reference")
    assert run_stopping_after(None, run_dir)["status"] == "completed"
    return outcome(run_dir)


@pytest.mark.parametrize(
    "stops",
    [[1], [8], [9], [20, 21], [3, 27, 45]],
    ids=["first-step", "end-of-epoch-1", "start-of-epoch-2", "mid-epoch-twice", "three-stops"],
)
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, reference, stops):
    done = 0
    for stop in stops:  # each stop: SIGTERM during that global step, then resume in the same folder
        summary = run_stopping_after(stop - done, tmp_path, *([f"trainer.resume_from={tmp_path}"] if done else []))
        assert summary["status"] == "interrupted" and summary["steps"] == stop
        assert summary["epochs"] == stop // STEPS_PER_EPOCH  # the completed epochs
        done = stop
    summary = run_stopping_after(None, tmp_path, f"trainer.resume_from={tmp_path}")
    assert summary["status"] == "completed" and summary["steps"] == 6 * STEPS_PER_EPOCH
    assert summary["resumed_from"]["step"] == stops[-1]
    assert_same(outcome(tmp_path), reference)


def test_best_checkpoint_holds_the_epoch_with_the_lowest_validation_loss(tmp_path):
    summary = run_stopping_after(None, tmp_path, "optimizer.lr=0.05", "trainer.epochs=8")
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    best_row = min(rows, key=lambda r: float(r["val_loss"]))
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == int(best_row["epoch"]) == summary["best_epoch"]
    model, cfg = load_model(tmp_path / "checkpoints" / "best.pt")
    from aecli.training.loop import evaluate

    data = __import__("hydra.utils", fromlist=["instantiate"]).instantiate(cfg.dataset).build()
    assert sum(evaluate(model, data.val).values()) == pytest.approx(float(best_row["val_loss"]), rel=1e-6)


CLI_ARGS = [
    "dataset.n=200",
    "trainer.epochs=120",
    "trainer.checkpoint_every=1",
    "trainer.log_steps=true",
    "plots.enabled=false",
]


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory) -> Path:
    """CLI_ARGS run to the end without a stop (in-process: the same numbers as the command, less start-up)."""
    run_dir = tmp_path_factory.mktemp("cli_reference")
    assert run(compose(["trainer.progress=false", *CLI_ARGS]), run_dir).status == "completed"
    return run_dir


def assert_same_as(run_dir: Path, reference: Path) -> None:
    a = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(reference / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    losses = lambda d: [r[:3] for r in csv.reader(open(d / "metrics.csv"))]  # noqa: E731  (not the seconds)
    assert losses(run_dir) == losses(reference)
    assert (run_dir / "steps.csv").read_text() == (reference / "steps.csv").read_text()


def start_and_wait_for_rows(cmd: list[str], metrics: Path, cwd: Path) -> subprocess.Popen:
    """Start `aecli ...` and return once it has written a metrics row beyond those already there."""
    before = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "aecli", *cmd], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) <= max(before, 2)):
        time.sleep(0.01)
    return proc


def test_resume_from_the_command_line_after_sigterm_matches_an_uninterrupted_run(tmp_path, cli_reference):
    run_dir = tmp_path / "run"
    proc = start_and_wait_for_rows([*CLI_ARGS, f"hydra.run.dir={run_dir}"], run_dir / "metrics.csv", tmp_path)
    proc.send_signal(signal.SIGTERM)  # what SLURM sends before it preempts a job
    assert proc.wait(timeout=60) == 130
    stopped = read_summary(run_dir)
    assert stopped["status"] == "interrupted" and 0 < stopped["steps"] < 120 * 6

    run_cli(f"resume={run_dir}", cwd=tmp_path)  # in the same folder, with its own config
    assert read_summary(run_dir)["status"] == "completed"
    assert (run_dir / ".hydra" / "resume" / "overrides.yaml").is_file()  # the original record is kept
    assert "trainer.epochs=120" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert_same_as(run_dir, cli_reference)


def test_kill_9_at_random_moments_never_loses_the_checkpoint_and_resume_still_matches(tmp_path, cli_reference):
    """SIGKILL gives no chance to clean up: wherever it lands (a checkpoint is written every epoch,
    so often inside a write), last.pt must load, agree with itself, and resume to the same weights."""
    run_dir = tmp_path / "run"
    for i, delay in enumerate((0.05, 0.3)):
        cmd = [*CLI_ARGS, f"hydra.run.dir={run_dir}"] if i == 0 else [f"resume={run_dir}"]
        proc = start_and_wait_for_rows(cmd, run_dir / "metrics.csv", tmp_path)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # complete, whatever happened
        assert ckpt["train_state"]["epoch"] == ckpt["epoch"] == len(ckpt["metrics"]) - 1
    run_cli(f"resume={run_dir}", cwd=tmp_path)
    assert_same_as(run_dir, cli_reference)


def test_kill_9_in_the_middle_of_a_checkpoint_write_leaves_the_previous_one(tmp_path):
    target = tmp_path / "last.pt"
    atomic_write(
        target, lambda f: torch.save({"model": {"w": torch.ones(3)}, "config_yaml": "", "epoch": 1, "metrics": []}, f)
    )
    writer = (
        f"import time, torch; from pathlib import Path; from aecli.run_files import atomic_write\n"
        f"def half(f):\n    f.write(b'PK' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        f"atomic_write(Path({str(target)!r}), half)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"  # the new file is half written right now
    proc.kill()
    proc.wait()
    assert torch.equal(load_checkpoint(target)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the torn temp file, never renamed


class NotATensor:
    def __reduce__(self):  # what a malicious checkpoint would do on unpickling
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled-object", "not-a-dict", "empty"])
def test_tampered_checkpoints_give_one_sentence_and_unpickle_nothing(tmp_path, damage, run_in_process):
    _, run_dir = run_in_process("dataset.n=200", "trainer.epochs=1")
    path = tmp_path / f"{damage}.pt"
    good = (run_dir / "checkpoints" / "last.pt").read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(2048))
    elif damage == "pickled-object":
        torch.save({"model": NotATensor(), "config_yaml": "", "epoch": 0, "metrics": []}, path)
    elif damage == "not-a-dict":
        torch.save([torch.ones(2)], path)
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert len(str(err.value).splitlines()) == 1 and str(path) in str(err.value)
    proc = (
        run_cli(
            "dataset.n=200",
            "trainer.epochs=2",
            f"trainer.resume_from={path}",
            f"hydra.run.dir={tmp_path / 'run'}",
            cwd=tmp_path,
            check=False,
        )
        if damage == "truncated"
        else None
    )
    if proc is not None:  # the same through the command line: exit 2, one line, no traceback
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "not a readable aecli checkpoint" in proc.stderr


def test_resume_refuses_other_settings_and_a_diverged_run(tmp_path, run_in_process):
    summary, run_dir = run_in_process(
        "dataset.n=200", "trainer.epochs=3", "optimizer=sgd", "optimizer.lr=50", "model=mlp"
    )
    assert summary["status"] == "diverged" and 1 <= summary["diverged_at_step"] <= 6  # inside epoch 1
    with pytest.raises(ConfigError, match="diverged"):
        resumed_config(str(run_dir), [])
    summary, run_dir = run_in_process("dataset.n=200", "trainer.epochs=2")
    with pytest.raises(ConfigError, match="model.latent_dim cannot change"):
        resumed_config(str(run_dir), ["model.latent_dim=5"])
    with pytest.raises(ConfigError, match="already completed its 2 epochs; add trainer.epochs=N with N > 2"):
        resumed_config(str(run_dir), [])
    cfg = resumed_config(str(run_dir), ["trainer.epochs=4"])  # training further is allowed
    assert cfg.trainer.epochs == 4 and cfg.trainer.resume_from.endswith("last.pt")
    longer = run(cfg, run_dir).as_dict()
    assert longer["status"] == "completed" and longer["epochs"] == 4 and longer["resumed_from"]["epoch"] == 2
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]


def test_resume_from_a_diverged_run_with_a_lower_lr_uses_the_configured_lr(tmp_path, run_in_process, caplog):
    """What aecli's own divergence message advises: trainer.resume_from=<that run> with a lower lr.
    The configured optimizer settings replace the checkpoint's, and the log says so."""
    bad = ["dataset.n=200", "trainer.epochs=3", "trainer.checkpoint_every=1", "optimizer=sgd", "model=mlp"]
    summary, diverged = run_in_process(*bad, "optimizer.lr=5")
    assert summary["status"] == "diverged" and summary["epochs"] >= 0
    ckpt = load_checkpoint(diverged / "checkpoints" / "last.pt")
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 5.0
    caplog.set_level("INFO", logger="aecli")
    resume = f"trainer.resume_from={diverged}"
    summary, run_dir = run_in_process(*bad, "optimizer.lr=1e-3", "trainer.epochs=6", resume)
    assert summary["status"] == "completed" and summary["final_val_loss"] < 10
    assert "optimizer settings replace the checkpoint's (lr 5.0 -> 0.001)" in caplog.text
    resumed = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert resumed["optimizer"]["param_groups"][0]["lr"] == 1e-3


def test_resume_from_a_run_of_another_optimizer_is_one_sentence(tmp_path, run_in_process):
    _, adam_run = run_in_process("dataset.n=200", "trainer.epochs=1")
    with pytest.raises(ConfigError) as err:
        run_in_process("dataset.n=200", "trainer.epochs=2", "optimizer=sgd", f"trainer.resume_from={adam_run}")
    assert "was trained with optimizer=adam" in str(err.value) and "resume with optimizer=adam" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
