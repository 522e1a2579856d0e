"""The Python API (aecli/api.py): train, load a run or a sweep, use the model from numpy or torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, run_cli

import aecli
from aecli.config import ConfigError

TINY = [
    "dataset=spiral",
    "dataset.n=200",
    "trainer.epochs=5",
    "trainer.num_threads=1",
    "trainer.progress=false",
    "plots.enabled=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run with dropout (so eval mode matters), trained through aecli.run."""
    return aecli.run([*TINY, "model.dropout=0.3"], output_dir=tmp_path_factory.mktemp("api") / "run")


def test_import_aecli_stays_light():
    code = "import sys, aecli; aecli.__version__; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert aecli.__version__ == "0.1.0"
    assert callable(aecli.load_run) and callable(aecli.load_sweep) and callable(aecli.run)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Python API\n", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert "aecli.run(" in code and "aecli.load_run(" in code and "reconstruct(" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Python API)", "exec"), {})  # noqa: S102  (the README's own example)
    recomputed, logged = map(float, capsys.readouterr().out.split())
    assert recomputed == pytest.approx(logged, rel=1e-6, abs=1e-9)
    assert len(list((tmp_path / "outputs").glob("*/*/checkpoints/last.pt"))) == 1  # the CLI's folder layout


def test_run_writes_the_cli_files_and_loads(trained):
    assert trained.summary["status"] == "completed"
    for name in ("metrics.csv", "summary.json", "aecli.log", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (trained.path / name).is_file(), name
    assert trained.config.dataset.name == "spiral" and trained.config.model.dropout == 0.3
    assert list(trained.metrics["epoch"]) == [0, 1, 2, 3, 4, 5]
    assert trained.metrics["val_loss"][-1] == trained.summary["final_val_loss"]
    assert "6 rows" in repr(trained.metrics) and "val_loss" in repr(trained.metrics)
    assert not trained.model.training


def test_load_run_from_folder_and_checkpoint_agree(trained, tmp_path):
    from_dir = aecli.load_run(trained.path)
    from_ckpt = aecli.load_run(trained.path / "checkpoints" / "last.pt")
    assert from_dir.path == from_ckpt.path == trained.path
    assert from_dir.summary == from_ckpt.summary == json.loads((trained.path / "summary.json").read_text())
    assert from_dir.config == from_ckpt.config
    a, b = from_dir.model.state_dict(), from_ckpt.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # best.pt (the lowest-validation-loss epoch) is found the same way
    best = aecli.load_run(trained.path / "checkpoints" / "best.pt")
    assert best.path == trained.path and best.checkpoint.name == "best.pt"
    assert best.val_loss() == pytest.approx(best.summary["best_val_loss"], rel=1e-6, abs=1e-9)
    also_best = aecli.load_run(trained.path, checkpoint="best")
    assert torch.equal(also_best.model.encoder[0].weight, best.model.encoder[0].weight)
    with pytest.raises(ValueError, match="no checkpoint"):
        aecli.load_run(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no checkpoint.*nope.pt"):
        aecli.load_run(trained.path, checkpoint="nope")


def test_val_loss_reproduces_the_logged_one(trained):
    loaded = aecli.load_run(trained.path)
    assert loaded.val_loss() == pytest.approx(loaded.summary["final_val_loss"], rel=1e-6, abs=1e-9)
    assert loaded.data() is loaded.data()  # built once


def test_encode_decode_reconstruct_types_and_shapes(trained):
    x = trained.data().val  # (30, 2) float32 tensor
    n, latent = len(x), trained.config.model.latent_dim
    for given in (x, x.double(), x.numpy(), x.numpy().astype(np.float64)):
        z, x_hat = trained.encode(given), trained.reconstruct(given)
        kind = torch.Tensor if torch.is_tensor(given) else np.ndarray
        assert isinstance(z, kind) and isinstance(x_hat, kind) and isinstance(trained.decode(z), kind)
        assert tuple(z.shape) == (n, latent) and tuple(x_hat.shape) == (n, 2)
        assert z.dtype == given.dtype and x_hat.dtype == given.dtype
        if kind is torch.Tensor:
            assert not x_hat.requires_grad
        np.testing.assert_allclose(np.asarray(x_hat), np.asarray(trained.decode(trained.encode(given))), rtol=1e-6)
    # one sample: 1-D in, 1-D out; eval mode: dropout off, so repeated calls agree
    one = trained.reconstruct(x.numpy()[0])
    assert one.shape == (2,) and trained.encode(x[0]).shape == (latent,)
    np.testing.assert_array_equal(one, trained.reconstruct(x.numpy())[0])
    np.testing.assert_array_equal(trained.reconstruct(x.numpy()), trained.reconstruct(x.numpy()))
    assert not trained.model.training


def test_run_rejects_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="optimizer.lr"):
        aecli.run([*TINY, "optimizer.lr=0"], output_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="trainer.epochs=abc"):
        aecli.run([*TINY, "trainer.epochs=abc"], output_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="dataset=nope is not an option of dataset"):
        aecli.run(["dataset=nope"], output_dir=tmp_path / "c")


def test_run_resumes_a_run_in_its_folder(tmp_path):
    first = aecli.run([*TINY, "trainer.epochs=2"], output_dir=tmp_path / "run")
    assert first.summary["epochs"] == 2
    resumed = aecli.run([f"resume={first.path}", "trainer.epochs=4"])
    assert resumed.path == first.path and resumed.summary["status"] == "completed"
    assert list(resumed.metrics["epoch"]) == [0, 1, 2, 3, 4]
    assert "epochs: 2\n" in (first.path / ".hydra" / "config.yaml").read_text()  # the original record stays
    assert "epochs: 4\n" in (first.path / ".hydra" / "resume" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="own folder"):
        aecli.run([f"resume={first.path}", "trainer.epochs=6"], output_dir=tmp_path / "elsewhere")


def test_load_sweep_reads_jobs_and_marks_failures(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, "optimizer.lr=0.01,0", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path, check=False)
    assert proc.returncode == 1  # one job failed; the sweep went on
    sweep = aecli.load_sweep(sweep_dir)
    assert len(sweep) == 2 and [job.number for job in sweep] == [0, 1]
    ok, bad = sweep.jobs
    assert ok.overrides["optimizer.lr"] == "0.01" and bad.overrides["optimizer.lr"] == "0"
    assert ok.overrides["dataset"] == "spiral"
    assert ok.ok and not bad.ok and bad.status == "failed" and "ConfigError" in bad.summary["error"]
    assert sweep.completed == [ok] and sweep.failed == [bad] and sweep.best() is ok
    assert "failed: ConfigError" in repr(sweep)
    run = ok.load()  # models load only when asked
    assert run.path == ok.path and run.config.optimizer.lr == 0.01
    assert run.val_loss() == pytest.approx(ok.summary["final_val_loss"], rel=1e-6, abs=1e-9)
    with pytest.raises(ValueError, match="no checkpoint"):
        bad.load()
    with pytest.raises(ValueError, match="no job folders"):
        aecli.load_sweep(ok.path)
