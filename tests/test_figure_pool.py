"""Figures drawn by worker processes (aecli.reporting.drawing), as hydra/launcher=vectorized draws its
members' figures: the same bytes as drawn inline, a worker's failure fails the run in the figure's
phase, a stop while waiting leaves no figure being drawn, a killed worker costs no figure; and the
launcher's compositions reused from Hydra's batch check."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import read_summary, run_cli

from aecli import signals
from aecli.reporting import drawing, plots
from hydra_plugins.aecli_vectorized_launcher.vectorized_launcher import RememberingLoader


@pytest.fixture(scope="module")
def pool():
    with drawing.figure_pool(2):
        yield drawing._pool[0]


def curve(path, epochs: int = 40) -> None:
    losses = list(np.geomspace(1.0, 0.01, epochs + 1))
    plots.loss_curve(list(range(epochs + 1)), losses, losses[::-1], "polynomial / tanh", "mse", path)


def test_a_worker_draws_the_same_png_as_the_run_itself(pool, tmp_path):
    curve(tmp_path / "inline.png")  # no run collecting figures: drawn here
    phases: list[str] = []
    with drawing.run_figures(failed_in=phases.append):
        curve(tmp_path / "pooled.png")
        assert len(drawing._run.pending) == 1  # sent to a worker
    assert (tmp_path / "pooled.png").read_bytes() == (tmp_path / "inline.png").read_bytes()
    assert phases == []


def test_a_figure_failing_in_a_worker_fails_the_run_in_its_phase(pool, tmp_path):
    phases: list[str] = []
    with pytest.raises(TypeError, match="Invalid shape"), drawing.run_figures(failed_in=phases.append):
        drawing.set_phase("analyses")
        plots.error_map(np.linspace(0, 1, 4), [0, 1, 0, 1], 0.5, "t", tmp_path / "e.png")  # a 1-D "grid"
        curve(tmp_path / "fine.png")
    assert phases == ["analyses"] and (tmp_path / "fine.png").is_file() and not (tmp_path / "e.png").exists()


def test_a_stop_while_waiting_ends_the_run_with_no_figure_still_drawn(pool, tmp_path):
    signals.reset()
    try:
        with pytest.raises(signals.Stopped) as stopped, drawing.run_figures(failed_in=lambda phase: None):
            for i in range(6):
                curve(tmp_path / f"{i}.png", epochs=400)
            pending = list(drawing._run.pending)
            signals.request("test")
        assert stopped.value.phase == "figures"
        assert all(p.future.done() for p in pending) and any(p.future.cancelled() for p in pending)
        drawn = sorted(tmp_path.glob("*.png"))
        assert len(drawn) < 6 and not list(tmp_path.glob("*.tmp*"))  # whole PNGs only
    finally:
        signals.reset()


def test_a_stop_after_every_figure_was_drawn_lets_the_run_complete(pool, tmp_path):
    """A vectorized member paused while the next ones finished: its figures are drawn, so a stop asked
    for meanwhile does not make it "interrupted" when it comes back to wait for them."""
    signals.reset()
    try:
        with drawing.run_figures(failed_in=lambda phase: None):
            curve(tmp_path / "a.png")
            (pending,) = drawing._run.pending
            pending.future.result(timeout=60)
            signals.request("test")
        assert (tmp_path / "a.png").is_file()
    finally:
        signals.reset()


def test_a_killed_worker_costs_no_figure(tmp_path):
    with drawing.figure_pool(1):
        with drawing.run_figures(failed_in=lambda phase: None):
            for process in drawing._pool[0]._processes.values():
                process.kill()
            curve(tmp_path / "a.png")
            curve(tmp_path / "b.png")
        assert not drawing._pool  # the broken pool was closed; later figures draw inline
        with drawing.run_figures(failed_in=lambda phase: None):
            curve(tmp_path / "c.png")
    assert [p.name for p in sorted(tmp_path.glob("*.png"))] == ["a.png", "b.png", "c.png"]


def test_draw_all_gives_each_calls_result_in_order_even_from_a_broken_pool(tmp_path):
    calls = [functools.partial(curve, tmp_path / f"{i}.png", epochs=10 * (i + 1)) for i in range(3)]
    assert drawing.draw_all(calls) == [None] * 3  # no pool: drawn here
    inline = [(tmp_path / f"{i}.png").read_bytes() for i in range(3)]
    assert drawing.draw_all([functools.partial(divmod, 7, d) for d in (2, 3)]) == [(3, 1), (2, 1)]
    with drawing.figure_pool(1):
        for process in drawing._pool[0]._processes.values():
            process.kill()
        for path in tmp_path.glob("*.png"):
            path.unlink()
        assert drawing.draw_all(calls) == [None] * 3 and not drawing._pool  # drawn here after all
    assert [(tmp_path / f"{i}.png").read_bytes() for i in range(3)] == inline


def test_a_vectorized_sweep_draws_the_figures_each_job_would_draw_itself(tmp_path):
    args = ["-m", "model=tanh,relu", "trainer.epochs=3", "trainer.progress=false", "hydra/launcher=vectorized"]
    run_cli(*args, f"hydra.sweep.dir={tmp_path / 'pool'}", cwd=tmp_path)
    run_cli(*args, "hydra.launcher.figure_workers=0", f"hydra.sweep.dir={tmp_path / 'inline'}", cwd=tmp_path)
    for job in ("0", "1"):
        pooled, inline = tmp_path / "pool" / job, tmp_path / "inline" / job
        assert read_summary(pooled)["status"] == "completed" and read_summary(pooled)["group_size"] == 2
        names = sorted(p.name for p in inline.glob("*.png"))
        assert names == ["error_map.png", "latent.png", "loss_curve.png", "reconstruction.png"]
        for name in names:
            assert (pooled / name).read_bytes() == (inline / name).read_bytes(), name
    # the sweep report's figures, drawn by the same workers side by side: the same bytes
    names = sorted(p.name for p in (tmp_path / "inline").glob("comparison_*.png"))
    assert names == ["comparison_error_map.png", "comparison_loss_curves.png"]
    for name in names:
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes(), name
    for sweep in ("pool", "inline"):  # job 1 went on to its analyses before job 0 waited for its figures and ended
        jobs = tmp_path / sweep
        assert (jobs / "1" / "error_map.npz").stat().st_mtime_ns <= (jobs / "0" / "summary.json").stat().st_mtime_ns


def test_the_sweep_report_drawn_by_workers_is_the_one_drawn_here_notes_included(tmp_path):
    import shutil

    from aecli.reporting.report import build_report

    args = ["-m", "model=tanh,relu", "trainer.epochs=2", "trainer.progress=false"]
    run_cli(*args, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    (tmp_path / "sweep" / "0" / "error_map.npz").write_bytes(b"PK\x03\x04")  # torn: a note on job 0
    latent = tmp_path / "sweep" / "1" / "latent.png"
    latent.write_bytes(latent.read_bytes()[:300])  # torn: a placeholder tile and a note on job 1
    shutil.copytree(tmp_path / "sweep", tmp_path / "pooled")
    figures = ("error_map.png", "latent.png")
    here = build_report(tmp_path / "sweep", figures)
    with drawing.figure_pool(2):
        pooled = build_report(tmp_path / "pooled", figures)
    assert pooled == here and "comparison_latent.png" in here["files"]
    md = (tmp_path / "pooled" / "summary.md").read_text()
    assert md.replace("pooled", "sweep") == (tmp_path / "sweep" / "summary.md").read_text()
    assert "job 0: error_map.npz: could not read it" in md and "- job 1: latent.png: could not read it (" in md
    for name in here["files"]:
        if name.endswith(".png"):
            assert (tmp_path / "pooled" / name).read_bytes() == (tmp_path / "sweep" / name).read_bytes(), name


def test_a_bad_figure_workers_setting_is_one_sentence(tmp_path):
    proc = run_cli("-m", "hydra/launcher=vectorized", "hydra.launcher.figure_workers=-1", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr == (
        "aecli: error: hydra.launcher.figure_workers=-1 is not allowed: use null, 0 or more\n"
    )


class CountingLoader:
    def __init__(self) -> None:
        self.composed: list[tuple[str, ...]] = []

    def load_sweep_config(self, master_config, sweep_overrides):
        self.composed.append(tuple(sweep_overrides))
        return {"overrides": list(sweep_overrides), "n": len(self.composed)}

    def other(self) -> str:
        return "the wrapped loader's own"


def test_the_launcher_takes_the_configs_hydra_composed_to_check_the_batch():
    inner, master = CountingLoader(), object()
    loader = RememberingLoader(inner)
    batch = [["model=tanh"], ["model=relu"], ["model=tanh"]]  # a job twice: two configs, each taken once
    checked = [loader.load_sweep_config(master, job) for job in batch]
    taken = [loader.take_sweep_config(master, job) for job in batch]
    assert len(inner.composed) == 3 and sorted(map(id, taken)) == sorted(map(id, checked))
    assert loader.take_sweep_config(master, ["model=tanh"])["n"] == 4  # nothing left: composed now
    assert loader.take_sweep_config(object(), ["model=relu"])["n"] == 5  # another master config: composed
    assert loader.made == {} and loader.other() == "the wrapped loader's own"
