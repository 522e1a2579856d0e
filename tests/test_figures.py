"""Figures a reader can compare: the sweep's error maps share one colour scale read back from the
PNG, the loss curves one y-range (seed groups as mean and band), one name per figure, damaged data
files become notes, and plots.enabled=false writes no PNG in any experiment."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from aecli.reporting import comparison, plots
from aecli.reporting.comparison import (
    COLOR_LIMITS_KEY,
    ERROR_MAP_DATA,
    REPLACED,
    read_error_map_data,
    write_comparison_figure,
    write_curve_overlay,
    write_error_map_data,
)
from aecli.reporting.jobs import read_jobs, swept_keys
from aecli.reporting.report import build_report

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
MODELS = ["linear", "relu", "tanh"]
DATASETS = {"polynomial": (-2.0, 2.0, -2.0, 2.0), "spiral": (-4.0, 4.0, -4.0, 4.0)}


def fake_job(root: Path, num: int, overrides: list[str], err: np.ndarray | None, extent=(-2, 2, -2, 2)) -> Path:
    """A completed job folder: overrides, summary.json, metrics.csv and (given `err`) error_map.npz."""
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    (job / "summary.json").write_text(json.dumps({"status": "completed", "final_val_loss": 0.1 * (num + 1)}))
    rows = "".join(f"{e},{(num + 1) * 2.0**-e},{(num + 1) * 1.5 * 2.0**-e},0.001,0\n" for e in range(6))
    (job / "metrics.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n" + rows)
    if err is not None:
        data = np.random.default_rng(num).uniform(extent[0], extent[1], (50, 2))
        write_error_map_data(job / ERROR_MAP_DATA, err, extent, 0.1, data)
    return job


def grid(lo: float, hi: float, n: int = 30) -> np.ndarray:
    """An n x n error grid running from lo to hi (log-spaced)."""
    return np.geomspace(lo, hi, n * n).reshape(n, n)


@pytest.fixture
def sweep(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """2 data sets x 3 models; errors spanning very different ranges per job (one exact zero, one NaN)."""
    errors = {}
    for num, (name, model) in enumerate((d, m) for d in DATASETS for m in MODELS):
        err = grid(10.0 ** -(num + 2), 10.0 ** (num - 3))
        err[0, 0], err[1, 1] = (0.0, np.nan) if num == 2 else (err[0, 0], err[1, 1])
        errors[str(num)] = err
        fake_job(tmp_path, num, [f"dataset={name}", f"model={model}"], err, DATASETS[name])
    return tmp_path, errors


@pytest.fixture
def captured(monkeypatch) -> list:
    """The figures the comparison functions draw, kept for inspection (and still written)."""
    figures: list = []
    save = plots.save_figure

    def keep(fig, path, dpi, metadata=None):
        figures.append(fig)
        fig.canvas.draw()  # titles, legends and images as they will be written
        save(fig, path, dpi, metadata)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def test_comparison_error_map_shares_one_colour_scale_read_back_from_the_png(sweep, captured):
    root, errors = sweep
    jobs = read_jobs(root)
    assert write_comparison_figure(jobs, swept_keys(jobs), "error_map.png", root / "comparison_error_map.png")
    finite = np.concatenate([e[np.isfinite(e)] for e in errors.values()])
    expected = (finite[finite > 0].min(), finite.max())  # over every job's grid, the zero left out
    with Image.open(root / "comparison_error_map.png") as image:
        width = image.size[0]
        limits = json.loads(image.text[COLOR_LIMITS_KEY])
    assert (limits["vmin"], limits["vmax"]) == pytest.approx(expected, rel=1e-6) and limits["scale"] == "log"
    assert 1100 <= width <= 1300  # readable at page width
    (fig,) = captured
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 6 and len({(im.norm.vmin, im.norm.vmax) for im in images}) == 1  # one norm
    assert (images[0].norm.vmin, images[0].norm.vmax) == pytest.approx(expected, rel=1e-6)
    assert {type(im.norm) for im in images} == {matplotlib.colors.LogNorm}
    titled = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in titled] == MODELS * 2  # one title per tile, only what differs
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 1  # one colour bar for all
    assert sum(len(ax.collections) > 0 for ax in titled) == 6  # the training data drawn on every map


def test_a_torn_or_hostile_error_map_is_a_note_and_the_other_tiles_are_drawn(sweep, captured):
    root, errors = sweep
    path = root / "1" / ERROR_MAP_DATA
    path.write_bytes(path.read_bytes()[:200])  # torn: a kill in the middle of a copy
    hostile = root / "4" / ERROR_MAP_DATA  # an object array: loading it would unpickle
    np.savez(hostile, err=np.array([{"a": 1}], dtype=object), extent=np.zeros(4), threshold=0.1, data=np.zeros((1, 2)))
    result = build_report(root, figures=("error_map.png",))
    assert "comparison_error_map.png" in result["files"] and result["statuses"] == {"completed": 6}
    md = (root / "summary.md").read_text()
    assert "job 1: error_map.npz: could not read it" in md and "job 4: error_map.npz: could not read it" in md
    kept = [e for num, e in errors.items() if num not in ("1", "4")]
    finite = np.concatenate([e[np.isfinite(e)] for e in kept])
    with Image.open(root / "comparison_error_map.png") as image:
        limits = json.loads(image.text[COLOR_LIMITS_KEY])
    assert limits["vmin"] == pytest.approx(finite[finite > 0].min()) and limits["vmax"] == pytest.approx(finite.max())
    fig = captured[0]
    assert sum(bool(ax.get_images()) for ax in fig.axes) == 4  # the four readable jobs
    assert sum("no error map" in t.get_text() for ax in fig.axes for t in ax.texts) == 2


def saved(**arrays):
    """A damage that writes an npz of the four fields, `arrays` replacing the good ones (None: left out)."""
    good = {"err": np.zeros((3, 3)), "extent": [0.0, 1, 0, 1], "threshold": 0.1, "data": np.zeros((1, 2))}
    fields = {k: v for k, v in {**good, **arrays}.items() if v is not None}
    return lambda path: np.savez(path, **fields)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 not a zip"), "not an npz archive"),
        (saved(data=None), "holds"),
        (saved(err=np.zeros(9)), "grid has shape"),
        (saved(err=np.zeros((3, 3), dtype=np.int64)), "grid is int64"),
        (saved(extent=[1.0, 0, 0, 1]), "window is empty"),
        (saved(threshold=-1.0), "threshold"),
        (saved(data=np.full((2, 2), np.inf)), "data is not finite"),
        (saved(data=np.zeros((2, 3))), "data has"),
    ],
)
def test_error_map_data_is_checked_before_it_is_drawn(tmp_path, damage, reason):
    path = tmp_path / "error_map.npz"
    damage(path)
    with pytest.raises(ValueError, match=reason):
        read_error_map_data(path)
    write_error_map_data(path, np.ones((3, 3)), [0, 1, 0, 1], 0.1, np.zeros((2, 2)))  # what aecli writes reads back
    assert read_error_map_data(path)["err"].shape == (3, 3)


def test_a_grid_declared_larger_than_any_real_one_is_refused_unread(tmp_path, monkeypatch):
    """A zip member that says it expands beyond any real grid (a zip bomb) is refused before decompressing."""
    import zipfile

    monkeypatch.setattr(comparison, "MAX_MAP_BYTES", 100_000)
    path = tmp_path / "error_map.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in comparison.ERROR_MAP_FIELDS:
            archive.writestr(f"{name}.npy", b"\0" * (200_000 if name == "err" else 10))
    assert path.stat().st_size < 2_000
    with pytest.raises(ValueError, match="expands to more than"):
        read_error_map_data(path)


def test_loss_curves_have_one_name_a_shared_y_range_and_the_legend_outside(sweep, captured):
    root, _ = sweep
    for job in root.iterdir():
        if job.is_dir():
            matplotlib.image.imsave(job / "loss_curve.png", np.full((20, 30, 3), 0.5))
    result = build_report(root, figures=("loss_curve.png", "error_map.png"))  # the former default
    assert "comparison_loss_curves.png" in result["files"]
    assert not (root / "comparison_loss_curve.png").exists()  # no tiled twin of the same curves
    fig = next(f for f in captured if any(ax.get_lines() for ax in f.axes))
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_title() for ax in panels] == ["dataset=polynomial", "dataset=spiral"]
    assert len({ax.get_ylim() for ax in panels}) == 1 and {ax.get_yscale() for ax in panels} == {"log"}
    legend = panels[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [*MODELS, "train", "validation"]
    box, right_edge = legend.get_window_extent(), max(ax.get_window_extent().x1 for ax in panels)
    assert box.x0 >= right_edge  # beside the data, never over it


def test_seeds_are_drawn_as_a_mean_with_a_band(tmp_path, captured):
    for num, (lr, seed) in enumerate((lr, seed) for lr in ("0.1", "0.01") for seed in (1, 2, 3)):
        fake_job(tmp_path, num, [f"optimizer.lr={lr}", f"seed={seed}"], None)
    jobs = read_jobs(tmp_path)
    assert write_curve_overlay(jobs, swept_keys(jobs), tmp_path / "curves.png", steps=False)
    (fig,) = captured
    (ax,) = [ax for ax in fig.axes if ax.get_lines()]
    assert len(ax.get_lines()) == 4  # 2 groups x (train, validation), not one line per seed
    bands = [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]
    assert len(bands) == 4
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["lr=0.1 (n=3)", "lr=0.01 (n=3)"]
    train = ax.get_lines()[0].get_ydata()  # the group's mean: (1 + 2 + 3) / 3 * 2^-epoch
    assert np.allclose(train, 2.0 * 2.0 ** -np.arange(6))
    top = bands[0].get_paths()[0].vertices[:, 1].max()  # mean + sample std at epoch 0: 2 + 1
    assert top == pytest.approx(2 + 1)


def test_no_config_tiles_a_figure_that_a_curve_comparison_replaces():
    from aecli.hydra_hooks import SweepComparison

    listed = [OmegaConf.load(REPO / "conf" / "config.yaml").hydra.callbacks.sweep_comparison.figures]
    for name in EXPERIMENTS:
        conf = OmegaConf.load(REPO / "conf" / "experiment" / f"{name}.yaml")
        listed.append(OmegaConf.select(conf, "hydra.callbacks.sweep_comparison.figures", default=[]))
    assert not {f for figures in listed for f in figures} & REPLACED.keys()
    assert not set(SweepComparison().figures) & REPLACED.keys()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_plots_disabled_writes_no_png_but_every_number(experiment, run_in_process, request):
    """Every experiment as a smoke run with plots.enabled=false (run_in_process sets it): no PNG
    anywhere in the run folder (the source run's included), and every analysis metric still there."""
    from test_smoke import EXPECTED

    extra = []
    if experiment.startswith("mnist"):
        folder, _ = request.getfixturevalue("tiny_mnist")
        extra = [f"dataset.root={folder}", "dataset.download=false"]
    summary, run_dir = run_in_process(f"experiment={experiment}", "trainer.fast_dev_run=true", *extra)
    assert summary["status"] == "completed", summary.get("error")
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.png")) == []
    assert EXPECTED[experiment][1] <= set(summary["metrics"])


def test_tiles_name_only_what_differs_and_data_sets_make_the_rows(tmp_path):
    job = {"overrides": {"model": "relu_nobias", "optimizer.lr": "0.01", "seed": "2"}, "dir": tmp_path / "3"}
    assert comparison.tile_title(job, ["model"]) == "relu_nobias"  # a name says itself
    assert comparison.tile_title(job, ["seed"]) == "seed=2"  # a bare number needs its key
    assert comparison.tile_title(job, ["model", "optimizer.lr"]) == "model=relu_nobias, lr=0.01"
    assert comparison.tile_title(job, []) == "job 3"
    assert comparison.data_first(["model", "dataset.noise", "seed"]) == ["dataset.noise", "model", "seed"]


def test_a_sweep_of_seeds_alone_is_one_band(tmp_path, captured):
    """Only `seed` swept (e.g. a stopped seed sweep): one group of every seed, labelled as such."""
    for num, seed in enumerate((1, 2, 3)):
        fake_job(tmp_path, num, [f"seed={seed}"], None)
    jobs = read_jobs(tmp_path)
    assert write_curve_overlay(jobs, swept_keys(jobs), tmp_path / "curves.png", steps=False)
    (fig,) = captured
    (ax,) = [ax for ax in fig.axes if ax.get_lines()]
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "every seed (n=3)"
    assert np.allclose(ax.get_lines()[0].get_ydata(), 2.0 * 2.0 ** -np.arange(6))


def test_a_wide_dense_figure_is_tiled_one_a_row_so_it_stays_readable(tmp_path, captured):
    """Three jobs' 1400 px wide figures side by side would shrink to a quarter: one a row instead,
    each title naming its job's values; narrow figures stay in a grid."""
    for num, reg in enumerate(("none", "activation_l1", "activation_l2")):
        job = fake_job(tmp_path, num, [f"regularizer={reg}"], None)
        Image.new("RGB", (1400, 700), "white").save(job / "wide.png")
        Image.new("RGB", (640, 560), "white").save(job / "narrow.png")
    jobs = read_jobs(tmp_path)
    assert write_comparison_figure(jobs, swept_keys(jobs), "wide.png", tmp_path / "wide_cmp.png")
    assert write_comparison_figure(jobs, swept_keys(jobs), "narrow.png", tmp_path / "narrow_cmp.png")
    wide, narrow = captured
    tiles = [ax for ax in wide.axes if ax.get_images()]
    assert len({round(ax.get_position().x0, 3) for ax in tiles}) == 1  # one column
    assert [ax.get_title() for ax in tiles] == ["none", "activation_l1", "activation_l2"]
    assert len({round(ax.get_position().x0, 3) for ax in narrow.axes if ax.get_images()}) == 3  # one row of three
