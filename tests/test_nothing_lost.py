"""Nothing lost, nothing escapes (issue 25): every folder aecli writes is claimed by one rule
(aecli.folders.claim_folder: new, or the very run being continued; a sweep job's inside its sweep
folder; locked), and a config read from a file never chooses where aecli writes or uploads.

Each test builds the hostile case for real and asserts that the finished run it aims at keeps every
byte, and that the refusal is one sentence."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import aecli
from aecli import reproduce
from aecli.errors import ConfigError
from aecli.folders import claim_folder, claim_job_folder, job_refusal, release_job_folder, unlock_folder
from tests.conftest import run_cli

QUICK = ("trainer.epochs=1", "dataset.n=200", "plots.enabled=false", "trainer.progress=false")


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) -> its SHA-256: equal fingerprints, untouched folder."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".aecli.lock"
    }


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("aecli: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """Two finished runs, A and B, made by the real command (B is the one every attack aims at)."""
    root = tmp_path_factory.mktemp("finished")
    for name in ("A", "B"):
        run_cli(*QUICK, f"hydra.run.dir={name}", cwd=root)
    return root


def copy_of(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished, tmp_path / "w")
    return tmp_path / "w"


# ------------------------------------------------------------------ resume into another run's folder
def test_resume_into_another_finished_run_is_refused_and_leaves_it_untouched(finished, tmp_path):
    """`aecli resume=A hydra.run.dir=B` wrote A's continuation over B (hydra.* skipped the resume checks)."""
    work = copy_of(finished, tmp_path)
    before = fingerprint(work / "B")
    proc = run_cli("resume=A", "trainer.epochs=3", "hydra.run.dir=B", cwd=work, check=False)
    assert proc.returncode == 2
    assert "a resumed run writes only into its own folder" in one_error_line(proc.stderr)
    assert fingerprint(work / "B") == before
    with pytest.raises(ConfigError, match="a resumed run writes only into its own folder"):  # the API: the same rule
        aecli.run(["resume=" + str(work / "A"), "trainer.epochs=3"], output_dir=work / "B")
    assert fingerprint(work / "B") == before


# ------------------------------------------------------------------ sweep job folders
@pytest.mark.parametrize(
    "subdir, said",
    [
        ("../B", "leads out of the sweep folder"),
        ("0", "gives every job the same folder"),
        ("${hydra.job.override_dirname}", "gives every job the same folder"),
        ("/tmp/${hydra.job.num}", "leads out of the sweep folder"),
        ("${oc.env:HOME}/${hydra.job.num}", "named from the job's own keys only"),
    ],
)
def test_a_sweep_subdir_that_leaves_the_sweep_or_repeats_is_refused_before_any_job(finished, tmp_path, subdir, said):
    """`hydra.sweep.subdir=../B` overwrote the finished run B; `=0` let job 1 overwrite job 0 (exit 0, "1 jobs")."""
    work = copy_of(finished, tmp_path)
    before = fingerprint(work / "B")
    proc = run_cli("-m", *QUICK, "seed=1,2", f"hydra.sweep.subdir={subdir}", "hydra.sweep.dir=S", cwd=work, check=False)
    assert proc.returncode == 2
    assert said in one_error_line(proc.stderr)
    assert fingerprint(work / "B") == before and not (work / "S").exists()


@pytest.mark.parametrize("launcher", ["basic", "vectorized"])
def test_a_job_folder_led_out_by_its_overrides_is_refused_and_nothing_is_written_there(finished, tmp_path, launcher):
    """A subdir that passes the check before the sweep (it names the job number) but whose overrides lead
    job 0's folder onto B: the job is refused where Hydra resolves its folder, before Hydra writes its
    record or log there, in every launcher; the other job runs; the sweep exits 1."""
    work = copy_of(finished, tmp_path)
    before = fingerprint(work / "B")
    excluded = (
        "hydra.job.config.override_dirname.exclude_keys=[trainer.epochs,dataset.n,plots.enabled,trainer.progress]"
    )
    proc = run_cli(
        "-m",
        *QUICK,
        "trainer.resume_from=../../../B,null",
        "hydra.sweep.subdir=${hydra.job.num}_${hydra.job.override_dirname}",
        excluded,
        "hydra.sweep.dir=S",
        f"hydra/launcher={launcher}",
        cwd=work,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "job 0's folder" in one_error_line(proc.stderr) and "is not inside the sweep folder" in proc.stderr
    assert fingerprint(work / "B") == before
    assert (work / "S" / ".aecli-refused-0").is_file() and "1 job(s) of the sweep were refused" in proc.stderr


def test_a_job_folder_is_claimed_once_and_only_by_its_own_job(tmp_path):
    """The claim Hydra asks for twice per job (hydra.output_subdir): its own job again, any other job never."""
    sweep = tmp_path / "sweep"
    claim_folder(sweep, "hydra.sweep.dir")
    job_dir = sweep / "0"
    job_dir.mkdir()
    assert claim_job_folder(job_dir, sweep, 0) is None
    (job_dir / "summary.json").write_text("{}")
    assert claim_job_folder(job_dir, sweep, 0) is None  # asked again by the same job
    refusal = claim_job_folder(job_dir, sweep, 1)
    assert refusal is not None and "already holds files" in refusal and job_refusal(job_dir) == refusal
    assert claim_job_folder(sweep, sweep, 2) is not None  # the sweep folder itself is no job's folder
    release_job_folder(job_dir)
    unlock_folder(sweep)


def test_a_refused_resume_job_of_a_sweep_is_reported_failed_not_missing(finished, tmp_path):
    """`-m resume=a,b`: each job refuses to resume inside a sweep; the report listed them as "missing"."""
    work = copy_of(finished, tmp_path)
    proc = run_cli("-m", "resume=A,B", "hydra.sweep.dir=S", cwd=work, check=False)
    assert proc.returncode == 1
    statuses = [json.loads((work / "S" / job / "summary.json").read_text())["status"] for job in ("0", "1")]
    assert statuses == ["failed", "failed"]
    assert (work / "S" / "summary.md").read_text().count("| failed: resume= continues one run") == 2


# ------------------------------------------------------------------ places a saved config names
def saved_config_edit(run_dir: Path, edit) -> None:
    """`edit` the saved config of a run, in its checkpoints and config.yaml alike (the weights stay valid)."""
    for path in (run_dir / "checkpoints").glob("*.pt"):
        ckpt = torch.load(path, weights_only=True)
        config = yaml.safe_load(ckpt["config_yaml"])
        edit(config)
        ckpt["config_yaml"] = yaml.safe_dump(config)
        torch.save(ckpt, path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    edit(config)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "tracker, key, value",
    [
        ("aecli.reporting.trackers.TensorBoardTracker", "root_dir", "{elsewhere}"),
        ("aecli.reporting.trackers.MLflowTracker", "tracking_uri", "http://127.0.0.1:9/upload"),
        ("aecli.reporting.trackers.MLflowTracker", "artifact_location", "{elsewhere}"),
    ],
)
def test_a_saved_config_never_chooses_where_a_tracker_writes_or_uploads(finished, tmp_path, tracker, key, value):
    """A run folder whose saved config names aecli's own tracker with a place elsewhere made `resume=`
    write event files, a database and checkpoints there (an http URI would upload). Refused unless the
    user types that place on the command line."""
    work = copy_of(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    value = value.format(elsewhere=elsewhere)
    tracked = {"_target_": tracker, key: value}
    if tracker.endswith("MLflowTracker"):
        tracked = {
            "_target_": tracker,
            "tracking_uri": "sqlite:///outputs/mlflow.db",
            "artifact_location": "x",
            **tracked,
        }
    saved_config_edit(work / "A", lambda cfg: cfg.update(logger={"t": tracked}))
    with pytest.raises(ConfigError, match=rf"sets logger\.t\.{key}=.*add \+\+logger\.t\.{key}="):
        aecli.run(["resume=" + str(work / "A"), "trainer.epochs=2"])
    proc = run_cli("resume=A", "trainer.epochs=2", cwd=work, check=False)
    assert proc.returncode == 2 and f"logger.t.{key}" in one_error_line(proc.stderr)
    assert not elsewhere.exists()


def test_a_typed_tracker_place_is_used_when_resuming(finished, tmp_path):
    pytest.importorskip("tensorboard")
    work = copy_of(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    tracked = {"_target_": "aecli.reporting.trackers.TensorBoardTracker", "root_dir": str(elsewhere)}
    saved_config_edit(work / "A", lambda cfg: cfg.update(logger={"t": tracked}))
    run = aecli.run(["resume=" + str(work / "A"), "trainer.epochs=2", f"++logger.t.root_dir={elsewhere}"])
    assert run.summary["status"] == "completed" and any(elsewhere.rglob("events.out.tfevents.*"))


def test_a_resumed_run_never_downloads_into_a_folder_its_saved_config_names(tmp_path, monkeypatch):
    """dataset.root with download=true in a saved config would make aecli fetch MNIST into that folder."""
    from aecli.data.images import Mnist

    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "no_cache"))
    spec = Mnist(root=str(tmp_path / "planted"), download=True)
    offline = spec.offline()
    assert offline.download is False and spec.download is True
    with pytest.raises(ConfigError, match="dataset.download=false"):
        offline.build()
    assert not (tmp_path / "planted").exists()


# ------------------------------------------------------------------ aecli-reproduce's folder
def test_reproduce_refuses_a_planted_logs_link_and_writes_nothing_through_it(tmp_path):
    """A `logs` symlink planted in a reproduction folder made --resume replace the file it points to."""
    out = tmp_path / "repro"
    out.mkdir()
    (out / reproduce.MANIFEST).write_text(json.dumps({"experiments": {}, "fast": True, "overrides": []}))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "nonlinear_2d.log").write_text("precious")
    os.symlink(victim, out / "logs")
    proc = reproduce_cli("--fast", "--resume", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and "is a symbolic link" in proc.stderr and proc.stderr.count("\n") == 1
    assert (victim / "nonlinear_2d.log").read_text() == "precious"


def test_reproduce_out_that_cannot_be_made_is_one_sentence(tmp_path):
    (tmp_path / "a_file").write_text("x")
    proc = reproduce_cli("--fast", "--out", str(tmp_path / "a_file" / "repro"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def reproduce_cli(*args: str, cwd: Path):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "aecli.reproduce", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
