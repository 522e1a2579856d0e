"""Bounded: what a file declares is held to a memory budget before it is allocated, special files are
refused wherever aecli reads or appends, every field of a checkpoint to resume from is checked against
the run, and launcher settings that start processes are capped at the cores (issue 25).

Each hostile file is built for real; memory is measured in a child process (its peak RSS), so a
refusal that comes after the allocation fails the test."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import aecli
from aecli.errors import ConfigError, first_sentence
from aecli.folders import NotRegularFile, open_append, open_regular
from aecli.memory import BUDGET_ENV, DEFAULT_BUDGET, file_budget, parse_size
from aecli.run_files import CheckpointError, load_checkpoint, load_model
from tests.conftest import run_cli

MIB = 1 << 20
QUICK = ("trainer.epochs=1", "dataset.n=200", "plots.enabled=false", "trainer.progress=false")


def one_sentence(err: BaseException | str) -> str:
    text = str(err)
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    return text


def peak_rss_mib(code: str, env: dict | None = None) -> tuple[float, str]:
    """Run `code` in a fresh interpreter that has imported aecli's data readers; (its peak RSS in MiB
    above the imports, what it printed)."""
    script = (
        "import resource, sys\nimport aecli.data.files, aecli.data.mnist_files, aecli.run_files\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"{code}\n"
        "print('PEAK', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = float(proc.stdout.split("PEAK")[-1])
    return peak, proc.stdout


def refused_in_child(call: str) -> str:
    """A statement for peak_rss_mib that must raise ConfigError; prints its message."""
    refused = "except aecli.errors.ConfigError as err:\n    print('REFUSED', err)"
    return f"try:\n    {call}\n    print('NOT REFUSED')\n{refused}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run of 2 epochs with checkpoints every epoch."""
    from aecli.config import compose
    from aecli.pipeline import run

    run_dir = tmp_path_factory.mktemp("bounds") / "run"
    run_dir.mkdir()
    run(compose([*QUICK, "trainer.epochs=2", "trainer.checkpoint_every=1"]), run_dir)
    return run_dir


# ------------------------------------------------------------------ the budget itself
def test_the_budget_is_4_gib_by_default_and_set_by_its_environment_variable(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert file_budget() == min(DEFAULT_BUDGET, file_budget()) and DEFAULT_BUDGET == 4 * 2**30
    assert [parse_size(t) for t in ("16G", "16GiB", "500m", "2.5G", "1000")] == [
        16 * 2**30,
        16 * 2**30,
        500 * 2**20,
        int(2.5 * 2**30),
        1000,
    ]
    monkeypatch.setenv(BUDGET_ENV, "10M")
    assert file_budget() == 10 * MIB
    for bad in ("lots", "-1G", "0", "1e400"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ConfigError, match=BUDGET_ENV):
            file_budget()


# ------------------------------------------------------------------ data files
def test_an_idx_header_declaring_a_million_images_is_refused_before_anything_is_read(tmp_path):
    """1 MB of gzip declaring 1.37 M images (1 GiB of pixels, 34 GiB as aecli would hold them) took 8 GiB."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    count = 1_370_000
    with gzip.open(path, "wb") as f:  # the header, then a megabyte of the zeros it promises
        f.write(struct.pack(">4I", 2051, count, 28, 28) + bytes(MIB))
    with open(path, "r+b") as f:  # the trailer's size (mod 2**32) as an honest file's would be
        f.seek(-4, os.SEEK_END)
        f.write(struct.pack("<I", (16 + count * 784) % 2**32))
    call = f"aecli.data.mnist_files.read_idx(__import__('pathlib').Path({str(path)!r}), 2051)"
    peak, out = peak_rss_mib(refused_in_child(call))
    assert "REFUSED" in out and "declaring 1370000 items" in out and "AECLI_MEMORY_BUDGET" in out, out
    assert peak < 100, peak


def test_a_sparse_csv_without_a_line_end_is_refused_after_one_bounded_line(tmp_path):
    """A 1 GB sparse CSV with no newline cost 2.4 GB of RSS: the delimiter sniffer read its whole first line."""
    path = tmp_path / "sparse.csv"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # a hole: no disk used, a gigabyte of NUL bytes to read
    code = refused_in_child(f"aecli.data.files.read_csv(__import__('pathlib').Path({str(path)!r}), None)")
    peak, out = peak_rss_mib(code)
    assert "REFUSED" in out and "line 1 is longer than 16 Mi characters" in out, out
    assert peak < 250, peak


def test_csv_rows_are_held_to_the_budget_as_they_are_read(tmp_path, monkeypatch):
    path = tmp_path / "many.csv"
    path.write_text("x,y\n" + "1,2\n" * 100_000)
    monkeypatch.setenv(BUDGET_ENV, "1M")  # 100,000 rows of 2 values: 6.4 MB as aecli holds them
    from aecli.data.files import read_csv

    with pytest.raises(ConfigError, match=r"many.csv up to line \d+ would take about .* AECLI_MEMORY_BUDGET"):
        read_csv(path, None)
    monkeypatch.setenv(BUDGET_ENV, "1G")
    assert read_csv(path, None).values.shape == (100_000, 2)


def test_an_npz_that_inflates_beyond_the_budget_is_refused_before_inflating(tmp_path, monkeypatch):
    """A 778 KB .npz inflated to 6.9 GB and trained (the header check allowed 80% of the machine)."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((2_000_000, 4)))  # 64 MB of zeros in a few hundred KB
    assert path.stat().st_size < MIB
    monkeypatch.setenv(BUDGET_ENV, "16M")
    from aecli.data.files import read_array

    with pytest.raises(ConfigError, match=r"bomb.npz array 'x', 64000128 bytes inflated, would take about"):
        read_array(path, None)
    peak, out = peak_rss_mib(
        refused_in_child(f"aecli.data.files.read_array(__import__('pathlib').Path({str(path)!r}), None)"),
        env={BUDGET_ENV: "16M"},
    )
    assert "REFUSED" in out and peak < 40, (peak, out)


def test_a_value_beyond_float32_names_its_file_and_line_and_is_dropped_on_request(tmp_path):
    """A CSV cell of 1e39 named neither file nor line, and drop_nonfinite did not drop it."""
    rows = "\n".join(f"{i / 10},{(i % 7) / 10}" for i in range(40))
    (tmp_path / "big.csv").write_text("x,y\n" + rows.replace("0.3,0.3", "1e39,0.3", 1) + "\n")
    from aecli.data.files import FileData

    with pytest.raises(ConfigError, match=r"big.csv has 1 row with .*out-of-range.* \(line 5\)"):
        FileData(path=str(tmp_path / "big.csv")).build()
    data = FileData(path=str(tmp_path / "big.csv"), drop_nonfinite=True).build()
    assert len(data.train) + len(data.val) == 39 and torch.isfinite(data.train).all()


# ------------------------------------------------------------------ checkpoints
def test_a_checkpoint_of_stride_0_weights_is_refused_before_the_model_is_built(trained, tmp_path):
    """A 6.9 KB checkpoint whose weights are expand()ed views asked load_run and decoder_from for 40 GB."""
    path = shutil.copy(trained / "checkpoints" / "last.pt", tmp_path / "last.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["encoder.0.weight"] = torch.zeros(1).expand(100_000, 100_000)  # 40 GB claimed, 4 bytes stored
    torch.save(ckpt, path)
    assert Path(path).stat().st_size < 100_000
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert "encoder.0.weight of shape (100000, 100000) claims 40000000000 bytes but stores 4" in one_sentence(err.value)


def test_a_pickled_checkpoint_is_refused_in_a_whole_sentence(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": logging.Formatter()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert one_sentence(err.value).endswith("which only unpickling could load, and aecli never unpickles")


def test_first_sentence_never_cuts_a_word():
    assert first_sentence("Weights only load failed. This file can still be loaded") == "Weights only load failed."
    long = "word " * 60
    assert first_sentence(long).endswith("word...") and len(first_sentence(long)) <= 163


def resume_copy(trained: Path, tmp_path: Path, **train_state) -> Path:
    """A copy of the trained run whose last.pt's training state has `train_state` changes (a key
    "best" changes the best epoch instead)."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    for key in ("best", "metrics"):  # checkpoint-level fields, changed by a function of their value
        if key in train_state:
            ckpt[key] = train_state.pop(key)(ckpt[key])
    ckpt["train_state"].update(train_state)
    torch.save(ckpt, path)
    (run_dir / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    return run_dir


GOOD_STEP = {"batch": 1, "running": torch.zeros(1), "step_losses": torch.zeros(1), "terms": ["reconstruction"]}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"rng_state": torch.zeros(7, dtype=torch.uint8)}, "train_state.rng_state"),
        ({"order_state": torch.zeros(16)}, "train_state.order_state"),
        ({"batch": 10**9, "n_batches": 6}, "train_state.batch"),
        ({**GOOD_STEP, "step_losses": torch.zeros(5)}, "train_state.step_losses"),
        ({**GOOD_STEP, "terms": "garbage"}, "train_state.terms"),
        ({**GOOD_STEP, "running": torch.zeros(3)}, "train_state.running"),
        ({"epoch": 7}, "train_state.epoch"),
        ({"cuda_rng_states": [torch.zeros(2)]}, "train_state.cuda_rng_states"),
        ({"best": lambda best: {k: v for k, v in best.items() if k != "val_loss"}}, "best.val_loss"),
        ({"metrics": lambda rows: rows[:1]}, "metrics"),
    ],
    ids=["rng-size", "order-float", "batch-huge", "step-losses", "terms", "running", "epoch", "cuda", "best", "rows"],
)
def test_every_hostile_training_state_field_is_one_sentence_naming_file_and_field(trained, tmp_path, change, field):
    """Type-valid hostile checkpoint fields each printed a traceback (torch.set_rng_state, a copy, a KeyError)."""
    run_dir = resume_copy(trained, tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        aecli.run([f"resume={run_dir}", "trainer.epochs=3"])
    assert f"{run_dir / 'checkpoints' / 'last.pt'} is not a usable aecli checkpoint: its {field}" in one_sentence(
        err.value
    )


def test_a_best_pt_in_place_of_last_pt_is_one_sentence(trained, tmp_path):
    """Resume from a last.pt replaced by best.pt raised KeyError 'train_state'."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    shutil.copy(run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt")
    (run_dir / "summary.json").write_text(json.dumps({"status": "interrupted"}))
    proc = run_cli(f"resume={run_dir}", "trainer.epochs=3", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "holds no training state to continue from" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ special files
def test_a_fifo_planted_as_aecli_log_is_refused_at_once_and_the_run_is_untouched(trained, tmp_path):
    """A FIFO planted as aecli.log blocked `resume=` forever, holding the lock; the first SIGTERM was swallowed."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    (run_dir / "aecli.log").unlink(missing_ok=True)  # a run made in-process has none: plant one all the same
    os.mkfifo(run_dir / "aecli.log")
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}
    start = time.monotonic()
    proc = run_cli(f"resume={run_dir}", "trainer.epochs=3", cwd=tmp_path, check=False, timeout=60)
    assert proc.returncode == 2 and "aecli.log is a FIFO (named pipe), not a file" in proc.stderr
    assert proc.stderr.count("\n") == 1 and time.monotonic() - start < 30
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_reads_and_appends_refuse_special_files_without_blocking(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    done: list[str] = []

    def attempt() -> None:
        for opener in (open_regular, open_append):
            try:
                opener(path).close()
                done.append("opened")
            except NotRegularFile as err:
                done.append(err.strerror)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "blocked"
    assert all("not a regular file" in d for d in done) and len(done) == 2, done


def test_a_fifo_as_a_checkpoint_or_a_jobs_summary_never_blocks(trained, tmp_path):
    os.mkfifo(tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="is a FIFO"):
        load_checkpoint(tmp_path / "last.pt")
    from aecli.reporting.jobs import read_job

    job = tmp_path / "0"
    job.mkdir()
    os.mkfifo(job / "summary.json")
    assert read_job(job)["summary"]["status"] == "unreadable"


# ------------------------------------------------------------------ processes
def test_launcher_settings_that_start_processes_are_capped_at_the_cores(caplog):
    """hydra.launcher.processes=100 started 99 workers and took a 24 GB machine to 103 MB free."""
    from aecli.hydra_hooks import cap_parallelism
    from aecli.memory import cores

    config = OmegaConf.create({"hydra": {"launcher": {"processes": 100, "figure_workers": None, "n_jobs": 3}}})
    with caplog.at_level(logging.WARNING, logger="aecli"):
        cap_parallelism(config)
    assert config.hydra.launcher.processes == cores() and config.hydra.launcher.figure_workers is None
    assert config.hydra.launcher.n_jobs == min(3, cores())
    assert f"hydra.launcher.processes=100 is more than the {cores()} cores here: {cores()} worker processes start" in (
        caplog.text
    )
