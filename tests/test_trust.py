"""Nothing read from a file runs code or exhausts memory (aecli/trust.py, run_files.load_checkpoint and
load_model, mnist_files.read_idx). Every hostile file here is built for real: a run folder whose saved
config names `builtins.open`, YAML bombs, a checkpoint with a deflated 2 GiB tensor, an IDX file with a
gigabyte after its data. Each is refused in one sentence; the bombs with peak memory far below their size."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

import aecli
from aecli.config import compose, config_options
from aecli.data.mnist_files import LABELS_MAGIC, read_idx
from aecli.run_files import CheckpointError, load_checkpoint, load_model
from aecli.trust import MAX_CONFIG_BYTES, aecli_targets, trusted_config, trusted_overrides
from tests.conftest import REPO, run_cli

MIB = 1 << 20


def one_sentence(err: BaseException | str) -> str:
    """The message, asserted to be one line with no traceback in it."""
    text = str(err)
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    return text


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One short real run (200 points, 1 epoch): the folder every hostile copy starts from."""
    from aecli.pipeline import run

    run_dir = tmp_path_factory.mktemp("trust") / "run"
    run_dir.mkdir()
    run(compose(["dataset.n=200", "trainer.epochs=1", "trainer.progress=false", "plots.enabled=false"]), run_dir)
    return run_dir


def hostile_copy(trained: Path, dest: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of the trained run whose checkpoints' saved config is `edit`ed; the weights stay valid."""
    shutil.copytree(trained, dest)
    for name in ("last.pt", "best.pt"):
        path = dest / "checkpoints" / name
        ckpt = torch.load(path, weights_only=True)
        config = yaml.safe_load(ckpt["config_yaml"])
        edit(config)
        ckpt["config_yaml"] = yaml.safe_dump(config)
        torch.save(ckpt, path)
    return dest


def rewrite(path: Path, **changes: Any) -> Path:
    """The checkpoint at `path` saved again with `changes` (a value None: that key removed)."""
    ckpt = torch.load(path, weights_only=True)
    ckpt.update(changes)
    torch.save({k: v for k, v in ckpt.items() if v is not None}, path)
    return path


# --------------------------------------------------------- code execution through a saved config
# Where the payload sits in the saved config, and the key path the refusal must name.
PLACEMENTS: dict[str, tuple[Callable[[dict, dict], Any], str]] = {
    "model": (lambda cfg, p: cfg["model"].update(init=p), "model.init._target_"),
    "dataset": (lambda cfg, p: cfg["dataset"].update(root=p), "dataset.root._target_"),
    "analysis": (lambda cfg, p: cfg["analyses"].update(evil=p), "analyses.evil._target_"),
    "nested-in-list": (lambda cfg, p: cfg["dataset"].update(grid_extent=[0.0, [p]]), "grid_extent[1][0]._target_"),
}


@pytest.fixture(params=list(PLACEMENTS))
def planted(request, trained, tmp_path) -> tuple[Path, Path, str]:
    """(run folder whose config plants `builtins.open(marker, "w")`, marker, key path)."""
    marker = tmp_path / "marker"
    plant, key = PLACEMENTS[request.param]
    payload = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    return hostile_copy(trained, tmp_path / "shared_run", lambda cfg: plant(cfg, payload)), marker, key


@pytest.mark.parametrize("loader", ["aecli.load_run", "run_files.load_model"])
def test_a_planted_target_is_refused_by_the_python_api(planted, loader):
    run_dir, marker, key = planted
    with pytest.raises(CheckpointError) as err:
        aecli.load_run(run_dir) if loader == "aecli.load_run" else load_model(run_dir)
    message = one_sentence(err.value)
    assert "builtins.open" in message and key in message and str(run_dir / "checkpoints" / "last.pt") in message
    assert not marker.exists()


CLI_PATHS = {
    "resume": lambda run_dir, new: [f"resume={run_dir}"],
    "resume_from": lambda run_dir, new: [
        "dataset.n=200",
        "trainer.epochs=2",
        f"trainer.resume_from={run_dir / 'checkpoints' / 'last.pt'}",
        f"hydra.run.dir={new}",
    ],
    "decoder_from": lambda run_dir, new: ["dataset.n=200", f"transfer.decoder_from={run_dir}", f"hydra.run.dir={new}"],
}


# Every command-line path once, each with another placement (a subprocess costs 3-5 s); resume= runs the
# saved config whole (its dataset and analyses too), so it gets those two.
@pytest.mark.parametrize(
    "path, planted",
    [("resume", "dataset"), ("resume", "analysis"), ("resume_from", "nested-in-list"), ("decoder_from", "model")],
    indirect=["planted"],
)
def test_a_planted_target_is_refused_by_the_command_line(planted, path, tmp_path):
    run_dir, marker, key = planted
    proc = run_cli(*CLI_PATHS[path](run_dir, tmp_path / "new_run"), "trainer.progress=false", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    line = one_sentence(proc.stderr)
    assert line.startswith("aecli: error: ") and "builtins.open" in line and key in line
    assert not marker.exists()


def test_every_target_is_checked_at_any_depth_and_inside_args():
    """_args_ items and lists of lists are walked too; a target that is not a string is refused."""
    for text, key in [
        ("model: {_target_: aecli.models.mlp.MLPSpec, _args_: [{_target_: os.system, _args_: [ls]}]}", "_args_[0]"),
        ("a: [[{b: [{_target_: aecli.run_files.atomic_write}]}]]", "a[0][0].b[0]._target_"),
        ("model: {_target_: {x: 1}}", "model._target_"),
        ("_target_: builtins.eval", "_target_"),
    ]:
        with pytest.raises(CheckpointError) as err:
            trusted_config(text, "saved.yaml")
        assert key in one_sentence(err.value) and "saved.yaml" in str(err.value)


def test_aecli_targets_are_the_schemas_and_the_study_analyses_and_nothing_else():
    """Every target a shipped option composes to, and every analysis an experiment names, is in the set;
    nothing outside aecli's data sets, models, callbacks, trackers and analyses is (not Hydra's callbacks)."""
    targets = aecli_targets()
    options = config_options()
    composed = [compose([f"dataset={name}"]).dataset for name in options["dataset"]]
    composed += [compose([f"model={name}"]).model for name in options["model"]]
    composed += [compose(["logger=[csv,tensorboard,mlflow]"]).logger[name] for name in options["logger"]]
    composed += list(compose([]).callbacks.values()) + list(compose([]).analyses.values())
    assert {spec._target_ for spec in composed} <= targets
    assert "_target_" not in compose([]).regularizer  # a mapping of term weights: nothing to build
    experiments = [
        yaml.safe_load((REPO / "conf" / "experiment" / f"{name}.yaml").read_text()) for name in options["experiment"]
    ]
    analyses = {spec["_target_"] for experiment in experiments for spec in experiment.get("analyses", {}).values()}
    assert len(analyses) >= 10 and analyses <= targets
    foreign = ("builtins.open", "os.system", "aecli.run_files.atomic_write", "aecli.analyses.mnist.mse")
    for target in (*foreign, "aecli.hydra_hooks.RunFolderGuard", "aecli.hydra_hooks.SweepComparison"):
        assert target not in targets
    kinds = (
        *("aecli.data.", "aecli.models.", "aecli.training.callbacks.", "aecli.reporting.trackers."),
        "aecli.analyses.",
    )
    assert all(target.startswith(kinds) for target in targets)


def test_every_real_config_is_trusted_resolved_and_unresolved():
    """No false alarm: the default config and each experiment's pass, saved resolved (a checkpoint) or as
    composed (.hydra/config.yaml, which keeps its interpolations: refused only when claimed resolved)."""
    interpolated = 0
    for overrides in [[], *([f"experiment={name}"] for name in config_options()["experiment"])]:
        cfg = compose(overrides)
        resolved = trusted_config(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        assert OmegaConf.to_container(resolved) == OmegaConf.to_container(cfg, resolve=True)
        text = OmegaConf.to_yaml(cfg)
        assert OmegaConf.to_container(trusted_config(text, "config.yaml", resolved=False)) == OmegaConf.to_container(
            cfg
        )
        if "${" in text:
            interpolated += 1
            with pytest.raises(CheckpointError, match="interpolation"):
                trusted_config(text, "config.yaml")
    assert interpolated >= 1  # the default's dataset.seed=${seed}


# --------------------------------------------------------- bad config text in a checkpoint
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(5)
)  # 300 bytes; 10^6 nodes once OmegaConf expands the aliases (a minute and ~1 GB), each level 10x more


@pytest.mark.parametrize(
    "text, expected",
    [
        (BILLION_LAUGHS, "anchor &a"),
        ("a: *undefined\n", "alias *undefined"),
        ("seed: 1\nmodel: {name: x}\ndataset: {root: '${oc.env:HOME}'}\n", "dataset.root='${oc.env:HOME}'"),
        ("model: [unclosed\nseed: 1\n", "not valid YAML"),
        ("- model\n- dataset\n", "YAML list, not a mapping"),
        ("just text\n", "single value 'just text'"),
        ("a: 1\n---\nb: 2\n", "more than one YAML document"),
        ("a: 1\na: 2\n", "OmegaConf cannot read"),
        ("a: !!python/name:os.system ls\n", "OmegaConf cannot read"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "levels deep"),
        ("a: [" + ",".join(["0"] * 20_000) + "]\n", "YAML nodes"),
        ("# padding\n" * (2 * MIB // 10) + "seed: 1\n", f"more than the {MAX_CONFIG_BYTES}"),
    ],
    ids=[
        "alias-bomb",
        "alias",
        "interpolation",
        "invalid",
        "list",
        "scalar",
        "two-documents",
        "duplicate",
        "python-tag",
        "deep",
        "wide",
        "2MiB",
    ],
)
def test_bad_config_text_in_a_checkpoint_is_one_sentence(trained, tmp_path, text, expected):
    path = rewrite(shutil.copy(trained / "checkpoints" / "last.pt", tmp_path / "last.pt"), config_yaml=text)
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert expected in one_sentence(err.value) and str(path) in str(err.value)
    assert time.perf_counter() - started < 5  # refused while scanning, before OmegaConf builds anything


def test_overrides_yaml_is_read_within_the_same_bounds():
    """.hydra/overrides.yaml is a list, which trusted_config refuses; trusted_overrides reads it with the same scan."""
    assert trusted_overrides("- dataset=spiral\n- seed=3\n", "overrides.yaml") == ["dataset=spiral", "seed=3"]
    assert trusted_overrides("[]\n", "overrides.yaml") == []
    for text, expected in [
        ("- &a seed=1\n- *a\n", "anchor &a"),
        ("seed: 1\n", "YAML mapping, not a list of overrides"),
        ("- [seed=1]\n", "not all key=value strings"),
        ("- !!python/name:os.system ls\n", "holds a YAML tag aecli never writes"),
        ("- x\n" * (MAX_CONFIG_BYTES // 4 + 1), "bytes of YAML"),
    ]:
        with pytest.raises(CheckpointError) as err:
            trusted_overrides(text, "overrides.yaml")
        assert expected in one_sentence(err.value) and "overrides.yaml" in str(err.value)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"model": None}, "model missing"),
        ({"model": {"encoder.0.weight": [1.0, 2.0]}}, "its model is"),
        ({"model": [torch.ones(2)]}, "its model is"),
        ({"config_yaml": b"seed: 1"}, "its config_yaml is"),
        ({"epoch": "3"}, "its epoch is"),
        ({"metrics": [{"epoch": 0}]}, "its metrics is"),
        ({"train_state": {"epoch": 1}}, "its train_state is"),
    ],
    ids=["no-model", "model-of-lists", "model-a-list", "config-bytes", "epoch-text", "short-row", "train-state"],
)
def test_a_checkpoint_of_the_wrong_layout_is_one_sentence(trained, tmp_path, change, expected):
    path = rewrite(shutil.copy(trained / "checkpoints" / "last.pt", tmp_path / "last.pt"), **change)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert expected in one_sentence(err.value)


def test_a_real_checkpoint_loads_with_its_checked_config(trained):
    ckpt = load_checkpoint(trained / "checkpoints" / "last.pt")
    assert isinstance(ckpt["config"], DictConfig) and ckpt["config"].model.name == "tanh"
    assert OmegaConf.to_yaml(ckpt["config"]) == ckpt["config_yaml"]  # the same config, parsed once
    archive = zipfile.ZipFile(trained / "checkpoints" / "last.pt")  # torch.save's layout: every entry STORED
    assert {e.compress_type for e in archive.infolist()} == {zipfile.ZIP_STORED}
    model, cfg = load_model(trained)
    assert cfg is not None and model.encoder[0].weight.shape == (3, 2)


def test_weights_without_an_encoder_are_one_sentence(trained, tmp_path):
    """Without a recorded data shape the encoder's first weight matrix says the input width; without that
    either, one sentence. With a data shape, weights that are not the config's layers are one sentence too."""
    path = shutil.copy(trained / "checkpoints" / "last.pt", tmp_path / "last.pt")
    rewrite(path, model={"decoder.0.weight": torch.ones(2, 3)})
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert "do not have the layers its config describes" in one_sentence(err.value)
    rewrite(path, data_shape=None)  # an older checkpoint, which records no data shape
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert "no encoder weight" in one_sentence(err.value)


@pytest.mark.parametrize(
    "model", [{"_target_": "aecli.data.synthetic.BetaCurves", "n": 10**9}, 5], ids=["dataset", "number"]
)
def test_load_model_builds_only_the_model_target(trained, tmp_path, model):
    """An aecli target that is not the model (here: a billion beta curves) is not built in the model's place."""
    run_dir = hostile_copy(trained, tmp_path / "run", lambda cfg: cfg.update(model=model))
    with pytest.raises(CheckpointError) as err:
        load_model(run_dir)
    assert "holds no model config (model._target_: a ModelSpec such as aecli.models.mlp.MLPSpec)" in one_sentence(
        err.value
    )


def test_legacy_torch_files_are_refused(trained, tmp_path):
    """torch's pre-zip format is not what torch.save writes by default; its storages are not bounded by zip entries."""
    path = tmp_path / "legacy.pt"
    ckpt = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "not the zip archive torch.save writes" in one_sentence(err.value)


def test_an_entry_declaring_more_than_the_file_holds_is_refused(trained, tmp_path):
    raw = bytearray((trained / "checkpoints" / "last.pt").read_bytes())
    record = raw.index(b"PK\x01\x02")  # the central directory's first record: archive/data.pkl
    struct.pack_into("<I", raw, record + 24, 2**31)  # its uncompressed size: 2 GiB, in a file of a few KB
    path = tmp_path / "lying.pt"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "data.pkl declares 2147483648 bytes, which do not fit" in one_sentence(err.value)


# --------------------------------------------------------- memory bombs, measured in a fresh process
MEASURE = """
import json, resource, sys, time
from pathlib import Path
from {module} import {name}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB: the high-water mark so far (imports)
started = time.perf_counter()
try:
    {name}(*{args!r})
    error = None
except Exception as err:
    error = type(err).__name__ + ": " + str(err)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"error": error, "seconds": seconds, "extra_mib": (peak - before) / 1024, "peak_mib": peak / 1024}}))
"""


def measure(module: str, name: str, *args: Any) -> dict[str, Any]:
    """Call module.name(*args) in a fresh Python: its error, seconds, and how far the call raised the process's
    peak memory above the peak of starting up (imports: about 300 MiB with torch)."""
    script = MEASURE.format(module=module, name=name, args=tuple(str(a) if isinstance(a, Path) else a for a in args))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{name}: {result}")  # pytest -s shows the measured numbers
    return result


def deflated_checkpoint(path: Path, tensor_bytes: int) -> None:
    """A checkpoint as torch.save lays it out, except that its one tensor's record is DEFLATED and declares
    `tensor_bytes` of zeros (streamed in 1 MiB chunks): a few MB on disk that torch.load would inflate whole."""
    small = 70_000  # > 65535: pickled as a 4-byte int, so the numel can be patched in place
    buf = io.BytesIO()
    torch.save({"model": {"encoder.0.weight": torch.zeros(small)}, "config_yaml": "", "epoch": 0, "metrics": []}, buf)
    source = zipfile.ZipFile(buf)
    old, new = b"J" + struct.pack("<i", small), b"J" + struct.pack("<i", tensor_bytes // 4)
    with zipfile.ZipFile(path, "w", compresslevel=1) as archive:
        for info in source.infolist():
            if not info.filename.endswith("/data/0"):
                archive.writestr(info, source.read(info).replace(old, new))  # data.pkl: numel and size patched
                continue
            entry = zipfile.ZipInfo(info.filename)
            entry.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(entry, "w", force_zip64=True) as record:
                for _ in range(tensor_bytes // MIB):
                    record.write(bytes(MIB))


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_deflated_2gib_tensor_is_refused_before_torch_allocates_it(tmp_path):
    path = tmp_path / "bomb.pt"
    deflated_checkpoint(path, 2 << 30)
    assert path.stat().st_size < 16 * MIB
    result = measure("aecli.run_files", "load_checkpoint", path)
    assert result["error"].startswith("CheckpointError: ") and "is compressed" in one_sentence(result["error"])
    assert result["extra_mib"] < 64  # the tensor alone would be 2048 MiB
    assert result["seconds"] < 5


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_config_asking_for_huge_layers_is_refused_before_they_are_allocated(trained, tmp_path):
    """The weights are the trained 2-3-2 net's; the saved config claims two hidden layers of 8192 (512 MiB)."""
    run_dir = hostile_copy(trained, tmp_path / "run", lambda cfg: cfg["model"].update(hidden_sizes=[8192, 8192]))
    result = measure("aecli.run_files", "load_model", run_dir)
    assert "do not have the layers its config describes" in one_sentence(result["error"])
    assert result["extra_mib"] < 64  # built for real first, the model took 512 MiB
    assert result["seconds"] < 5


def idx_with_trailing_zeros(path: Path, trailing: int) -> None:
    """A labels IDX .gz whose header and 10 labels are right, then `trailing` zero bytes inside the same
    gzip stream, with the trailer's ISIZE forged (it is mod 2^32 anyway) to what the header declares."""
    declared = struct.pack(">II", LABELS_MAGIC, 10) + bytes(range(10))
    with gzip.GzipFile(path, "wb", compresslevel=1) as f:
        f.write(declared)
        for _ in range(trailing // MIB):
            f.write(bytes(MIB))
    with open(path, "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(struct.pack("<I", len(declared)))


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_an_idx_file_with_a_gigabyte_after_its_data_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    idx_with_trailing_zeros(path, 1 << 30)
    result = measure("aecli.data.mnist_files", "read_idx", path, LABELS_MAGIC)
    assert result["error"] == (
        f"ConfigError: {path} has 16+ bytes after the data its IDX header declares; delete it and fetch it again"
    )
    assert result["extra_mib"] < 64  # reading it whole took 1024 MiB and more
    assert result["seconds"] < 5


def test_an_idx_file_of_exactly_the_declared_size_still_has_its_crc_checked(tmp_path):
    declared = struct.pack(">II", LABELS_MAGIC, 10) + bytes(range(10))
    path = tmp_path / "labels.gz"
    good = gzip.compress(declared)
    path.write_bytes(good)
    assert read_idx(path, LABELS_MAGIC).tolist() == list(range(10))
    path.write_bytes(good[:-8] + bytes([good[-8] ^ 1]) + good[-7:])  # one bit of the CRC flipped
    with pytest.raises(ValueError) as err:
        read_idx(path, LABELS_MAGIC)
    assert "CRC check failed" in one_sentence(err.value)


def test_an_idx_header_declaring_more_than_the_cap_is_refused_before_reading(tmp_path):
    header = struct.pack(">IIII", 2051, 2_000_000, 28, 28)  # 1.5 GiB of images declared, 100 bytes present
    path = tmp_path / "images.gz"
    data = bytearray(gzip.compress(header + bytes(100)))
    struct.pack_into("<I", data, len(data) - 4, (len(header) + 2_000_000 * 784) % 2**32)  # a consistent ISIZE
    path.write_bytes(data)
    with pytest.raises(ValueError) as err:
        read_idx(path, 2051)
    assert "declaring 2000000 items of 784 bytes, would take about 46.7 GiB" in one_sentence(err.value)


def test_a_mirror_answering_endlessly_is_read_only_one_byte_past_the_standard_size(tmp_path, monkeypatch):
    from aecli.data import mnist_files

    asked = []

    class Endless(io.RawIOBase):  # a mirror (or whoever answers for it) sending zeros forever
        def read(self, size=-1):
            asked.append(size)
            assert size >= 0, "read the whole answer"
            return bytes(size)

    monkeypatch.setattr(mnist_files.urllib.request, "urlopen", lambda url, timeout: Endless())
    with pytest.raises(ValueError) as err:
        mnist_files.download("t10k-labels-idx1-ubyte.gz", tmp_path)
    assert asked == [4543, 4543]  # each mirror: the standard 4542 bytes and one more
    assert "checksum mismatch" in one_sentence(err.value) and not list(tmp_path.iterdir())
