"""Experiment trackers (aecli/trackers.py, `logger=...`): what each logged, read back with the tracker's
own reader and compared with the run folder; a sweep's single TensorBoard log dir and MLflow parent run;
a tracker failing mid-run; a missing tracker package stopping before training with one sentence."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_summary, run_cli

from aecli.config import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")  # mlflow's
TINY = ["trainer.epochs=3", "dataset.n=200", "trainer.num_threads=1", "plots.error_map_resolution=50"]
EPOCH_KEYS = ("train_loss", "val_loss", "lr")


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def tensorboard_events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def assert_scalars_match_metrics_csv(events, run_dir: Path) -> None:
    rows = metrics_rows(run_dir)
    for key in EPOCH_KEYS:
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [int(r["epoch"]) for r in rows]
        assert [s.value for s in scalars] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)  # float32


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory) -> Path:
    """Where aecli starts in the MLflow tests: all write to its outputs/mlflow.db, created once (seconds)."""
    return tmp_path_factory.mktemp("mlflow_home")


def test_logger_group_takes_one_or_several_trackers():
    from aecli.config import compose

    assert list(compose([]).logger) == ["csv"]
    assert list(compose(["logger=[csv,tensorboard]"]).logger) == ["csv", "tensorboard"]
    assert list(compose(["logger=tensorboard"]).logger) == ["tensorboard"]
    cfg = compose(["logger=[csv,tensorboard,mlflow]"])
    assert cfg.logger.mlflow.tracking_uri == "sqlite:///outputs/mlflow.db"
    assert cfg.logger.tensorboard._target_ == "aecli.reporting.trackers.TensorBoardTracker"
    with pytest.raises(Exception, match="bogus"):  # the schema rejects unknown keys while composing
        compose(["logger=tensorboard", "logger.tensorboard.bogus=1"])


def test_tensorboard_logs_scalars_figures_and_hparams(run_in_process):
    """logger=tensorboard alone: metrics.csv and summary.json are still written, and the event file holds
    the same per-epoch values, every figure, and hparams with the final losses."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    summary, run_dir = run_in_process("logger=tensorboard", "plots.enabled=true", *TINY)
    assert summary["status"] == "completed" and "tracker_errors" not in summary
    assert read_summary(run_dir)["status"] == "completed" and len(metrics_rows(run_dir)) == 4
    events = tensorboard_events(run_dir / "tensorboard")
    assert_scalars_match_metrics_csv(events, run_dir)

    figures = sorted(p.stem for p in run_dir.glob("*.png"))
    assert len(figures) >= 4  # loss curve, latent, reconstruction, error map
    assert sorted(events.Tags()["images"]) == [f"figures/{name}" for name in figures]
    image = events.Images("figures/loss_curve")[0]
    assert image.step == 3 and image.width > 100 and image.encoded_image_string.startswith(b"\x89PNG")

    hparams = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["model.name"].string_value == "tanh"
    assert start.hparams["status"].string_value == "completed"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"]).experiment
    assert {"final_val_loss", "best_val_loss", "error_map_share_below_threshold"} <= {
        m.name.tag for m in experiment.metric_infos
    }
    assert events.Scalars("final_val_loss")[-1].value == pytest.approx(summary["final_val_loss"], rel=1e-6)


def test_mlflow_logs_params_metrics_and_artifacts_and_marks_failures(run_in_process, mlflow_home, monkeypatch):
    """The default tracking URI sqlite:///outputs/mlflow.db resolves against the directory aecli started
    in; a run that fails after the tracker started is marked FAILED with the error."""
    from mlflow import MlflowClient

    monkeypatch.chdir(mlflow_home)
    summary, run_dir = run_in_process("logger=[csv,mlflow]", "plots.enabled=true", *TINY)
    client = MlflowClient(f"sqlite:///{mlflow_home / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aecli")
    assert experiment.artifact_location == (mlflow_home / "outputs" / "mlartifacts").as_uri()
    [run] = client.search_runs([experiment.experiment_id], f"tags.`aecli.run_dir` = '{run_dir.resolve()}'")
    assert run.info.status == "FINISHED" and run.data.tags["aecli.status"] == "completed"
    assert run.data.tags["aecli.run_dir"] == str(run_dir.resolve())
    assert run.data.params["optimizer.lr"] == "0.001" and run.data.params["trainer.epochs"] == "3"

    rows = metrics_rows(run_dir)
    for key in EPOCH_KEYS:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(int(r["epoch"]), float(r[key])) for r in rows]
    assert run.data.metrics["final_val_loss"] == summary["final_val_loss"]
    assert run.data.metrics["error_map_share_below_threshold"] == summary["metrics"]["error_map_share_below_threshold"]

    artifacts = {
        f.path for folder in (None, "figures", "checkpoints") for f in client.list_artifacts(run.info.run_id, folder)
    }
    assert {"config.yaml", "summary.json", "checkpoints/last.pt"} <= artifacts
    assert {f"figures/{p.name}" for p in run_dir.glob("*.png")} == {a for a in artifacts if a.startswith("figures/")}
    assert len(list(run_dir.glob("*.png"))) >= 4

    empty = run_dir.parent / "no_mnist_here"
    empty.mkdir()
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(empty))  # no OpenML cache can stand in for the files
    missing = ("dataset=mnist", f"dataset.root={empty}", "dataset.download=false")
    with pytest.raises(ConfigError, match="MNIST"):  # fails after the tracker started (data phase), before training
        run_in_process("logger=mlflow", *missing, *(o for o in TINY if not o.startswith("dataset.")))
    failed = client.search_runs(
        [experiment.experiment_id], f"tags.`aecli.run_dir` = '{run_dir.parent.resolve() / 'run1'}'"
    )
    assert len(failed) == 1 and failed[0].info.status == "FAILED" and "MNIST" in failed[0].data.tags["aecli.error"]

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("aecli.grouped.fit", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_in_process("logger=mlflow", *TINY)
    [killed] = client.search_runs(
        [experiment.experiment_id], f"tags.`aecli.run_dir` = '{run_dir.parent.resolve() / 'run2'}'"
    )
    assert killed.info.status == "KILLED" and killed.data.tags["aecli.status"] == "interrupted"


def test_a_sweep_gets_one_tensorboard_dir_and_one_mlflow_parent(mlflow_home):
    """Two jobs, both trackers: <sweep>/tensorboard holds one run per job, and the MLflow store (relative
    to where aecli started) one parent run for the sweep with the two jobs nested under it."""
    from mlflow import MlflowClient

    run_cli(
        "-m",
        "seed=1,2",
        "logger=[tensorboard,mlflow]",
        *TINY,
        "plots.enabled=false",
        "hydra/job_logging=disabled",
        "hydra.sweep.dir=sweep",
        cwd=mlflow_home,
    )
    sweep = mlflow_home / "sweep"

    runs = sorted((sweep / "tensorboard").iterdir())
    assert [p.name.split("_")[0] for p in runs] == ["0", "1"] and all("seed=" in p.name for p in runs)
    for job, log_dir in zip(("0", "1"), runs):
        assert_scalars_match_metrics_csv(tensorboard_events(log_dir), sweep / job)

    client = MlflowClient(f"sqlite:///{mlflow_home / 'outputs' / 'mlflow.db'}")
    experiment_ids = [client.get_experiment_by_name("aecli").experiment_id]
    [parent] = client.search_runs(experiment_ids, "tags.`aecli.sweep_dir` != ''")
    assert parent.data.tags["aecli.sweep_dir"] == str(sweep.resolve()) and parent.info.status == "FINISHED"
    children = client.search_runs(
        experiment_ids, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", order_by=["attributes.run_name ASC"]
    )
    assert len(children) == 2
    assert [r.data.params["seed"] for r in children] == ["1", "2"]
    assert [r.info.run_name.split("_")[0] for r in children] == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in children)


def test_a_failing_tracker_is_reported_and_the_run_goes_on(run_in_process, monkeypatch, caplog):
    """A tracker that raises is warned about, gets no more logging calls, still finishes, and is named in
    summary.json; training and the run folder are unaffected."""
    from aecli.reporting.trackers import TensorBoardTracker

    calls = []

    def broken(self, record):
        calls.append(record.epoch)
        raise OSError("disk full")

    monkeypatch.setattr(TensorBoardTracker, "log_epoch", broken)
    summary, run_dir = run_in_process("logger=[csv,tensorboard]", *TINY)
    assert summary["status"] == "completed" and calls == [0]
    assert read_summary(run_dir)["tracker_errors"] == {"tensorboard": "log_epoch: OSError: disk full"}
    assert "logger tensorboard failed in log_epoch" in caplog.text
    assert len(metrics_rows(run_dir)) == 4
    assert "_hparams_/experiment" in tensorboard_events(run_dir / "tensorboard").PluginTagToContent("hparams")


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow"])
def test_a_missing_tracker_package_stops_before_training(run_in_process, monkeypatch, tmp_path, tracker):
    monkeypatch.setitem(sys.modules, tracker, None)  # `import <tracker>` now raises ImportError
    with pytest.raises(ConfigError, match=rf'needs the {tracker} package.*pip install "aecli\[{tracker}\]"'):
        run_in_process(f"logger=[csv,{tracker}]", *TINY)
    assert not (tmp_path / "run0" / "metrics.csv").exists()
    assert "ConfigError" in read_summary(tmp_path / "run0")["error"]


def test_the_cli_names_the_extra_to_install_in_one_line(tmp_path):
    code = (
        "import sys; sys.modules['tensorboard'] = None; "
        "sys.argv[1:] = ['logger=[csv,tensorboard]', 'hydra/job_logging=disabled']; "
        "from aecli.cli import main; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "aecli: error: logger=tensorboard needs the tensorboard package, which is not "
        'installed: pip install "aecli[tensorboard]"'
    )
