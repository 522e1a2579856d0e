"""Sweeps: the report after every multirun, failed jobs, launchers (basic, joblib, submitit_local),
Optuna search, `aecli-report` on a partial sweep, and the report page in a real headless browser."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_summary, run_cli

QUICK = ["trainer.epochs=1", "plots.error_map_resolution=30", "hydra/job_logging=disabled"]


def summary_rows(sweep: Path) -> list[dict]:
    return list(csv.DictReader(open(sweep / "summary.csv")))


@pytest.fixture(scope="module")
def four_job_sweep(tmp_path_factory) -> Path:
    """A real 2 x 2 sweep, one epoch per job, with the basic launcher."""
    root = tmp_path_factory.mktemp("sweep4")
    run_cli("-m", "dataset=polynomial,spiral", "model=linear,tanh", *QUICK, f"hydra.sweep.dir={root / 's'}", cwd=root)
    return root / "s"


def test_every_multirun_ends_with_a_report(four_job_sweep):
    rows = summary_rows(four_job_sweep)
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)
    assert {(r["dataset"], r["model"]) for r in rows} == {
        (d, m) for d in ("polynomial", "spiral") for m in ("linear", "tanh")
    }
    assert [r["dataset"] for r in rows] == ["polynomial", "polynomial", "spiral", "spiral"]  # a data set, then the next
    for part in (rows[:2], rows[2:]):  # sorted by the default metric within each data set, its best marked
        losses = [float(r["final_val_loss"]) for r in part]
        assert losses == sorted(losses) and [r["best"] for r in part] == ["yes", ""]
    for r in rows:  # the numbers are each job's own
        assert float(r["final_val_loss"]) == read_summary(four_job_sweep / r["job"])["final_val_loss"]
        assert float(r["steps_per_second"]) > 0 and float(r["wall_seconds"]) > 0
    md = (four_job_sweep / "summary.md").read_text()
    assert md.count("\n| ") == 5 and "best**" in md  # header + 4 rows
    for name in ["comparison_error_map.png", "comparison_loss_curves.png", "index.html"]:
        assert (four_job_sweep / name).is_file(), name
    assert not (four_job_sweep / "comparison_loss_curve.png").exists()  # one name per figure


def test_a_failing_job_is_reported_and_the_others_still_run(tmp_path):
    # optimizer.lr=0 is refused by validation: that job fails, the three others complete
    proc = run_cli(
        "-m", "optimizer.lr=0.001,0,0.01,0.003", *QUICK, f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path, check=False
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "1 job(s) of the sweep did not complete" in proc.stderr
    rows = {r["optimizer.lr"]: r for r in summary_rows(tmp_path / "s")}
    assert len(rows) == 4
    assert rows["0"]["status"].startswith("failed: ConfigError: optimizer.lr=0.0 is not allowed")
    assert rows["0"]["best"] == "" and rows["0"]["final_val_loss"] == ""
    assert all(rows[lr]["status"] == "completed" for lr in ("0.001", "0.01", "0.003"))
    assert "failed: ConfigError" in (tmp_path / "s" / "index.html").read_text()


def test_aecli_report_rebuilds_a_partial_sweep(four_job_sweep, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(four_job_sweep, partial)
    for name in ["summary.csv", "summary.md", "index.html"]:
        (partial / name).unlink()
    (partial / "2" / "summary.json").unlink()  # a job still running (or killed before its first write)
    script = Path(sys.executable).with_name("aecli-report")
    proc = subprocess.run(
        [str(script), str(partial), "--sort-by", "wall_seconds", "--descending"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 jobs (3 completed, 1 missing)" in proc.stdout
    rows = summary_rows(partial)
    assert [r["status"] for r in rows][-1] == "missing" and len(rows) == 4  # job 2 (spiral): last of its data set
    seconds = [float(r["wall_seconds"]) for r in rows[:2]]  # polynomial's two, ranked among themselves
    assert [r["dataset"] for r in rows[:2]] == ["polynomial"] * 2 and seconds == sorted(seconds, reverse=True)
    bad = subprocess.run(
        [sys.executable, "-m", "aecli.reporting.report", str(tmp_path / "nowhere")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a sweep folder" in bad.stderr


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_plugin_launchers_run_and_report_the_same_way(tmp_path, launcher):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5"]
    run_cli(
        "-m",
        f"hydra/launcher={launcher}",
        *extra,
        "model=linear,tanh",
        *QUICK,
        f"hydra.sweep.dir={tmp_path / 's'}",
        cwd=tmp_path,
    )
    rows = summary_rows(tmp_path / "s")
    assert sorted(r["model"] for r in rows) == ["linear", "tanh"]
    assert all(r["status"] == "completed" for r in rows)
    # same config, same seed: the same numbers as a job run by the basic launcher
    basic = tmp_path / "basic"
    run_cli("model=tanh", *QUICK, f"hydra.run.dir={basic}", cwd=tmp_path)
    tanh = next(r for r in rows if r["model"] == "tanh")
    assert float(tanh["final_val_loss"]) == read_summary(basic)["final_val_loss"]


def test_optuna_search_marks_the_best_trial(tmp_path):
    run_cli(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "dataset=spiral",
        *QUICK,
        f"hydra.sweep.dir={tmp_path / 's'}",
        cwd=tmp_path,
    )
    rows = summary_rows(tmp_path / "s")
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    best = min(rows, key=lambda r: float(r["final_val_loss"]))
    assert best["best"] == "yes"
    results = (tmp_path / "s" / "optimization_results.yaml").read_text()
    assert f"best_value: {float(best['final_val_loss'])}"[:18] in results
    configs = [json.dumps(read_summary(tmp_path / "s" / r["job"])) for r in rows]
    assert len(set(configs)) == 3


# --------------------------------------------------------------------------- the page in a real browser
PROBE = """<script>
window.__errors = [];
window.addEventListener("error",
  e => __errors.push(e.message || ("failed to load " + (e.target.src || e.target))), true);
const consoleError = console.error;
console.error = (...args) => { __errors.push(args.join(" ")); consoleError(...args); };
window.addEventListener("load", () => {
  const images = [...document.images];
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    rows: document.querySelectorAll("#summary tbody tr").length,
    errors: window.__errors,
  });
  document.body.appendChild(probe);
});
</script>"""


def browser() -> str:
    """Debian's chromium; installed with apt-get when missing and we may (CI runs as root)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True)
        if shutil.which("chromium"):
            return shutil.which("chromium")
    pytest.fail("the report page test needs a headless browser: install Debian's `chromium` package")


def test_report_page_renders_in_a_headless_browser(four_job_sweep, tmp_path):
    page = (four_job_sweep / "index.html").read_text()
    probe_page = four_job_sweep / "index_probe.html"  # beside the real page, so relative links resolve the same
    probe_page.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    proc = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe_page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    probe_page.unlink()
    dom = proc.stdout
    assert 'id="probe"' in dom, proc.stderr[-2000:]
    result = json.loads(dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert result["errors"] == [] and result["broken"] == []
    pngs = len(list(four_job_sweep.glob("*.png"))) + len(list(four_job_sweep.glob("*/*.png")))
    assert result["images"] == pngs  # every figure of every job, and every comparison figure
    assert result["rows"] == 4
    assert "CONSOLE" not in proc.stderr


def test_slurm_launcher_config_composes_with_cluster_settings(tmp_path):
    from omegaconf import OmegaConf

    out = run_cli(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.array_parallelism=8",
        "--cfg",
        "hydra",
        cwd=tmp_path,
    ).stdout
    launcher = OmegaConf.create(out).hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.array_parallelism, launcher.timeout_min) == (
        "gpu",
        1,
        8,
        60,
    )
