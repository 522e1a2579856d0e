"""Trust at the edges, as a hostile user or a cluster would test it: a signal in every phase of a run
and of a sweep, folders that already hold something, a second process on the same folder, links
planted in a folder, a full disk. Real processes wherever a signal or a second process is involved."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, read_summary, run_cli

QUICK = ["trainer.epochs=2", "plots.error_map_resolution=30", "trainer.progress=false"]

# A real `aecli` process that sends itself `signal` when the run enters `phase` (or, for "figures-2",
# while the second figure is being saved; "startup": before Hydra is even imported). Exactly what
# a user's Ctrl-C or SLURM's SIGTERM does at that moment, without racing a timer.
DRIVER = r"""
import os, signal, sys
phase, signame = sys.argv[1], sys.argv[2]
sys.argv = ["aecli", *sys.argv[3:]]
send = lambda: os.kill(os.getpid(), getattr(signal, signame))
from aecli import signals
signals.install()
if phase == "startup":
    send()
else:
    import aecli.pipeline as pipeline
    import aecli.reporting.plots as plots
    if phase == "report":  # the sweep's report, after every job
        import aecli.reporting.report as report
        build = report.build_report
        def build_and_signal(*args, **kwargs):
            send()
            return build(*args, **kwargs)
        report.build_report = build_and_signal
    elif phase.startswith("figures-"):
        save, count = plots.save_figure, [0]
        def save_and_signal(fig, path, *args):  # counts the run's own figures, not its source run's
            count[0] += path.parent.name != "source"
            if count[0] == int(phase.split("-")[1]) and path.parent.name != "source":
                send()
            return save(fig, path, *args)
        plots.save_figure = save_and_signal
    else:
        enter = pipeline.RunRecord.phase
        def enter_and_signal(self, name):  # "source.train": the source run's own train phase
            inner = self.run_dir.name == "source"
            if name == phase.removeprefix("source.") and inner == phase.startswith("source."):
                send()
            return enter(self, name)
        pipeline.RunRecord.phase = enter_and_signal
from aecli.cli import main
main()
"""


started: list[subprocess.Popen] = []


def spawn(*args: str, cwd: Path, stderr=subprocess.PIPE) -> subprocess.Popen:
    """`python -m aecli ARGS` in the background, in a session of its own: killed with all its
    workers when the test ends, whatever the outcome (a failed test leaves no sweep running)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aecli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    while started:
        proc = started.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    while unmount_later:
        subprocess.run(["umount", str(unmount_later.pop())], check=False)


def run_signalled(phase: str, signame: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, phase, signame, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
    )


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ signals in every phase of a run
@pytest.mark.parametrize("phase", ["source", "source.train", "data", "model", "train", "figures-2", "analyses"])
def test_a_signal_in_any_phase_leaves_a_truthful_summary_and_resume_finishes_the_run(tmp_path, phase):
    # rectangle_frozen_decoder has every phase: a source run, training, figures and an analysis
    args = ["experiment=rectangle_frozen_decoder", "trainer.epochs=3", "plots.error_map_resolution=20"]
    args += ["analyses.encoder_shift.resolution=10", "analyses.encoder_shift.n_z=50", "trainer.progress=false"]
    run_dir = tmp_path / "run"
    proc = run_signalled(phase, "SIGTERM", *args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    expected_phase = "source" if phase.startswith("source") else phase.split("-")[0]
    assert f"interrupted during {expected_phase}" in proc.stderr.strip().splitlines()[-1]
    summary = read_summary(run_dir)
    assert summary["status"] == "interrupted" and summary["phase"] == expected_phase
    assert summary["stopped_by"] == "SIGTERM"
    if expected_phase in ("figures", "analyses"):  # training had ended: its checkpoint is there
        assert (run_dir / "checkpoints" / "last.pt").is_file()
    # resume= does what is missing: the rest of training, or only figures and analyses
    resumed = run_cli(f"resume={run_dir}", cwd=tmp_path)
    summary = read_summary(run_dir)
    assert resumed.returncode == 0 and summary["status"] == "completed" and summary["epochs"] == 3
    for name in ["loss_curve.png", "latent.png", "reconstruction.png", "error_map.png", "encoder_shift.png"]:
        assert (run_dir / name).is_file(), name
    assert read_summary(run_dir / "source")["status"] == "completed"
    assert summary["metrics"]["shift_mean_data"] > 0


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_every_stop_signal_interrupts_figures_with_exit_130(tmp_path, signame):
    run_dir = tmp_path / "run"
    proc = run_signalled("figures-1", signame, *QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    summary = read_summary(run_dir)
    assert (summary["status"], summary["phase"], summary["stopped_by"]) == ("interrupted", "figures", signame)
    assert summary["epochs"] == 2  # training had finished: its numbers are in the summary


def test_a_signal_during_start_up_writes_nothing_and_exits_130(tmp_path):
    proc = run_signalled("startup", "SIGTERM", *QUICK, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr
    assert "before the run began; nothing was written" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_sigterm_during_imports_of_a_real_process_exits_130_without_traceback(tmp_path):
    """Not driven: the signal arrives whenever it arrives, half a second in (Hydra or torch importing)."""
    proc = spawn(*QUICK, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in proc.stderr.read()
    if (tmp_path / "run" / "summary.json").exists():
        assert read_summary(tmp_path / "run")["status"] == "interrupted"


@pytest.mark.parametrize("first, second", [(0.1, 0.12), (0.2, 0.22), (0.4, 0.42)])
def test_two_signals_during_the_first_imports_exit_130_without_traceback(tmp_path, first, second):
    """Ctrl-C twice while Hydra and torch are still importing: the second raised KeyboardInterrupt inside
    an import, a traceback; a SIGTERM then killed with 143 before the handlers were in (aecli's own
    import read its version through importlib.metadata first, 35 ms)."""
    proc = spawn(*QUICK, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    time.sleep(first)
    proc.send_signal(signal.SIGINT)
    time.sleep(second - first)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in proc.stderr.read()
    assert not (tmp_path / "run").exists() or read_summary(tmp_path / "run")["status"] == "interrupted"


def test_importing_aecli_reads_no_package_metadata():
    """The stop handlers go in right after `import aecli`: nothing slow may come before them."""
    code = "import sys, aecli.__main__; print('importlib.metadata' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_second_signal_aborts_at_once_and_still_writes_the_summary(tmp_path):
    run_dir = tmp_path / "run"
    proc = spawn("trainer.epochs=1000000", "plots.enabled=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    wait_for(lambda: phase_of(run_dir) == "train")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130 and "Traceback" not in proc.stderr.read()
    assert read_summary(run_dir)["status"] == "interrupted"


def phase_of(run_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((run_dir / "summary.json").read_text()).get("phase")
    return None


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------------------------------- sweeps stop whole
def sweep_statuses(sweep: Path) -> dict[int, str]:
    return {int(p.name): read_summary(p)["status"] for p in sweep.iterdir() if p.name.isdigit()}


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_a_signal_to_a_sweep_stops_the_whole_sweep_and_still_reports(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    extra = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}.get(
        launcher, ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"]
    )
    args = ["-m", *extra, "seed=1,2,3,4,5,6", "trainer.epochs=1000000", "plots.enabled=false"]
    proc = spawn(*args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    wait_for(lambda: "train" in {phase_of(job) for job in sweep.glob("[0-9]")}, timeout=300)
    started = time.time()
    proc.send_signal(signal.SIGTERM)  # the launching process only, as `kill <pid>` or SLURM would
    assert proc.wait(timeout=120) == 130
    assert time.time() - started < 60  # every job stopped, none ran on for its million epochs
    err = proc.stderr.read()
    assert "Traceback" not in err and "stopped by SIGTERM" in err
    statuses = sweep_statuses(sweep)
    assert "interrupted" in statuses.values() and set(statuses.values()) <= {"interrupted", "not_started"}
    if launcher != "submitit_local":  # submitit starts every job at once: all of them end interrupted
        assert "not_started" in statuses.values()  # jobs not started stayed unstarted
    report = (sweep / "summary.md").read_text()
    assert report.count("not_started") == list(statuses.values()).count("not_started")
    assert (sweep / "index.html").is_file()
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", str(sweep)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"workers still running: {leftovers}"


def test_a_signal_while_the_sweep_report_is_written_still_writes_it_and_exits_130(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_signalled(
        "report", "SIGTERM", "-m", "model=linear,tanh", *QUICK, f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert set(sweep_statuses(sweep).values()) == {"completed"}  # every job had ended
    assert "2 jobs" in (sweep / "summary.md").read_text() and (sweep / "index.html").is_file()


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_the_readmes_parallel_sweeps_are_one_folder_with_every_job_and_the_report(tmp_path, launcher):
    """The README's commands exactly as written (no hydra.sweep.dir): jobs in worker processes
    resolve the sweep folder's name to the launching process's, not their own."""
    readme = (REPO / "README.md").read_text()
    command = re.search(rf"`(aecli -m hydra/launcher={launcher} [^`]*)`", readme).group(1).split()
    proc = run_cli(*command[1:], cwd=tmp_path)
    sweeps = [p for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    statuses = sweep_statuses(sweeps[0])
    assert len(statuses) == 10 and set(statuses.values()) == {"completed"}
    assert (sweeps[0] / "summary.md").is_file() and (sweeps[0] / "index.html").is_file()
    assert "10 jobs" in (sweeps[0] / "summary.md").read_text()
    assert proc.returncode == 0


# ------------------------------------------------------------------------- folders are never reused
def test_a_run_into_a_finished_runs_folder_is_refused_and_leaves_it_untouched(tmp_path):
    run_dir = tmp_path / "run"
    run_cli(*QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    before = files_of(run_dir)
    proc = run_cli("model=relu", *QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "already holds files" in proc.stderr and f"resume={run_dir}" in proc.stderr
    assert files_of(run_dir) == before  # not one byte changed, .hydra/ and aecli.log included


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli("-m", "model=linear,tanh", *QUICK, "plots.enabled=false", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    before = files_of(sweep)
    proc = run_cli("-m", "model=relu", *QUICK, f"hydra.sweep.dir={sweep}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "hydra.sweep.dir" in proc.stderr and "already holds files" in proc.stderr
    assert files_of(sweep) == before


@pytest.mark.parametrize("kind", ["empty", "file", "long-name", "read-only"])
def test_unusable_run_folders_get_one_sentence(tmp_path, kind):
    target: str
    if kind == "empty":
        target = ""
    elif kind == "file":
        (tmp_path / "a_file").write_text("mine")
        target = str(tmp_path / "a_file")
    elif kind == "long-name":
        target = str(tmp_path / ("x" * 300))
    else:
        target = str(read_only_folder(tmp_path) / "run")
    proc = run_cli(*QUICK, f"hydra.run.dir={target}", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("aecli: error: hydra.run.dir=") and len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("summary.json"))
    if kind == "file":
        assert (tmp_path / "a_file").read_text() == "mine"


def read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody may write in. As root, permission bits do not stop writes: then a read-only
    tmpfs mount (root may mount), else chmod, which is what a normal user meets."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=False)
        if mounted.returncode == 0:
            unmount_later.append(folder)
            return folder
    folder.chmod(0o555)
    return folder


unmount_later: list[Path] = []


def test_two_resumes_of_one_folder_the_second_is_refused_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("trainer.epochs=1", "plots.enabled=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    first = spawn(f"resume={run_dir}", "trainer.epochs=1000000", "trainer.progress=false", cwd=tmp_path)
    wait_for(lambda: phase_of(run_dir) == "train")
    second = run_cli(f"resume={run_dir}", "trainer.epochs=5", cwd=tmp_path, check=False)
    assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
    assert f"is being written by aecli pid {first.pid}" in second.stderr
    assert not (run_dir / ".hydra" / "resume" / "overrides.yaml").read_text().count("trainer.epochs=5")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 130
    # the lock went with its holder, even one killed with SIGKILL
    killed = spawn(f"resume={run_dir}", "trainer.epochs=1000000", cwd=tmp_path, stderr=subprocess.DEVNULL)
    wait_for(lambda: phase_of(run_dir) == "train")
    killed.kill()
    killed.wait()
    assert run_cli(f"resume={run_dir}", "trainer.epochs=3", cwd=tmp_path).returncode == 0
    assert read_summary(run_dir)["status"] == "completed"


# ----------------------------------------------------------------- links planted in a run folder
@pytest.mark.parametrize("planted", ["loss_curve.png", "aecli.log", "metrics.csv", "checkpoints"])
def test_resume_refuses_a_folder_with_a_planted_link_and_writes_nothing_through_it(tmp_path, planted):
    run_dir = tmp_path / "run"
    run_cli(*QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir() if planted == "checkpoints" else victim.write_text("precious\n")
    target = run_dir / planted
    if target.is_dir():
        os.rename(target, tmp_path / "moved")
    else:
        target.unlink()
    target.symlink_to(victim)
    proc = run_cli(f"resume={run_dir}", "trainer.epochs=4", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "is a symbolic link" in proc.stderr and planted in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert list(victim.iterdir()) == [] if planted == "checkpoints" else victim.read_text() == "precious\n"


def test_every_write_replaces_a_link_instead_of_following_it(tmp_path):
    from aecli.folders import atomic_write, open_append
    from aecli.run_files import RunLogHandler

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "summary.json"
    link.symlink_to(victim)
    atomic_write(link, lambda f: f.write(b"{}"))
    assert not link.is_symlink() and link.read_text() == "{}" and victim.read_text() == "precious\n"
    (tmp_path / "metrics.csv").symlink_to(victim)
    with pytest.raises(OSError):
        open_append(tmp_path / "metrics.csv")
    (tmp_path / "aecli.log").symlink_to(victim)
    handler = RunLogHandler(str(tmp_path / "aecli.log"))  # opened at its first record, in a claimed folder only
    record = logging.LogRecord("aecli", logging.INFO, __file__, 1, "a line", None, None)
    handler.emit(record)  # the folder is not claimed: nothing is written, nothing opened
    with pytest.raises(OSError):
        handler._open()
    assert victim.read_text() == "precious\n"


# ----------------------------------------------------------------------------------- a full disk
def test_a_full_disk_gives_one_sentence_and_leaves_no_temp_files(tmp_path):
    """A real full disk where this machine lets root mount a tiny tmpfs, else a file-size limit
    (RLIMIT_FSIZE: writes past it fail as on a full disk)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)], check=False).returncode == 0
    )
    if mounted:
        unmount_later.append(disk)
    code = "import sys; sys.argv = ['aecli', *sys.argv[1:]]; from aecli.__main__ import main; main()"
    if not mounted:
        code = (
            "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000)); " + code
        )
    proc = subprocess.run(
        [sys.executable, "-c", code, "trainer.epochs=30", "model=mlp", "model.hidden_sizes=[64,64]"]
        + ["hydra/job_logging=disabled", f"hydra.run.dir={disk / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("aecli: error:") and re.search(r"No space left on device|File too large", last)
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]  # no torn temporary files left
    summary = disk / "run" / "summary.json"
    if summary.exists():  # written where there was room for it: never "completed"
        assert read_summary(disk / "run")["status"] in ("running", "failed")
