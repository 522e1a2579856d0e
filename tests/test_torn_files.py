"""Torn, corrupt and hostile files in run and sweep folders: every reader drops or flags what it
cannot read, with one sentence, and goes on; the sweep report still reports every other job.

One real 3-job sweep (2 epochs, 200 points, steps logged) is built per module; each test damages
a copy of it the way a crash, a full disk or a hostile user would."""

from __future__ import annotations

import csv
import html
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_summary, run_cli
from omegaconf import OmegaConf

import aecli
from aecli.reporting.report import build_report

SWEEP_ARGS = [
    "model=linear,tanh,relu",
    "trainer.epochs=2",
    "dataset.n=200",  # 170 training points, batch 32: 6 steps per epoch
    "trainer.log_steps=true",
    "plots.error_map_resolution=30",
    "hydra/job_logging=disabled",
]
STEPS_PER_EPOCH = 6


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torn")
    run_cli("-m", *SWEEP_ARGS, f"hydra.sweep.dir={root / 's'}", cwd=root)
    return root / "s"


@pytest.fixture
def copy(sweep, tmp_path) -> Path:
    """A fresh copy of the sweep to damage, without its report files."""
    target = tmp_path / "sweep"
    shutil.copytree(sweep, target)
    for name in ["summary.csv", "summary.md", "index.html", *(p.name for p in target.glob("comparison_*"))]:
        (target / name).unlink()
    return target


def tear_last_line(path: Path, keep: int) -> str:
    """Cut the last line to its first `keep` characters, as a kill in the middle of an append does."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:keep])
    return lines[-1]


def rows(sweep: Path) -> dict[str, dict[str, str]]:
    return {r["job"]: r for r in csv.DictReader(open(sweep / "summary.csv"))}


def assert_good_jobs_reported(sweep: Path, bad: str) -> None:
    """Every job but `bad` is in summary.csv as completed, with its own numbers, and so in summary.md."""
    table, md = rows(sweep), (sweep / "summary.md").read_text()
    assert len(table) == 3
    for job in {"0", "1", "2"} - {bad}:
        assert table[job]["status"] == "completed"
        assert float(table[job]["final_val_loss"]) == read_summary(sweep / job)["final_val_loss"]
        assert f"| {job} " in md or f"**{job} best**" in md


def aecli_report(sweep: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("aecli-report")
    proc = subprocess.run([str(script), str(sweep)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


# --------------------------------------------------------------- torn CSV rows
def test_torn_last_rows_of_metrics_and_steps_are_left_out_with_a_warning(copy, caplog):
    job = copy / "0"
    n_epochs = len((job / "metrics.csv").read_text().splitlines()) - 1  # epoch 0 included
    tear_last_line(job / "metrics.csv", 2)  # "2,"
    tear_last_line(job / "steps.csv", 2)  # "12"

    proc = aecli_report(copy)
    assert f"metrics.csv: line {n_epochs + 1} is left out" in proc.stderr
    md = (copy / "summary.md").read_text()
    assert f"job 0: metrics.csv: dropped 1 unreadable row (line {n_epochs + 1}: cut short with no line end)" in md
    assert f"job 0: steps.csv: dropped 1 unreadable row (line {2 * STEPS_PER_EPOCH + 1}: cut short" in md
    assert "metrics.csv: dropped 1 unreadable row" in (copy / "index.html").read_text()
    assert_good_jobs_reported(copy, bad="")  # the job's summary is fine: it stays completed
    assert (copy / "comparison_loss_curves.png").is_file() and (copy / "comparison_step_losses.png").is_file()

    assert all(j.ok for j in aecli.load_sweep(copy))
    with caplog.at_level(logging.WARNING, logger="aecli"):
        metrics = aecli.load_run(job).metrics
    assert metrics.rows == n_epochs - 1 and list(metrics["epoch"]) == list(range(n_epochs - 1))
    assert metrics.problem is not None and f"line {n_epochs + 1}" in metrics.problem
    assert f"{job / 'metrics.csv'}: line {n_epochs + 1} is left out" in caplog.text


def test_step_loss_variability_counts_only_the_complete_steps(copy):
    from aecli.analyses import RunContext
    from aecli.analyses.rectangle import step_loss_variability

    job = copy / "1"
    tear_last_line(job / "steps.csv", 6)  # "12,2,0" of "12,2,0.0413...": a number, but cut short
    cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    no = None  # what this analysis does not read: the models and the data
    ctx = RunContext(cfg, no, no, no, no, [], torch.device("cpu"), torch.float32, job, "torn", 50)  # type: ignore[arg-type]
    metrics = step_loss_variability(ctx)
    assert metrics["steps_logged"] == 2 * STEPS_PER_EPOCH - 1


def test_resume_from_a_torn_steps_csv_keeps_its_steps_consecutive(sweep, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(sweep / "1", run_dir)
    tear_last_line(run_dir / "steps.csv", 7)  # "12,2,0." : the loss cut short, no line end
    proc = run_cli(f"resume={run_dir}", "trainer.epochs=3", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "steps.csv: line 13 is left out: cut short with no line end" in output
    assert read_summary(run_dir)["status"] == "completed"
    lines = (run_dir / "steps.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,loss" and all(len(line.split(",")) == 3 for line in lines)
    table = [(int(s), int(e)) for s, e, _ in (line.split(",") for line in lines[1:])]
    # the torn step of epoch 2 is gone; epoch 3's steps follow the kept ones without a gap
    assert [s for s, _ in table] == list(range(1, 3 * STEPS_PER_EPOCH))
    assert [e for _, e in table] == [1] * 6 + [2] * 5 + [3] * 6


def test_restored_steps_stop_at_a_gap_and_at_the_checkpoint_epoch(tmp_path, caplog):
    from aecli.run_files import RunFiles
    from aecli.training.state import EpochRecord

    source = tmp_path / "source"
    source.mkdir()
    steps = ["1,1,0.5", "2,1,0.4", "3,1,garbled", "4,1,0.3", "5,2,0.2", "6,2,0.1"]
    (source / "steps.csv").write_text("step,epoch,loss\n" + "\n".join(steps) + "\n")
    history = [EpochRecord(e, 1.0, 1.0, 0.1, 0.0) for e in range(3)]
    with caplog.at_level(logging.WARNING, logger="aecli"):
        files = RunFiles(tmp_path / "run", "x: 1\n", history, steps_from=source)
    files.append_step_losses(3, torch.tensor([0.05], dtype=torch.float64))
    files.close()
    assert (tmp_path / "run" / "steps.csv").read_text() == "step,epoch,loss\n1,1,0.5\n2,1,0.4\n3,3,0.05\n"
    assert "line 4 is left out: loss='garbled' is not a number" in caplog.text
    assert "line 5 and the rows after it are left out" in caplog.text

    (source / "steps.csv").write_text("step,epoch,loss\n1,1,0.5\n2,2,0.4\n3,3,0.3\n")  # rows after the checkpoint
    files = RunFiles(tmp_path / "run2", "x: 1\n", history[:2], steps_from=source)
    files.close()
    assert (tmp_path / "run2" / "steps.csv").read_text() == "step,epoch,loss\n1,1,0.5\n"


# ---------------------------------------------------------- corrupt and hostile job files
def alias_bomb(top: str) -> str:
    """A few hundred bytes that expand to 6^6 values: small here, gigabytes with a few more lines."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 6)}]" for i in range(1, 6)]
    return "\n".join(lines) + "\n" if top == "mapping" else "\n".join(f"- {line}" for line in lines) + "\n"


SUMMARY_CASES = {
    "truncated": (lambda text: text[: len(text) // 2], r"summary.json: not valid JSON (line "),
    "a list": (lambda text: "[1, 2]", "summary.json: holds a list, not a JSON object"),
    "huge": (lambda text: json.dumps({"status": "completed", "pad": "x" * 1_100_000}), "larger than 1 MiB"),
    "deep": (lambda text: "[" * 100_000, "summary.json: not valid JSON (RecursionError)"),
    "not text": (lambda text: "\udcff\udcfe", "summary.json: not UTF-8 text"),
    "bad metrics": (lambda text: '{"status": "completed", "metrics": [1]}', "its metrics are not a JSON object"),
}
YAML_CASES = {
    "overrides invalid": (
        "overrides.yaml",
        "- model=tanh\n- [a\n",
        ".hydra/overrides.yaml holds text that is not valid YAML (line 3)",
    ),
    "overrides mapping": (
        "overrides.yaml",
        "model: tanh\n",
        ".hydra/overrides.yaml holds a YAML mapping, not a list of overrides",
    ),
    "overrides bomb": ("overrides.yaml", alias_bomb("list"), ".hydra/overrides.yaml uses the YAML anchor &a0"),
    "overrides huge": ("overrides.yaml", "- model=tanh\n" + "# pad\n" * 200_000, "larger than 1 MiB"),
    "overrides deep": ("overrides.yaml", "[" * 5000, ".hydra/overrides.yaml nests its YAML more than 32 levels deep"),
    "config list": ("config.yaml", "- a\n- b\n", ".hydra/config.yaml holds a YAML list, not a mapping of settings"),
    "config bomb": ("config.yaml", alias_bomb("mapping"), ".hydra/config.yaml uses the YAML anchor &a0"),
    "config tag": (
        "config.yaml",
        "a: !!python/object/apply:os.system [x]\n",
        ".hydra/config.yaml holds a YAML tag aecli never writes (tag:yaml.org,2002:python/object/apply:os.system)",
    ),
}


def assert_unreadable(sweep: Path, job: str, reason: str) -> None:
    """The job is listed as unreadable with `reason` in every report file and by load_sweep; the others as they were."""
    status = rows(sweep)[job]["status"]
    assert status.startswith("unreadable: ") and reason in status, status
    assert reason in (sweep / "summary.md").read_text()
    assert html.escape(reason) in (sweep / "index.html").read_text()
    assert_good_jobs_reported(sweep, bad=job)
    listed = aecli.load_sweep(sweep)
    assert [j.ok for j in listed] == [job != "0", job != "1", job != "2"]
    assert listed[int(job)].problem is not None and reason in listed[int(job)].problem


@pytest.mark.parametrize("case", SUMMARY_CASES)
def test_a_corrupt_summary_json_makes_only_its_job_unreadable(copy, case):
    damage, reason = SUMMARY_CASES[case]
    path = copy / "1" / "summary.json"
    path.write_bytes(damage(path.read_text()).encode("utf-8", "surrogateescape"))
    result = build_report(copy, figures=())
    assert result["statuses"] == {"completed": 2, "unreadable": 1}
    assert_unreadable(copy, "1", reason)


def test_nan_and_infinity_in_a_summary_read_as_null(copy):
    path = copy / "1" / "summary.json"
    summary = read_summary(copy / "1")
    text = json.dumps({**summary, "final_val_loss": float("nan"), "metrics": {"score": float("inf")}})
    path.write_text(text)
    assert "NaN" in text and "Infinity" in text
    build_report(copy, figures=(), sort_by="score")
    table = rows(copy)
    assert table["1"]["status"] == "completed" and table["1"]["final_val_loss"] == table["1"]["score"] == ""
    assert table["1"]["best"] == "" and "| nan |" not in (copy / "summary.md").read_text().lower()
    assert aecli.load_sweep(copy)[1].summary["final_val_loss"] is None


@pytest.mark.parametrize("case", YAML_CASES)
def test_a_hostile_hydra_file_makes_only_its_job_unreadable(copy, case):
    name, text, reason = YAML_CASES[case]
    (copy / "1" / ".hydra" / name).write_text(text)
    start = time.perf_counter()
    build_report(copy, figures=())
    assert time.perf_counter() - start < 10  # nothing was expanded
    assert_unreadable(copy, "1", reason)
    assert "summary.json says completed" in rows(copy)["1"]["status"]


def test_a_truncated_png_gets_a_placeholder_tile_and_a_note(copy):
    figure = copy / "0" / "latent.png"
    figure.write_bytes(figure.read_bytes()[:300])
    result = build_report(copy, figures=("latent.png",))
    assert "comparison_latent.png" in result["files"] and (copy / "comparison_latent.png").is_file()
    assert result["statuses"] == {"completed": 3}  # only a figure is bad: the job keeps its status
    assert "- job 0: latent.png: could not read it (" in (copy / "summary.md").read_text()
    assert "latent.png: could not read it" in (copy / "index.html").read_text()
    grid = np.asarray(__import__("matplotlib.image", fromlist=["imread"]).imread(copy / "comparison_latent.png"))
    assert grid.std() > 0.01


# -------------------------------------------------------------------- writes
def test_report_files_replace_links_planted_in_the_sweep_folder(copy, tmp_path):
    names = ["summary.md", "summary.csv", "index.html", "comparison_loss_curves.png"]
    for name in names:
        (tmp_path / f"victim-{name}").write_text("precious\n")
        (copy / name).symlink_to(tmp_path / f"victim-{name}")
    build_report(copy, figures=())
    for name in names:
        assert (tmp_path / f"victim-{name}").read_text() == "precious\n"
        assert not (copy / name).is_symlink() and (copy / name).stat().st_size > 100
    assert "| 0 " in (copy / "summary.md").read_text() or "**0 best**" in (copy / "summary.md").read_text()


def test_aecli_report_reports_every_damage_at_once_and_exits_0(copy, tmp_path):
    tear_last_line(copy / "0" / "metrics.csv", 3)
    (copy / "0" / "error_map.npz").write_bytes(b"PK\x03\x04")  # the error map's data, torn
    (copy / "1" / "summary.json").write_text('{"status": "completed",\n "final_val_loss": 0.1,\n')
    (copy / "2" / ".hydra" / "config.yaml").write_text(alias_bomb("mapping"))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = aecli_report(copy)
    assert "3 jobs (1 completed, 2 unreadable)" in proc.stdout or "3 jobs (2 unreadable, 1 completed)" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written outside the sweep folder
    table = rows(copy)
    assert table["1"]["status"] == "unreadable: summary.json: not valid JSON (line 3)"
    assert table["2"]["status"].startswith("unreadable: .hydra/config.yaml uses the YAML anchor")
    assert table["0"]["status"] == "completed" and table["0"]["best"] == "yes"
    md = (copy / "summary.md").read_text()
    assert "job 0: metrics.csv: dropped 1 unreadable row" in md and "job 0: error_map.npz: could not read it" in md
