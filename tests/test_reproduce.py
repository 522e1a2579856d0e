"""aecli-reproduce: the verdict logic on synthetic run folders, the folder it refuses, Ctrl-C, and
the whole --fast reproduction end to end (every experiment as a real smoke run, then the reports
and their links, and every claim's metric found in the summaries the runs wrote)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import REPO

from aecli import reproduce
from aecli.errors import ConfigError
from aecli.reproduce import CLAIMS, EXPERIMENTS, Claim, Ratio, Read, Tolerance

EXPERIMENT_NAMES = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aecli.reproduce", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


# ------------------------------------------------------------------ synthetic run folders
def write_run(
    folder: Path, metrics: dict, status: str = "completed", overrides: tuple[str, ...] = (), **fields
) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"status": status, "metrics": metrics, **fields}))
    if overrides:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def write_manifest(out: Path, statuses: dict[str, str], fast: bool = False) -> None:
    experiments = {name: {"status": statuses.get(name, "not run")} for name in EXPERIMENTS}
    (out / "reproduction.json").write_text(json.dumps({"fast": fast, "overrides": [], "experiments": experiments}))


def test_verdicts_on_synthetic_summaries(tmp_path, monkeypatch):
    """Within the tolerance ✓, outside ✗, a missing metric "no number", no study number "figure only",
    a direction claim checked on a ratio of two sweep jobs, and a failed / unrun experiment."""
    write_run(tmp_path / "swiss_roll", {"rmse": 0.075, "other": 0.2})
    write_run(tmp_path / "rectangle_capacity" / "0", {"share": 0.1}, overrides=("experiment=x", "model=pca"))
    write_run(tmp_path / "rectangle_capacity" / "1", {"share": 0.5}, overrides=("experiment=x", "model=big"))
    write_run(tmp_path / "beta_curves", {}, status="failed", error="boom")
    write_manifest(tmp_path, {"swiss_roll": "completed", "rectangle_capacity": "completed", "beta_curves": "failed"})
    rel = Tolerance("relative", 0.2, "why")
    claims = (
        Claim("swiss_roll", "within", Read("rmse"), 0.066, rel),  # 0.075 is 13.6% above 0.066
        Claim("swiss_roll", "outside", Read("other"), 0.066, rel),
        Claim("swiss_roll", "absolute", Read("rmse"), 0.07, Tolerance("absolute", 0.001, "why")),
        Claim("swiss_roll", "missing", Read("no_such_metric"), 0.066, rel),
        Claim("swiss_roll", "figure", Read("rmse")),
        Claim(
            "rectangle_capacity",
            "ratio",
            Ratio(Read("share", {"model": "big"}), Read("share", {"model": "pca"})),
            "bigger covers more",
            Tolerance("above", 4.0, "why"),
        ),  # fmt: skip
        Claim(
            "rectangle_capacity",
            "ratio too small",
            Ratio(Read("share", {"model": "big"}), Read("share", {"model": "pca"})),
            "bigger covers more",
            Tolerance("above", 6.0, "why"),
        ),  # fmt: skip
        Claim(
            "rectangle_capacity",
            "near a target",
            Read("share", {"model": "pca"}),
            "about a tenth",
            Tolerance("relative", 0.05, "why", target=0.1),
        ),  # fmt: skip
        Claim("beta_curves", "failed", Read("x"), 1.0, rel),
        Claim("mnist_wide", "never ran", Read("x"), 1.0, rel),
        Claim("swiss_roll", "across experiments", Ratio(Read("rmse"), Read("x", experiment="mnist_wide")), "w", rel),
    )
    monkeypatch.setattr(reproduce, "CLAIMS", claims)
    _, table = reproduce.rows(tmp_path)
    got = {row["claim"]: (row["verdict"], row["ours"]) for row in table}
    assert got == {
        "within": ("✓ reproduced", "0.075"),
        "outside": ("✗ not reproduced", "0.2"),
        "absolute": ("✗ not reproduced", "0.075"),
        "missing": ("no number", ""),
        "figure": ("figure only", "0.075"),
        "ratio": ("✓ reproduced", "5 (0.5 / 0.1)"),
        "ratio too small": ("✗ not reproduced", "5 (0.5 / 0.1)"),
        "near a target": ("✓ reproduced", "0.1"),
        "failed": ("failed", ""),
        "never ran": ("not run in this reproduction", ""),
        "across experiments": ("not run in this reproduction", ""),
    }
    write_manifest(tmp_path, {"swiss_roll": "completed", "beta_curves": "failed"}, fast=True)
    _, table = reproduce.rows(tmp_path)
    assert [row["verdict"] for row in table][:2] == ["ran", "ran"]  # a smoke run: no numbers, no ✓
    assert all(row["ours"] == "" for row in table)


def test_tolerance_edges():
    assert Tolerance("relative", 0.1, "").accepts(1.1, 1.0) and not Tolerance("relative", 0.1, "").accepts(1.1001, 1.0)
    assert Tolerance("relative", 0.1, "").accepts(-1.05, -1.0)  # a negative reference: the spread is |reference| * 10%
    assert not Tolerance("above", 1.0, "").accepts(1.0, None) and Tolerance("below", 1.0, "").accepts(0.99, None)
    assert not Tolerance("relative", 0.1, "").accepts(1.0, None)  # nothing to compare with: never ✓


def test_a_sweep_job_must_be_named_exactly(tmp_path):
    """A Read whose overrides match two jobs reads nothing, rather than whichever job came first."""
    write_run(tmp_path / "nonlinear_2d" / "0", {"m": 1.0}, overrides=("dataset=spiral", "model=relu"))
    write_run(tmp_path / "nonlinear_2d" / "1", {"m": 2.0}, overrides=("dataset=polynomial", "model=relu"))
    assert reproduce.read_value(Read("m", {"model": "relu"}), tmp_path, "nonlinear_2d") is None
    assert reproduce.read_value(Read("m", {"model": "relu", "dataset": "polynomial"}), tmp_path, "nonlinear_2d") == 2.0


def test_claims_cover_every_experiment():
    assert sorted(EXPERIMENTS) == EXPERIMENT_NAMES
    assert {c.experiment for c in CLAIMS} == set(EXPERIMENTS)
    for claim in CLAIMS:  # a number or words to check against needs a tolerance, and only then
        assert (claim.study is None) == (claim.tolerance is None), claim.text
        assert claim.tolerance is None or claim.tolerance.why, claim.text


def test_readme_table_is_generated_from_these_claims():
    """README's table came from `--readme-table` with the claims as they are: a claim or tolerance
    changed here and not regenerated there fails."""
    from aecli.docs import read_block

    block = read_block((REPO / "README.md").read_text(), "reproduction")
    assert "<!-- reproduction table: generated by `python -m aecli.reproduce --readme-table DIR`" in block
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    expected = reproduce.claims_markdown([], readme=True)
    assert len(rows) == len(CLAIMS)
    for row, claim in zip(rows, CLAIMS):
        cells = row.split(" | ")
        assert cells[0] == f"| `{claim.experiment}`" and cells[1] == reproduce.cell(claim.text), row
        assert cells[4] == ("" if claim.tolerance is None else claim.tolerance.text()), row
    assert expected[0] in block  # the same header


def test_study_pages_hold_generated_tables_only():
    """Every study page has a generated block for each of its experiments, and its tables show
    exactly the columns DOC_TABLES names (a hand edit or a stale column list fails)."""
    from aecli.docs import read_block

    for experiment, (page, columns) in reproduce.DOC_TABLES.items():
        block = read_block((REPO / "docs" / "studies" / f"{page}.md").read_text(), f"reproduction:{experiment}")
        assert block.strip().startswith("<!-- generated by `python -m aecli.reproduce --docs DIR`"), experiment
        header = [line for line in block.splitlines() if line.startswith("| run | `")]
        assert header == ["| run | " + " | ".join(f"`{c}`" for c in columns) + " |"] or "not run" in block, experiment


def test_doc_table_of_a_sweep_labels_jobs_by_what_they_vary(tmp_path):
    for i, model in enumerate(("pca", "big")):
        write_run(
            tmp_path / "rectangle_gd_vs_sgd" / str(i),
            {"step_log_loss_change_std": 0.5 * (i + 1)},
            overrides=("experiment=rectangle_gd_vs_sgd", f"variant={model}"),
            steps=10,
            final_val_loss=0.25,
            wall_seconds=1.0,
        )
    write_manifest(tmp_path, {"rectangle_gd_vs_sgd": "completed"})
    lines = reproduce.doc_table(tmp_path, "rectangle_gd_vs_sgd").splitlines()
    assert lines[-2:] == ["| variant=pca | 10 | 0.25 | 0.5 | 1 |", "| variant=big | 10 | 0.25 | 1 | 1 |"]


@pytest.mark.parametrize(
    "log, said",
    [
        ("INFO a\naecli: error: dataset.n=-1 must be positive\n", "aecli: error: dataset.n=-1 must be positive"),
        ("INFO a\nTraceback (most recent call last):\n  File x\nValueError: boom\n", "ValueError: boom"),
        (
            "Could not override 'trainer.nope'.\nKey 'nope' not in 'TrainerConfig'\n\n"
            "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n",
            "Could not override 'trainer.nope'.",
        ),
    ],
)
def test_the_failure_note_is_the_line_that_says_why(tmp_path, log, said):
    (tmp_path / "x.log").write_text("$ python -m aecli experiment=x\n" + log)
    assert reproduce.last_error(tmp_path / "x.log") == said


# ------------------------------------------------------------------ the folder
def test_a_foreign_folder_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    proc = cli("--fast", "--out", str(theirs), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "is not empty and holds no previous reproduction" in proc.stderr
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]  # untouched
    (tmp_path / "a_file").write_text("x")
    proc = cli("--out", str(tmp_path / "a_file"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is a file" in proc.stderr
    proc = cli("--readme-table", str(theirs), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_resume_keeps_what_completed_with_the_same_settings(tmp_path, monkeypatch):
    """--resume reruns only what did not complete; other settings (here --fast) rerun everything. An
    experiment run again keeps its earlier attempt under previous/; without --resume a previous
    reproduction is refused, untouched: nothing finished is ever deleted."""
    ran: list[str] = []

    def fake_run(runner, name, out, fast, overrides):
        ran.append(name)
        assert not (out / name).exists()  # set aside before the rerun: aecli wants a new folder
        write_run(out / name, {}, status="failed" if name == "mnist_wide" else "completed")
        return reproduce.Outcome("failed" if name == "mnist_wide" else "completed", 1.0, 0, "", "cmd")

    monkeypatch.setattr(reproduce, "run_one", fake_run)
    out = tmp_path / "repro"
    assert reproduce.reproduce(out, fast=False, overrides=["a=1"]) == 1  # mnist_wide failed
    assert ran == list(EXPERIMENTS)
    ran.clear()
    assert reproduce.reproduce(out, fast=False, overrides=["a=1"], resume=True) == 1
    assert ran == ["mnist_wide"]
    assert (out / "previous" / "mnist_wide-1" / "summary.json").is_file()  # the failed attempt, kept
    (out / "swiss_roll" / "marker").write_text("old")
    ran.clear()
    assert reproduce.reproduce(out, fast=True, overrides=["a=1"], resume=True) == 1
    assert ran == list(EXPERIMENTS)
    assert (out / "previous" / "swiss_roll-1" / "marker").read_text() == "old"  # the full run's folder, kept
    assert (out / "previous" / "mnist_wide-2").is_dir()
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(ConfigError, match="holds a previous reproduction; continue it with --resume"):
        reproduce.reproduce(out, fast=True, overrides=["a=1"])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_ctrl_c_stops_the_experiment_and_writes_the_partial_report(tmp_path):
    """SIGINT while the first experiment (the full nonlinear_2d sweep) runs: aecli stops it cleanly,
    the report marks it interrupted and the others not run, exit 130, within seconds."""
    out = tmp_path / "repro"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aecli.reproduce", "--out", str(out), "trainer.num_threads=1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "nonlinear_2d" / "0" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - stopped < 30
    manifest = json.loads((out / "reproduction.json").read_text())
    statuses = {name: record["status"] for name, record in manifest["experiments"].items()}
    assert statuses == {name: "interrupted" if name == "nonlinear_2d" else "not run" for name in EXPERIMENTS}
    text = (out / "reproduction.md").read_text()
    assert text.count("| not run in this reproduction |") == len(CLAIMS)
    assert json.loads((out / "nonlinear_2d" / "0" / "summary.json").read_text())["status"] == "interrupted"


# ------------------------------------------------------------------ end to end
def test_fast_reproduction_end_to_end(tmp_path, tiny_mnist):
    """`aecli-reproduce --fast`: every experiment a real smoke run (sweeps with all their jobs), a
    row per claim with "ran", links that resolve, and every metric a claim reads present in the
    summary.json of the job it names. An extra override reaches every aecli command."""
    folder, _ = tiny_mnist
    out = tmp_path / "repro"
    start = time.perf_counter()
    proc = cli("--fast", "--out", str(out), "trainer.num_threads=1", cwd=tmp_path, env={"AECLI_MNIST_DIR": str(folder)})
    print(f"\n[reproduce --fast] {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "reproduction.json").read_text())
    assert {n: r["status"] for n, r in manifest["experiments"].items()} == {n: "completed" for n in EXPERIMENTS}
    assert all("trainer.num_threads=1" in r["command"] for r in manifest["experiments"].values())
    text, page = (out / "reproduction.md").read_text(), (out / "index.html").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| [`")]
    assert len(rows) == len(CLAIMS) and all(row.endswith("| ran |") for row in rows)
    assert page.count("<td class='ok'>ran</td>") == len(CLAIMS)
    targets = re.findall(r"\]\(([^)#]+)\)", text) + re.findall(r"(?:href|src)='([^'#]+)'", page)
    assert len(targets) > 3 * len(EXPERIMENTS)
    assert all((out / unquote(t)).is_file() for t in targets), [t for t in targets if not (out / unquote(t)).is_file()]
    assert {t.split("/")[0] for t in targets if t.endswith(".png")} == set(EXPERIMENTS)  # every experiment's figures
    for claim in CLAIMS:
        reads = [claim.ours] if isinstance(claim.ours, Read) else [claim.ours.top, claim.ours.bottom]
        for read in reads:
            summary = reproduce.find_summary(read, out, claim.experiment)
            assert summary is not None, f"{claim.text}: no run for {read.label()}"
            assert read.metric in summary or read.metric in summary.get("metrics", {}), f"{claim.text}: {read.metric}"
