"""hydra/launcher=vectorized: the same job folders, report and numbers as the basic launcher, with the
compatible jobs trained as one stacked group; lone jobs, a diverging member, a stop during the
group's training (signal or stop file), then resume= with the basic launcher; Optuna's batches; a bad launcher
setting."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import read_summary, run_cli

VECTORIZED = "hydra/launcher=vectorized"


def job_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def files_of(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def nonlinear_sweeps(tmp_path_factory) -> tuple[Path, Path, str]:
    """experiment=nonlinear_2d, 3 epochs, with the vectorized and with the basic launcher."""
    root = tmp_path_factory.mktemp("nonlinear")
    args = ["-m", "experiment=nonlinear_2d", "trainer.epochs=3", "plots.enabled=false", "trainer.progress=false"]
    vectorized = run_cli(*args, VECTORIZED, f"hydra.sweep.dir={root / 'v'}", cwd=root)
    run_cli(*args, f"hydra.sweep.dir={root / 'b'}", cwd=root)
    return root / "v", root / "b", vectorized.stdout + vectorized.stderr


def test_a_vectorized_sweep_writes_what_the_basic_launcher_writes(nonlinear_sweeps):
    vectorized, basic, output = nonlinear_sweeps
    assert "vectorized: jobs 0-9 train as one group of 10 (2-3-2 MLP, batch 32, 3 epochs" in output
    assert [d.name for d in job_dirs(vectorized)] == [d.name for d in job_dirs(basic)] == [str(i) for i in range(10)]
    assert files_of(vectorized) - {"multirun.yaml"} == files_of(basic) - {"multirun.yaml"}  # report, figures, .hydra
    for v, b in zip(job_dirs(vectorized), job_dirs(basic)):
        sv, sb = read_summary(v), read_summary(b)
        assert sv["status"] == sb["status"] == "completed" and sv["group_size"] == 10 and "group_size" not in sb
        assert (sv["dataset"], sv["model"], sv["epochs"], sv["steps"]) == (sb["dataset"], sb["model"], 3, sb["steps"])
        assert sv["final_val_loss"] == pytest.approx(sb["final_val_loss"], rel=0.01)
        assert (v / ".hydra" / "overrides.yaml").read_text() == (b / ".hydra" / "overrides.yaml").read_text()
        log = (v / "aecli.log").read_text()  # the job's own log: its epochs, not the launcher's or another job's
        assert log.count("epoch 3/3") == 1 and "#" not in log and sv["model"] in log
    rows = {r["job"]: r for r in csv.DictReader(open(vectorized / "summary.csv"))}
    assert len(rows) == 10 and all(r["status"] == "completed" for r in rows.values())


def test_a_member_folder_loads_and_resumes_like_any_run(nonlinear_sweeps, tmp_path):
    import aecli

    member = job_dirs(nonlinear_sweeps[0])[3]
    run = aecli.load_run(member)
    assert run.val_loss() == pytest.approx(read_summary(member)["final_val_loss"], rel=1e-5)
    # it trained its 3 epochs; resume= with the basic launcher trains it further, from its own checkpoint
    run_cli(f"resume={member}", "trainer.epochs=4", cwd=tmp_path)
    summary = read_summary(member)
    assert summary["status"] == "completed" and summary["epochs"] == 4 and summary["resumed_from"]["epoch"] == 3


def test_incompatible_jobs_run_alone_and_the_log_says_why(tmp_path):
    sweep = tmp_path / "s"
    proc = run_cli(
        "-m",
        VECTORIZED,
        "dataset=polynomial,swiss_roll",  # 2-D and 3-D points: two groups
        "model=tanh,vae,tanh_nobias",
        "trainer.epochs=2",
        "plots.enabled=false",
        "trainer.progress=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert "vectorized: jobs 0,2 train as one group of 2 (2-3-2 MLP" in output
    assert "vectorized: jobs 3,5 train as one group of 2 (3-3-3 MLP" in output
    assert output.count("trains alone: ") == 2 and "job 1 trains alone: " in output
    summaries = [read_summary(d) for d in job_dirs(sweep)]
    assert [s["status"] for s in summaries] == ["completed"] * 6
    assert [s.get("group_size") for s in summaries] == [2, None, 2] * 2


def test_a_jobs_transfer_source_trains_on_its_own_and_the_job_keeps_its_own_history(tmp_path):
    """rectangle_frozen_decoder over seeds: each job first trains its source run (nested in the job). That
    source took the job's place in its group, and the job's own training was then handed the source's
    result: empty history, every job failed in its analyses (IndexError)."""
    sweep = tmp_path / "s"
    run_cli(
        "-m",
        VECTORIZED,
        "experiment=rectangle_frozen_decoder",
        "seed=1,2",
        "trainer.epochs=3",
        "+transfer.source.trainer.epochs=2",
        "dataset.n=40",
        "analyses.encoder_shift.resolution=10",
        "analyses.encoder_shift.n_z=50",
        "plots.enabled=false",
        "trainer.progress=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    for job in job_dirs(sweep):
        summary, source = read_summary(job), read_summary(job / "source")
        assert summary["status"] == source["status"] == "completed"
        assert (summary["epochs"], source["epochs"]) == (3, 2)
        assert len((job / "metrics.csv").read_text().splitlines()) == 1 + 4  # header, epochs 0-3: its own rows


def test_a_diverging_member_stops_alone_and_a_failing_job_fails_alone(tmp_path):
    sweep = tmp_path / "s"
    proc = run_cli(
        "-m",
        VECTORIZED,
        "optimizer=sgd",
        "model=mlp",
        "dataset.n=200",
        "optimizer.lr=1e-2,50,-1,2e-2",  # one diverges, one fails its config check before training
        "trainer.epochs=4",
        "plots.enabled=false",
        "trainer.progress=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # jobs did not complete: as the basic launcher
    assert "optimizer.lr=-1.0 is not allowed" in proc.stderr
    first, diverged, failed, last = (read_summary(d) for d in job_dirs(sweep))
    assert diverged["status"] == "diverged" and diverged["group_size"] == 3 and failed["status"] == "failed"
    assert first["status"] == last["status"] == "completed" and first["epochs"] == last["epochs"] == 4
    assert first["final_val_loss"] != last["final_val_loss"]


def test_worker_processes_share_the_jobs_and_give_what_one_process_gives(nonlinear_sweeps, tmp_path):
    one = nonlinear_sweeps[1]  # the basic launcher's (a test above resumes a job of the vectorized one)
    args = ["-m", "experiment=nonlinear_2d", "trainer.epochs=3", "plots.enabled=false", "trainer.progress=false"]
    proc = run_cli(*args, VECTORIZED, "hydra.launcher.processes=2", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert "Launching 10 jobs in 2 of the 2 worker processes" in output  # round-robin: a group of 5 in each
    assert "jobs 0,2,4,6,8 train as one group of 5" in output and "jobs 1,3,5,7,9 train as one group of 5" in output
    assert files_of(tmp_path / "s") - {"multirun.yaml"} == files_of(one) - {"multirun.yaml"}
    for shared, alone in zip(job_dirs(tmp_path / "s"), job_dirs(one)):
        s, a = read_summary(shared), read_summary(alone)
        assert s["status"] == "completed" and s["group_size"] == 5 and s["model"] == a["model"]
        assert s["final_val_loss"] == pytest.approx(a["final_val_loss"], rel=1e-4)  # float sums reordered only
    rows = list(csv.DictReader(open(tmp_path / "s" / "summary.csv")))
    assert len(rows) == 10 and all(r["status"] == "completed" for r in rows)


def worker_pids(parent: int) -> list[int]:
    """The launcher's worker processes: children of `parent` started by multiprocessing's spawn."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def run_until(sweep: Path, args: list[str], ready: Callable[[], bool], act: Callable[[int], None]) -> tuple[int, str]:
    """`aecli -m ARGS` into `sweep`, in a session of its own; once `ready()` holds, `act(its pid)`; then
    its exit status and its output (stdout and stderr together). Whatever is left is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aecli", "-m", *args, "trainer.progress=false", f"hydra.sweep.dir={sweep}"],
        cwd=sweep.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        act(proc.pid)
        output, _ = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, output


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes in /proc")
def test_a_killed_worker_process_costs_its_own_jobs_only(tmp_path):
    sweep = tmp_path / "s"
    args = [VECTORIZED, "hydra.launcher.processes=2", "model=tanh,tanh_nobias,relu", "trainer.epochs=150"]

    def kill_the_second_worker(parent: int) -> None:
        workers = worker_pids(parent)
        assert len(workers) == 2
        for pid in workers:  # the one whose job folder 1 is open
            if any(str(sweep / "1") in str(p.resolve()) for p in Path(f"/proc/{pid}/fd").iterdir()):
                os.kill(pid, signal.SIGKILL)

    ready = (sweep / "1" / "metrics.csv").is_file  # job 1 trains alone in the second worker
    status, output = run_until(sweep, [*args, "plots.enabled=false"], ready, kill_the_second_worker)
    assert status == 1 and "Traceback" not in output, output[-2000:]
    assert "vectorized: the process running jobs 1 ended before they did" in output
    first, lost, last = (read_summary(d) for d in job_dirs(sweep))
    assert first["status"] == last["status"] == "completed" and first["group_size"] == last["group_size"] == 2
    assert lost["status"] == "running"  # as a run killed with SIGKILL leaves it: `aecli resume=` continues it


@pytest.mark.parametrize("how", ["SIGINT", "stop file", "SIGINT, 2 processes", "stop file, 2 processes"])
def test_a_stop_during_group_training_interrupts_every_member_resumably(tmp_path, how):
    sweep = tmp_path / "s"
    args = [VECTORIZED, "model=tanh,tanh_nobias,relu", "trainer.epochs=400", "plots.enabled=false"]
    if "processes" in how:  # jobs 0 and 2 stack in one worker, job 1 trains alone in the other
        args.append("hydra.launcher.processes=2")

    def stop(pid: int) -> None:
        if how.startswith("SIGINT"):
            os.kill(pid, signal.SIGINT)
        else:
            (sweep / ".aecli-stop").touch()

    # every job training (with 2 processes job 1 starts in the other worker, maybe a moment later)
    ready = lambda: all((sweep / job / "metrics.csv").is_file() for job in "012")  # noqa: E731
    status, output = run_until(sweep, args, ready, stop)
    assert status == 130 and "Traceback" not in output, output[-2000:]
    summaries = [read_summary(d) for d in job_dirs(sweep)]
    assert [(s["status"], s["phase"]) for s in summaries] == [("interrupted", "train")] * 3
    sizes = [2, None, 2] if "processes" in how else [3, 3, 3]
    assert [s.get("group_size") for s in summaries] == sizes
    member = job_dirs(sweep)[1]
    (sweep / ".aecli-stop").unlink(missing_ok=True)
    target = read_summary(member)["epochs"] + 2  # two epochs more than it had finished: quick, and past the stop
    run_cli(f"resume={member}", f"trainer.epochs={target}", cwd=tmp_path)
    summary = read_summary(member)
    assert summary["status"] == "completed" and summary["epochs"] == target and "group_size" not in summary


def test_optuna_trials_arrive_in_batches_and_each_batch_is_grouped(tmp_path):
    sweep = tmp_path / "s"
    proc = run_cli(
        "-m",
        VECTORIZED,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.params={model.hidden_sizes:\"choice('[8]')\",model.latent_dim:'choice(2)'}",  # one shape
        "trainer.epochs=2",
        "plots.enabled=false",
        "trainer.progress=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert (proc.stdout + proc.stderr).count("train as one group of 2") == 2  # two batches of two trials
    summaries = [read_summary(d) for d in job_dirs(sweep)]
    assert len(summaries) == 4 and all(s["status"] == "completed" and s["group_size"] == 2 for s in summaries)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(s["final_val_loss"] for s in summaries))


@pytest.mark.parametrize("key", ["max_members", "processes"])
def test_a_bad_launcher_setting_is_one_sentence(tmp_path, key):
    proc = run_cli("-m", VECTORIZED, f"hydra.launcher.{key}=0", "model=tanh,relu", cwd=tmp_path, check=False)
    assert (
        proc.returncode == 2
        and proc.stderr == f"aecli: error: hydra.launcher.{key}=0 is not allowed: use an integer >= 1\n"
    )


CRASHING_GROUP = """
import sys
import aecli.vectorized

def crash(requests, stop_requested=None):
    raise RuntimeError("simulated fault in the stacked step")

aecli.vectorized.fit_group = crash  # what the launcher calls for a group
sys.argv = ["aecli", *sys.argv[1:]]
from aecli.__main__ import main
main()
"""


def test_a_fault_in_the_group_training_fails_every_member_in_one_line(tmp_path):
    sweep = tmp_path / "s"
    args = ["-m", VECTORIZED, "model=tanh,relu,linear", "trainer.epochs=2", "plots.enabled=false"]
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_GROUP, *args, "trainer.progress=false", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr  # a bug: each job logs its traceback, as a job that fails alone does
    assert proc.returncode == 1 and "vectorized: the group of jobs 0-2 failed: simulated fault" in output
    summaries = [read_summary(d) for d in job_dirs(sweep)]
    assert [(s["status"], s["phase"]) for s in summaries] == [("failed", "train")] * 3
    assert all("simulated fault in the stacked step" in s["error"] for s in summaries)
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert all(r["status"].startswith("failed: RuntimeError: simulated fault") for r in rows) and len(rows) == 3
