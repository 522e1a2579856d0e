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
from aecli.reproduce import CLAIMS, EXPERIMENTS

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


def test_reports_show_every_claims_values_interval_and_verdict(tmp_path):
    """reproduction.json holds each claim's study, claim, values (one per seed), mean, interval, tolerance
    and verdict; reproduction.md and index.html show the same, the page a strip of the seeds' values. A
    claim whose experiment failed or never ran says so instead of a verdict."""
    for k, seed in enumerate((1337, 1338, 1339)):
        for m, (model, share) in enumerate((("pca", 0.1), ("big", 0.5))):
            write_run(
                tmp_path / "rectangle_capacity" / str(2 * k + m),
                {"data_near_curve_share": share * (1 + 0.01 * k)},
                overrides=("experiment=rectangle_capacity", f"model={model}", f"seed={seed}"),
                final_val_loss={"pca": 0.18, "big": 0.02}[model],
            )
    write_run(tmp_path / "beta_curves" / "0", {}, status="failed", error="boom", overrides=("seed=0",))
    write_manifest(tmp_path, {"rectangle_capacity": "completed", "beta_curves": "failed"})
    manifest = reproduce.write_reports(tmp_path)
    assert json.loads((tmp_path / "reproduction.json").read_text())["claims"] == manifest["claims"]
    rows = {row["claim"]: row for row in manifest["claims"]}
    slower = rows["pca converges much more slowly: final MSE, pca / big"]
    assert {k: slower[k] for k in ("study", "n", "seeds", "tolerance", "verdict", "shown")} == {
        "study": "rectangle_capacity",
        "n": 3,
        "seeds": [1337, 1338, 1339],
        "tolerance": "> 2",
        "verdict": "reproduced",
        "shown": "✓ reproduced",
    }
    assert slower["values"] == pytest.approx([9.0, 9.0, 9.0]) and slower["interval"] == pytest.approx([9.0, 9.0])
    assert rows["loss of the last epoch, per curve"]["shown"] == "failed"
    assert rows["the same for L2: mean |h|, L2 / none"]["shown"] == "not run in this reproduction"
    text, page = (tmp_path / "reproduction.md").read_text(), (tmp_path / "index.html").read_text()
    assert "| 9 [9, 9] (n=3, geometric): `final_val_loss` (model=pca) / `final_val_loss` (model=big) |" in text
    assert (
        "- `rectangle_capacity`, pca converges much more slowly: final MSE, pca / big: 1337: 9, 1338: 9, 1339: 9"
        in text
    )
    assert page.count("<svg") == 1 and page.count("<circle") == 3  # the one claim with values: a dot a seed


def test_a_fast_reproduction_gets_verdicts_too_and_says_they_are_smoke(tmp_path):
    write_manifest(tmp_path, {}, fast=True)
    manifest = reproduce.write_reports(tmp_path)
    assert "smoke runs (--fast: the numbers check the pipeline, not the studies)" in reproduce.summary_line(
        manifest, manifest["claims"]
    )
    with pytest.raises(ConfigError, match="ran --fast"):
        reproduce.readme_table(manifest)


def test_claims_cover_every_experiment():
    assert sorted(EXPERIMENTS) == EXPERIMENT_NAMES
    assert {c.experiment for c in CLAIMS} == set(EXPERIMENTS)
    for claim in CLAIMS:  # no "figure only": every claim a number with a tolerance and its reason
        assert claim.tolerance.why and claim.study is not None, claim.text


def test_readme_table_equals_the_committed_reproduction():
    """The README's studies table is generated from docs/reproduction.json (the full multi-seed run): a
    hand edit, or a claim changed without a new reproduction, fails."""
    from aecli.docs import read_block

    committed = json.loads((REPO / "docs" / "reproduction.json").read_text())
    block = read_block((REPO / "README.md").read_text(), "reproduction")
    assert block.strip() == reproduce.readme_table(committed).strip()
    assert [row["claim"] for row in committed["claims"]] == [c.text for c in CLAIMS]
    assert all(row["n"] == committed["seeds"] for row in committed["claims"])  # every claim over every seed


def test_study_pages_hold_generated_tables_only():
    """Every study page has a generated block for each of its experiments, and its tables show
    exactly the columns DOC_TABLES names (a hand edit or a stale column list fails)."""
    from aecli.docs import read_block

    for experiment, (page, columns) in reproduce.DOC_TABLES.items():
        block = read_block((REPO / "docs" / "studies" / f"{page}.md").read_text(), f"reproduction:{experiment}")
        assert block.strip().startswith("<!-- generated by `python -m aecli.reproduce --docs DIR`"), experiment
        header = [line for line in block.splitlines() if line.startswith("| run | n | `")]
        assert header == ["| run | n | " + " | ".join(f"`{c}`" for c in columns) + " |"] or "not run" in block


def test_doc_table_aggregates_each_configuration_over_its_seeds(tmp_path):
    for i, (variant, seed, change) in enumerate([("gd", 1, 0.5), ("gd", 2, 0.7), ("sgd", 1, 2.0), ("sgd", 2, 4.0)]):
        write_run(
            tmp_path / "rectangle_gd_vs_sgd" / str(i),
            {"step_log_loss_change_std": change},
            overrides=("experiment=rectangle_gd_vs_sgd", f"variant={variant}", f"seed={seed}"),
            steps=10,
            final_val_loss=0.25,
            wall_seconds=1.0,
        )
    write_manifest(tmp_path, {"rectangle_gd_vs_sgd": "completed"})
    lines = reproduce.doc_table(tmp_path, "rectangle_gd_vs_sgd").splitlines()
    assert lines[-2:] == [
        "| variant=gd | 2 | 10 ± 0 | 0.25 ± 0 |  | 0.6 ± 0.14 | 1 ± 0 |",  # no revisit number given: blank
        "| variant=sgd | 2 | 10 ± 0 | 0.25 ± 0 |  | 3 ± 1.4 | 1 ± 0 |",
    ]


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

    def fake_run(runner, name, out, fast, overrides, seeds):
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
    """`aecli-reproduce --fast --seeds 3`: every experiment a real smoke run over 3 seeds (sweeps with all
    their jobs), every claim with its 3 values (one per seed), their mean, interval and one of the three
    verdicts, links that resolve and every experiment's figures. An extra override reaches every command."""
    folder, _ = tiny_mnist
    out = tmp_path / "repro"
    start = time.perf_counter()
    args = ("--fast", "--seeds", "3", "--out", str(out), "trainer.num_threads=1")
    proc = cli(*args, cwd=tmp_path, env={"AECLI_MNIST_DIR": str(folder)})
    print(f"\n[reproduce --fast --seeds 3] {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "reproduction.json").read_text())
    assert {n: r["status"] for n, r in manifest["experiments"].items()} == {n: "completed" for n in EXPERIMENTS}
    assert all("trainer.num_threads=1" in r["command"] for r in manifest["experiments"].values())
    assert manifest["seeds"] == 3 and len(manifest["claims"]) == len(CLAIMS)
    for row in manifest["claims"]:
        assert row["verdict"] in ("reproduced", "not reproduced", "inconclusive"), row["claim"]
        if row["study"] == "rectangle_gd_vs_sgd":  # a smoke run's one epoch has no batch seen twice: no value
            assert row["n"] == 0 and row["verdict"] == "inconclusive"
            continue
        assert row["n"] == 3 and len(row["values"]) == 3 and len(row["seeds"]) == 3, row["claim"]
        assert row["interval"][0] <= row["mean"] <= row["interval"][1], row["claim"]
    text, page = (out / "reproduction.md").read_text(), (out / "index.html").read_text()
    assert len([line for line in text.splitlines() if line.startswith("| [`")]) == len(CLAIMS)
    assert page.count("<svg") == len(CLAIMS) - 1 and page.count("<circle") == 3 * (len(CLAIMS) - 1)
    targets = re.findall(r"\]\(([^)#]+)\)", text) + re.findall(r"(?:href|src)='([^'#]+)'", page)
    assert all((out / unquote(t)).is_file() for t in targets), [t for t in targets if not (out / unquote(t)).is_file()]
    assert {t.split("/")[0] for t in targets if t.endswith(".png")} == set(EXPERIMENTS)  # every experiment's figures
