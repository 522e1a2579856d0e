"""dataset=file: a user's .csv/.npy/.npz becomes the rows, labels, image shape, split and error-map
window it describes; every bad file is one sentence naming the file and the problem (exit 2, no
traceback, no completed run), and nothing in a file is ever unpickled."""

from __future__ import annotations

import json
import logging
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import read_summary, run_cli

import aecli
from aecli.config import compose
from aecli.data import FileData
from aecli.errors import ConfigError
from aecli.pipeline import run
from aecli.reporting import plots

QUIET = ["trainer.progress=false"]


def write_csv(path: Path, rows: list[list[object]], header: list[str] | None = None, sep: str = ",") -> Path:
    lines = ([sep.join(header)] if header else []) + [sep.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def points(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).round(4)


def both(data) -> np.ndarray:
    """Every row the data set holds (train, then validation), as float64."""
    return np.concatenate([data.train.numpy(), data.val.numpy()]).astype(np.float64)


def same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """The same rows in any order (the split permutes them), to float32 precision."""
    order = lambda x: x[np.lexsort(x.T[::-1])]  # noqa: E731
    return a.shape == b.shape and np.allclose(order(a), order(b), atol=1e-6)


# -------------------------------------------------------------------------------- .csv
def test_a_csv_with_a_header_gives_its_rows_and_columns_by_name_or_index(tmp_path):
    x = points()
    path = write_csv(tmp_path / "p.csv", x.tolist(), header=["a", "b", "c"])
    assert same_rows(both(FileData(path=str(path)).build()), x)
    assert same_rows(both(FileData(path=str(path), columns=["c", "a"]).build()), x[:, [2, 0]])
    assert same_rows(both(FileData(path=str(path), columns=[1]).build()), x[:, [1]])


def test_a_csv_without_a_header_semicolons_tabs_and_empty_lines_read_the_same(tmp_path):
    x = points()
    plain = write_csv(tmp_path / "plain.csv", x.tolist())
    semi = write_csv(tmp_path / "semi.csv", x.tolist(), header=["a", "b", "c"], sep=";")
    tabs = write_csv(tmp_path / "tabs.csv", x.tolist(), sep="\t")
    tabs.write_text("\n" + tabs.read_text().replace("\n", "\n\n"))  # blank lines are skipped
    for path in (plain, semi, tabs):
        assert same_rows(both(FileData(path=str(path)).build()), x), path
    with pytest.raises(ConfigError, match="names the column 'a', which .*plain.csv does not have .*no header"):
        FileData(path=str(plain), columns=["a"]).build()


def test_columns_the_run_does_not_learn_may_hold_text(tmp_path):
    rows = [[f"id{i}", *row] for i, row in enumerate(points().tolist())]
    path = write_csv(tmp_path / "ids.csv", rows, header=["id", "a", "b", "c"])
    assert FileData(path=str(path), columns=["a", "b"]).build().dim == 2
    with pytest.raises(ConfigError, match=r"ids.csv line 2, column 'id' holds 'id0', which is not a number"):
        FileData(path=str(path)).build()


def test_integer_labels_colour_by_class_and_float_labels_continuously(tmp_path):
    x = points(60)
    classes = np.arange(60) % 3
    rows = [[*row, float(c), c * 0.37] for row, c in zip(x.tolist(), classes)]  # "1.0": whole numbers
    path = write_csv(tmp_path / "l.csv", rows, header=["a", "b", "c", "kind", "size"])
    data = FileData(path=str(path), label_column="kind", columns=["a", "b", "c"]).build()
    assert data.val_color.dtype == np.int64 and set(data.val_color) == {0, 1, 2} and data.color_label == "kind"
    assert data.label_names == ("kind",) and np.array_equal(data.train_labels[:, 0], data.train_color)
    _, ticks = plots.color_kwargs(data.val_color)
    assert list(ticks) == [0, 1, 2]  # one discrete colour and tick per class
    data = FileData(path=str(path), label_column=4, columns=[0, 1, 2]).build()
    assert data.val_color.dtype == np.float64 and plots.color_kwargs(data.val_color)[1] is None
    assert data.train_labels is None  # only classes are kept as labels (the kNN of the mnist analyses)
    with pytest.raises(ConfigError, match="label_column='kind' is also one of dataset.columns"):
        FileData(path=str(path), label_column="kind", columns=["a", "kind"]).build()


def test_class_names_in_the_label_column_become_classes(tmp_path):
    rows = [[*row, ["setosa", "virginica", "versicolor"][i % 3]] for i, row in enumerate(points(30).tolist())]
    path = write_csv(tmp_path / "iris.csv", rows, header=["a", "b", "c", "species"])
    data = FileData(path=str(path), label_column="species", train_fraction=1).build()
    assert data.color_label == "species (0 = setosa, 1 = versicolor, 2 = virginica)"
    assert data.val_color.dtype == np.int64 and data.dim == 3
    # no header: the first row's text label alone does not make it a header
    plain = write_csv(tmp_path / "plain.csv", rows)
    assert len(FileData(path=str(plain), label_column=3, train_fraction=1).build().train) == 30
    rows[4][3] = " "  # a row without its label cannot be coloured: it counts as a row with a missing value
    unlabelled = write_csv(tmp_path / "unlabelled.csv", rows, header=["a", "b", "c", "species"])
    with pytest.raises(
        ConfigError, match=r"unlabelled.csv has 1 row with NaN, infinite, empty or out-of-range .* values \(line 6\)"
    ):
        FileData(path=str(unlabelled), label_column="species").build()
    data = FileData(path=str(unlabelled), label_column="species", drop_nonfinite=True, train_fraction=1).build()
    assert len(data.train) == 29 and set(data.train_color) == {0, 1, 2}


# -------------------------------------------------------------------------- arrays
def test_npy_tables_images_and_npz_arrays(tmp_path):
    x = points()
    np.save(tmp_path / "t.npy", x)
    assert same_rows(both(FileData(path=str(tmp_path / "t.npy")).build()), x)
    images = np.random.default_rng(1).uniform(size=(30, 5, 7))
    np.save(tmp_path / "i.npy", images)
    data = FileData(path=str(tmp_path / "i.npy")).build()
    assert data.image_shape == (5, 7) and data.dim == 35  # inferred, rows flattened row-major
    assert same_rows(both(data), images.reshape(30, 35))
    np.savez(tmp_path / "two.npz", table=x, images=images)
    assert FileData(path=str(tmp_path / "two.npz"), key="images").build().image_shape == (5, 7)
    assert same_rows(both(FileData(path=str(tmp_path / "two.npz"), key="table").build()), x)
    np.savez_compressed(tmp_path / "one.npz", only=x)
    assert same_rows(both(FileData(path=str(tmp_path / "one.npz")).build()), x)


def test_an_npz_key_that_is_missing_or_needed_is_one_sentence(tmp_path):
    np.savez(tmp_path / "two.npz", table=points(), images=np.zeros((3, 4, 4)))
    with pytest.raises(ConfigError, match="two.npz holds the arrays table, images; choose one with dataset.key"):
        FileData(path=str(tmp_path / "two.npz")).build()
    with pytest.raises(ConfigError, match="dataset.key=tabel is not an array of .*two.npz; it holds table, images"):
        FileData(path=str(tmp_path / "two.npz"), key="tabel").build()


# ----------------------------------------------------------------------- what a run learns
def test_standardize_uses_the_training_rows_statistics(tmp_path):
    x = points(200) * [1, 10, 100] + [5, -3, 1000]
    np.save(tmp_path / "s.npy", x)
    data = FileData(path=str(tmp_path / "s.npy"), standardize=True).build()
    assert torch.allclose(data.train.double().mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(data.train.double().std(dim=0, unbiased=False), torch.ones(3, dtype=torch.float64))
    assert not torch.allclose(data.val.double().mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-3)
    constant = x.copy()
    constant[:, 1] = 7.0
    np.save(tmp_path / "c.npy", constant)
    with pytest.raises(ConfigError, match="column 1 of the learnt columns is constant over the training rows"):
        FileData(path=str(tmp_path / "c.npy"), standardize=True).build()


def test_scale_divides_the_values(tmp_path):
    np.save(tmp_path / "u8.npy", np.full((20, 4, 4), 255, dtype=np.uint8))
    assert float(FileData(path=str(tmp_path / "u8.npy"), scale=255).build().train.max()) == 1.0


def test_the_error_map_window_is_the_2d_data_range_as_learnt(tmp_path):
    x = points(100)[:, :2] * [1, 10] + [50, 0]
    np.save(tmp_path / "p.npy", x)
    extent = FileData(path=str(tmp_path / "p.npy")).build().grid_extent
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = 0.1 * (hi - lo)
    assert extent == pytest.approx([lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]], rel=1e-5)
    standardized = FileData(path=str(tmp_path / "p.npy"), standardize=True).build()
    rows = both(standardized)
    assert standardized.grid_extent[0] < rows[:, 0].min() and rows[:, 0].max() < standardized.grid_extent[1]
    assert standardized.grid_extent[1] < 10  # the standardised range, not the file's (x around 50)
    assert FileData(path=str(tmp_path / "p.npy"), grid_extent=[0, 1, 2, 3]).build().grid_extent == (0, 1, 2, 3)
    np.save(tmp_path / "three.npy", points(100))
    assert FileData(path=str(tmp_path / "three.npy")).build().grid_extent is None


def test_the_split_is_seeded(tmp_path):
    np.save(tmp_path / "p.npy", points(100))
    split = lambda seed: FileData(path=str(tmp_path / "p.npy"), seed=seed).build()  # noqa: E731
    a, b, c = split(3), split(3), split(4)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert not torch.equal(a.val, c.val) and same_rows(both(a), both(c))
    assert (len(a.train), len(a.val)) == (85, 15)


def test_the_path_is_recorded_absolute(tmp_path, monkeypatch):
    np.save(tmp_path / "p.npy", points())
    monkeypatch.chdir(tmp_path)
    spec = FileData(path="p.npy")
    assert spec.path == str(tmp_path / "p.npy")
    monkeypatch.chdir(Path(__file__).parent)
    assert len(spec.build().train) == 34  # found from another folder, as resume= and load_run() must


# ------------------------------------------------------------------------- bad files
def in_process(args: list[str], tmp_path: Path, monkeypatch, capsys) -> tuple[object, str, Path]:
    """`aecli dataset=file ARGS` in this process: (exit status, stderr, run folder)."""
    from hydra.core.hydra_config import HydraConfig

    from aecli.cli import main

    run_dir = tmp_path / "run"
    argv = ["aecli", "dataset=file", *args, f"hydra.run.dir={run_dir}", "plots.enabled=false", *QUIET]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:  # Hydra's logging set-up and its HydraConfig, which later runs would otherwise inherit
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
        HydraConfig.instance().cfg = None
    return exit_info.value.code, capsys.readouterr().err, run_dir


def bad_files(folder: Path) -> None:
    """Every file the bad-file cases name, written into `folder`."""
    x = points(40)
    write_csv(folder / "points.txt", x.tolist())
    write_csv(folder / "words.csv", [[1, 2], [3, "abc"], [5, 6]], header=["x", "y"])
    write_csv(folder / "nan.csv", [[1, 2], ["nan", 3], [4, "inf"], [5, ""], *x[:, :2].tolist()], header=["x", "y"])
    write_csv(folder / "ragged.csv", [[1, 2], [3], [5, 6]], header=["x", "y"])
    write_csv(folder / "few.csv", x[:20].tolist())
    write_csv(folder / "one.csv", [[1, 2]])
    write_csv(folder / "pixels.csv", np.random.default_rng(0).uniform(size=(40, 16)).tolist())
    (folder / "empty.csv").write_text("")
    (folder / "empty.npy").write_bytes(b"")
    (folder / "header.csv").write_text("x,y\n\n")
    np.save(folder / "good.npy", x)
    (folder / "truncated.npy").write_bytes((folder / "good.npy").read_bytes()[:100])
    (folder / "not_numpy.npy").write_text("1,2\n3,4\n")
    np.save(folder / "strings.npy", np.array([["a", "b"]] * 40))
    np.save(folder / "images.npy", np.zeros((40, 4, 4)))


BAD = [  # (id, arguments, what stderr names besides the file)
    ("missing", ["dataset.path=missing.csv"], "missing.csv does not exist"),
    ("folder", ["dataset.path=folder.csv"], "folder.csv is not a file"),
    ("suffix", ["dataset.path=points.txt"], "dataset.path='points.txt' is not allowed: use a .csv, .npy or .npz file"),
    ("not-numeric", ["dataset.path=words.csv"], "words.csv line 3, column 'y' holds 'abc', which is not a number"),
    (
        "nan-rows",
        ["dataset.path=nan.csv"],
        "nan.csv has 3 rows with NaN, infinite, empty or out-of-range (beyond float32's 3.4e38) values (lines 3, 4, 5)",
    ),
    ("ragged", ["dataset.path=ragged.csv"], "ragged.csv line 3 has 1 value where the rows above have 2"),
    ("fewer-than-a-batch", ["dataset.path=few.csv"], "few.csv has 17 training rows, fewer than one batch"),
    ("one-row", ["dataset.path=one.csv"], "one.csv has 1 usable row, of which dataset.train_fraction=0.85"),
    ("empty-csv", ["dataset.path=empty.csv"], "empty.csv is empty"),
    ("empty-npy", ["dataset.path=empty.npy"], "empty.npy is empty"),
    ("header-only", ["dataset.path=header.csv"], "header.csv has a header but no rows"),
    ("truncated-npy", ["dataset.path=truncated.npy"], "truncated.npy cannot be read as a numpy array"),
    ("not-npy", ["dataset.path=not_numpy.npy"], "not_numpy.npy cannot be read as a numpy array"),
    ("strings-npy", ["dataset.path=strings.npy"], "strings.npy holds <U1 values, not real numbers"),
    ("image-shape", ["dataset.path=good.npy", "dataset.image_shape=[2,2]"], "needs 4 values per row, but"),
    ("image-columns", ["dataset.path=images.npy", "dataset.columns=[0]"], "images.npy holds images of shape 40x4x4"),
    (
        "image-too-small-for-conv",
        ["dataset.path=pixels.csv", "dataset.image_shape=[2,8]", "model=conv"],
        "halves each image twice, more than the 2x8 images of dataset=file allow; use at most 1 entry",
    ),
    (
        "label-name",
        ["dataset.path=words.csv", "dataset.label_column=z"],
        "words.csv does not have (its columns are x, y)",
    ),
]


@pytest.mark.parametrize("args, expect", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_file_is_one_sentence(args, expect, tmp_path, monkeypatch, capsys):
    bad_files(tmp_path)
    (tmp_path / "folder.csv").mkdir()
    code, stderr, run_dir = in_process(args, tmp_path, monkeypatch, capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("aecli: error: "), stderr
    assert expect in lines[0] and "Traceback" not in stderr
    assert all(json.loads(s.read_text())["status"] != "completed" for s in tmp_path.rglob("summary.json"))


class Planted:
    """What an attacker's pickle would run: it leaves a file behind when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_an_array_of_objects_is_refused_and_never_unpickled(suffix, tmp_path):
    marker = tmp_path / "unpickled"
    objects = np.array([Planted(marker), Planted(marker)], dtype=object)
    assert pickle.loads(pickle.dumps(objects[0])) is None and marker.exists()  # the payload works
    marker.unlink()
    path = tmp_path / f"objects{suffix}"
    np.save(path, objects, allow_pickle=True) if suffix == ".npy" else np.savez(path, data=objects)
    args = ["dataset=file", f"dataset.path={path}", f"hydra.run.dir={tmp_path / 'run'}", *QUIET]
    proc = run_cli(*args, cwd=tmp_path, check=False)
    assert not marker.exists(), "the file was unpickled"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (
        f"aecli: error: {path}{'' if suffix == '.npy' else ' array ' + repr('data')} holds Python objects, which "
        f"only pickle could read and aecli never unpickles; save an array of numbers"
    )
    assert read_summary(tmp_path / "run")["status"] == "failed"


def test_drop_nonfinite_drops_those_rows_and_the_run_completes(tmp_path):
    bad_files(tmp_path)
    path = tmp_path / "nan.csv"
    overrides = [f"dataset.path={path}", "dataset.drop_nonfinite=true", "trainer.epochs=2", "plots.enabled=false"]
    summary = run(compose(["dataset=file", *overrides, *QUIET]), tmp_path / "run")
    assert summary.status == "completed"
    data = aecli.load_run(tmp_path / "run").data()
    assert len(data.train) + len(data.val) == 41  # 44 rows, 3 of them with NaN, inf or an empty cell
    assert np.isfinite(both(data)).all()


# --------------------------------------------------------------------------- real runs
def test_a_noisy_circle_from_an_npy_file_trains_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 300)
    circle = np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.05, (300, 2))
    np.save(tmp_path / "circle.npy", circle)
    run_dir = tmp_path / "run"
    args = ["dataset=file", "dataset.path=circle.npy", "model=tanh", "trainer.epochs=200", f"hydra.run.dir={run_dir}"]
    run_cli(*args, *QUIET, cwd=tmp_path)
    summary = read_summary(run_dir)
    assert summary["status"] == "completed" and summary["dataset"] == "file"
    assert {"latent.png", "reconstruction.png", "error_map.png", "loss_curve.png"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert 0 < summary["metrics"]["error_map_share_below_threshold"] <= 1
    assert summary["final_val_loss"] < 0.01 * circle.var(axis=0).mean()  # far better than the mean point
    loaded = aecli.load_run(run_dir)
    assert loaded.config.dataset.path == str(tmp_path / "circle.npy")
    assert loaded.val_loss() == pytest.approx(summary["final_val_loss"], rel=1e-6)


def test_labelled_file_data_draws_discrete_classes_and_images_train_a_conv_net(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = [[int(d), *pixels] for d, pixels in zip(digits.target[:400], (digits.data[:400] * 16).astype(int).tolist())]
    path = write_csv(tmp_path / "digits.csv", rows, header=["digit", *(f"p{i}" for i in range(64))])
    drawn = {}
    latent = plots.latent

    def spy(codes, color, color_label, *args, **kwargs):
        drawn.update(color=color, color_label=color_label)
        return latent(codes, color, color_label, *args, **kwargs)

    monkeypatch.setattr(plots, "latent", spy)
    overrides = [f"dataset.path={path}", "dataset.label_column=digit", "dataset.image_shape=[8,8]", "dataset.scale=256"]
    summary = run(compose(["dataset=file", *overrides, "model=conv", "trainer.epochs=2", *QUIET]), tmp_path / "run")
    assert summary.status == "completed"
    assert drawn["color"].dtype == np.int64 and drawn["color_label"] == "digit"
    assert list(plots.color_kwargs(drawn["color"])[1]) == list(range(10))  # a colour per digit
    assert {"latent.png", "reconstruction.png"} <= {p.name for p in (tmp_path / "run").iterdir()}
