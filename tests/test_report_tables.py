"""The sweep report's tables: seeds aggregated into groups (mean ± std, n, Welch's t-test), "best" ranked
within each data set, baselines beside the loss, config differences without noise, sortable columns."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from omegaconf import OmegaConf
from scipy import stats

from aecli.reporting.jobs import config_differences, read_jobs, seed_groups, separations, swept_keys
from aecli.reporting.report import build_report


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory) -> Path:
    """A real sweep: two models, three seeds each, two epochs."""
    root = tmp_path_factory.mktemp("seeds")
    run_cli(
        "-m",
        "dataset=polynomial",
        "model=tanh,linear",
        "seed=1,2,3",
        "trainer.epochs=2",
        "trainer.num_threads=1",
        "plots.enabled=false",
        "hydra/job_logging=disabled",
        f"hydra.sweep.dir={root / 's'}",
        cwd=root,
    )
    return root / "s"


def losses(sweep: Path, model: str) -> list[float]:
    """final_val_loss of each job of `model`, read straight from its summary.json."""
    out = []
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        if f"model={model}" in (job / ".hydra" / "overrides.yaml").read_text():
            out.append(json.loads((job / "summary.json").read_text())["final_val_loss"])
    return out


def test_seeds_are_grouped_with_numpys_mean_and_std_and_scipys_welch_p(seed_sweep):
    jobs = read_jobs(seed_sweep)
    groups = seed_groups(jobs)
    assert [(g.key, len(g.jobs)) for g in groups] == [({"model": "tanh"}, 3), ({"model": "linear"}, 3)]
    for g in groups:
        values = losses(seed_sweep, g.key["model"])
        mean, std, n = g.stats("final_val_loss")
        assert n == 3 and mean == pytest.approx(np.mean(values), rel=1e-12)
        assert std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    (sep,) = separations(groups, "final_val_loss")
    best, other = sorted(["tanh", "linear"], key=lambda m: np.mean(losses(seed_sweep, m)))
    assert sep.best.key == {"model": best} and sep.next is not None and sep.next.key == {"model": other}
    welch = stats.ttest_ind(losses(seed_sweep, best), losses(seed_sweep, other), equal_var=False).pvalue
    assert sep.p_value == pytest.approx(welch, rel=1e-12)
    rows = {r["model"]: r for r in csv.DictReader(open(seed_sweep / "summary_groups.csv"))}
    assert float(rows[best]["final_val_loss_mean"]) == pytest.approx(np.mean(losses(seed_sweep, best)), rel=1e-12)
    assert float(rows[best]["p_value_vs_next"]) == pytest.approx(welch, rel=1e-12) and rows[best]["best"] == "yes"
    assert rows[other]["n"] == "3" and rows[other]["best"] == ""
    md = (seed_sweep / "summary.md").read_text()
    assert "## Seeds aggregated" in md and f"best on polynomial: model={best} (" in md
    assert f"(Welch's t-test p = {welch:.3g}" in md


def test_one_seed_per_group_is_n_too_small(seed_sweep):
    jobs = [j for j in read_jobs(seed_sweep) if j["overrides"]["seed"] == "1" or j["overrides"]["model"] == "tanh"]
    (sep,) = separations(seed_groups(jobs, swept_keys(read_jobs(seed_sweep))), "final_val_loss")
    assert sep.p_value is None and sep.verdict().startswith("n too small")
    loner = next(g for g in seed_groups(jobs, ["model", "seed"]) if g.key == {"model": "linear"})
    mean, std, n = loner.stats("final_val_loss")
    assert n == 1 and np.isnan(std) and mean == losses(seed_sweep, "linear")[0]


def test_baseline_columns_sit_beside_the_loss_and_match_each_jobs_metrics(seed_sweep):
    rows = list(csv.DictReader(open(seed_sweep / "summary.csv")))
    header = list(rows[0])
    assert header.index("final_val_loss") + 1 == header.index("baseline_mean_loss")
    assert header.index("baseline_pca_loss") + 1 == header.index("vs_pca")
    for r in rows:
        metrics = json.loads((seed_sweep / r["job"] / "summary.json").read_text())["metrics"]
        assert float(r["baseline_pca_loss"]) == metrics["baseline_pca_loss"]
        # linear and tanh have a 3-D code on 2-D data: PCA is exact, not a failure
        assert r["vs_pca"] == "PCA-3 exact" and "beats_pca" not in metrics


def fake_job(root: Path, num: int, overrides: list[str], summary: dict, config: dict) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create(config), job / ".hydra" / "config.yaml")
    (job / "summary.json").write_text(json.dumps({"status": "completed", **summary}))


def two_datasets(root: Path) -> Path:
    """Four jobs on two data sets; the spiral ones' losses are all lower than polynomial's best, and
    job 2 is worse than PCA."""
    cases = [("polynomial", 0.5, 1.0), ("polynomial", 0.3, 1.0), ("spiral", 0.05, 0.0), ("spiral", 0.01, 1.0)]
    for num, (dataset, loss, beats) in enumerate(cases):
        poly = dataset == "polynomial"
        own = {"a": 1.0} if poly else {"theta_max": 50.0}  # each data set's own settings
        config = {
            "dataset": {"_target_": f"aecli.data.{dataset}", "name": dataset, **own},
            "model": {"name": f"m{num}", "dropout": None},
            "optimizer": {"lr": 0.001 * (num + 1)},
        }
        metrics = {"baseline_pca_loss": 0.02, "baseline_pca_code_size": 1.0, "baseline_pca_exact": 0.0}
        summary = {"dataset": dataset, "final_val_loss": loss, "metrics": {**metrics, "beats_pca": beats}}
        fake_job(root, num, [f"dataset={dataset}", f"optimizer.lr={0.001 * (num + 1)}"], summary, config)
    return root


def test_best_is_ranked_within_each_data_set_never_across(tmp_path):
    result = build_report(two_datasets(tmp_path), figures=())
    assert result["best_per_dataset"] == {"polynomial": "1", "spiral": "3"}
    assert result["best"] == "best on polynomial: job 1; best on spiral: job 3"
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [(r["job"], r["best"]) for r in rows] == [("1", "yes"), ("0", ""), ("3", "yes"), ("2", "")]
    md = (tmp_path / "summary.md").read_text()
    assert "best on polynomial: job 1; best on spiral: job 3" in md
    assert "| **1 best** |" in md and "| **3 best** |" in md and "| 2 \u26a0 |" in md
    assert next(r for r in rows if r["job"] == "2")["vs_pca"] == "\u26a0 WORSE than PCA-1 (2.5x)"
    assert not (tmp_path / "summary_groups.csv").exists()  # no seed swept: no group table


def test_config_differences_keep_what_an_override_changed_and_drop_noise(tmp_path):
    jobs = read_jobs(two_datasets(tmp_path))
    assert config_differences(jobs) == ["dataset.name", "model.name", "optimizer.lr"]
    build_report(tmp_path, figures=())
    page = (tmp_path / "index.html").read_text()
    diffs = page.split("config values that differ between jobs:</p><pre>")[1].split("</pre>")[0]
    assert diffs == "dataset.name: &quot;polynomial&quot;\nmodel.name: &quot;m0&quot;\noptimizer.lr: 0.001"


LOSSES = [9.0, 10.0, 1e-05, 0.39, 0.4, 0.002, 100.0, 0.5, 3e-07, 2.0, 0.011, 0.0999]  # text order is not number order


def test_clicking_a_column_header_sorts_the_table_by_its_numbers(tmp_path):
    from test_sweeps import browser

    sweep = tmp_path / "sweep"
    for num, loss in enumerate(LOSSES):
        summary = {"dataset": "spiral", "final_val_loss": loss}
        fake_job(sweep, num, [f"model=m{num % 2}", f"seed={num // 2}"], summary, {"seed": num // 2})
    build_report(sweep, figures=())

    probe = """<script>window.addEventListener("load", () => {
      const heads = id => [...document.querySelectorAll(`#${id} thead th`)];
      const column = (id, name) => heads(id).findIndex(h => h.textContent === name);
      const cells = (id, name) => [...document.querySelectorAll(`#${id} tbody tr`)].map(r => r.cells[column(id, name)]);
      const click = (id, name) => heads(id)[column(id, name)].click();
      const out = {};
      click("summary", "final_val_loss");
      out.up = cells("summary", "final_val_loss").map(c => parseFloat(c.dataset.v));
      click("summary", "final_val_loss");
      out.down = cells("summary", "final_val_loss").map(c => parseFloat(c.dataset.v));
      click("summary", "job");
      out.jobs = cells("summary", "job").map(c => c.textContent);
      click("groups", "group");
      click("groups", "group");
      out.groups = cells("groups", "group").map(c => c.textContent);
      const pre = document.createElement("pre");
      pre.id = "probe";
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    });</script>"""
    page = sweep / "index_probe.html"
    page.write_text((sweep / "index.html").read_text().replace("</body>", probe + "</body>"))
    args = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}", "--dump-dom"]
    proc = subprocess.run([browser(), *args, page.as_uri()], capture_output=True, text=True, timeout=120)
    page.unlink()
    out = json.loads(proc.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert out["up"] == sorted(LOSSES) and out["down"] == sorted(LOSSES, reverse=True)
    assert out["jobs"] == [str(n) for n in range(12)]  # as numbers: 10 and 11 after 9
    assert out["groups"] == ["model=m1", "model=m0"]  # clicked twice: descending


def test_the_api_names_the_best_job_of_one_data_set(tmp_path):
    import aecli

    sweep = aecli.load_sweep(two_datasets(tmp_path))
    with pytest.raises(ValueError, match=r"jobs on 2 data sets \(polynomial, spiral\).*best\(dataset='polynomial'\)"):
        sweep.best()
    assert sweep.best(dataset="polynomial").number == 1 and sweep.best(dataset="spiral").number == 3
    with pytest.raises(ValueError, match="no completed job .* is on 'swiss_roll'"):
        sweep.best(dataset="swiss_roll")


def test_a_failed_seed_is_left_out_of_its_groups_statistics(tmp_path):
    for num, (status, loss) in enumerate([("completed", 0.2), ("failed", 0.001), ("completed", 0.4)]):
        summary = {"dataset": "spiral", "final_val_loss": loss, "status": status}
        fake_job(tmp_path, num, ["model=tanh", f"seed={num}"], summary, {"seed": num})
    (group,) = seed_groups(read_jobs(tmp_path))
    assert group.n == 2 and group.stats("final_val_loss") == pytest.approx((0.3, np.std([0.2, 0.4], ddof=1), 2))
    build_report(tmp_path, figures=())
    (row,) = csv.DictReader(open(tmp_path / "summary_groups.csv"))
    assert (row["n"], row["jobs"], float(row["final_val_loss_mean"])) == ("2", "0 1 2", pytest.approx(0.3))
    assert row["p_value_vs_next"] == "" and "no other group on this data set" in (tmp_path / "summary.md").read_text()


def test_a_seed_whose_loss_is_nan_is_not_counted_in_the_n_beside_the_mean(tmp_path):
    """Three completed seeds, one whose summary holds a null (NaN) loss: the table said n=3 beside a mean over 2."""
    for num, loss in enumerate([0.2, float("nan"), 0.4]):
        summary = {"dataset": "spiral", "final_val_loss": loss, "status": "completed"}
        fake_job(tmp_path, num, ["model=tanh", f"seed={num}"], summary, {"seed": num})
    build_report(tmp_path, figures=())
    (row,) = csv.DictReader(open(tmp_path / "summary_groups.csv"))
    assert (row["n"], row["final_val_loss_n"], float(row["final_val_loss_mean"])) == ("3", "2", pytest.approx(0.3))
    assert "0.3 ± 0.14 (n=2)" in (tmp_path / "summary.md").read_text()
    assert "0.3 ± 0.14 (n=2)" in (tmp_path / "index.html").read_text()


def test_a_comparison_figure_that_fails_to_draw_never_costs_the_report(seed_sweep, tmp_path, monkeypatch, caplog):
    """A bug or odd data in one comparison figure: it is logged and left out, the tables and the page are written."""
    import shutil

    sweep = tmp_path / "copy"
    shutil.copytree(seed_sweep, sweep)
    for name in ("summary.md", "summary.csv", "index.html", "comparison_loss_curves.png"):
        (sweep / name).unlink(missing_ok=True)

    def broken(*args, **kwargs):
        raise ValueError("max() arg is an empty sequence")

    monkeypatch.setattr("aecli.reporting.report.write_curve_overlay", broken)
    result = build_report(sweep)
    assert "comparison_loss_curves.png" not in result["files"] and not (sweep / "comparison_loss_curves.png").exists()
    assert (sweep / "summary.md").is_file() and (sweep / "index.html").is_file()
    assert "comparison_loss_curves.png could not be drawn (ValueError" in caplog.text


def test_a_linear_net_that_found_pcas_solution_matches_pca_and_is_not_flagged(tmp_path):
    """The rectangle study's `pca` model ends within float noise of PCA's loss: "matches", no ⚠."""
    metrics = {"baseline_pca_loss": 0.17816, "baseline_pca_code_size": 1.0, "baseline_pca_exact": 0.0, "beats_pca": 0.0}
    for num, loss in enumerate((0.178165, 0.19)):  # 1.00003x PCA's loss, and 1.07x
        summary = {"dataset": "rectangle", "final_val_loss": loss, "metrics": metrics}
        fake_job(tmp_path, num, [f"optimizer.lr={num + 1}"], summary, {"dataset": {"name": "rectangle"}})
    build_report(tmp_path, figures=())
    rows = {r["job"]: r["vs_pca"] for r in csv.DictReader(open(tmp_path / "summary.csv"))}
    assert rows == {"0": "matches PCA-1 (1.00003x)", "1": "\u26a0 WORSE than PCA-1 (1.07x)"}
    md = (tmp_path / "summary.md").read_text()
    assert "| 1 \u26a0 |" in md and "| 0 \u26a0 |" not in md


def test_comparison_figures_show_one_tile_per_configuration_its_median_seed(tmp_path):
    """Five seeds of ten configurations made 50 tiny tiles with overlapping titles; now ten, each the
    configuration's median seed by final_val_loss."""
    from aecli.reporting.comparison import median_seeds

    losses = {"tanh": [0.3, 0.1, 0.2], "relu": [0.5, 0.9, 0.7]}
    num = 0
    for model, values in losses.items():
        for seed, loss in enumerate(values):
            summary = {"dataset": "spiral", "final_val_loss": loss, "status": "completed"}
            fake_job(tmp_path, num, [f"model={model}", f"seed={seed}"], summary, {"seed": seed})
            num += 1
    jobs = read_jobs(tmp_path)
    chosen, keys, what = median_seeds(jobs, ["model", "seed"])
    assert [j["summary"]["final_val_loss"] for j in chosen] == [0.2, 0.7] and keys == ["model"]
    assert what == "2 configurations, each its median of 3 seeds"
    assert median_seeds(jobs[:1], ["model"])[2] == "1 job"  # no seed swept: every job its own tile
