"""mnist studies: the IDX loader and its errors, the digits data, the three experiments end to end
(on a tiny generated IDX set and on sklearn's digits), and known answers for every analysis."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import N_TEST, N_TRAIN, run_cli, write_idx
from omegaconf import OmegaConf

from aecli.analyses import RunContext
from aecli.analyses import mnist as mnist_analyses
from aecli.config import ConfigError, compose
from aecli.data import DataShape, Digits, Mnist, mnist_files
from aecli.models import MLPAutoencoder
from aecli.reporting import plots
from aecli.training.regularizers import WeightL2, masking_noise

EXPERIMENTS = ["mnist_bottleneck", "mnist_wide", "mnist_denoising"]


def test_loader_reads_the_idx_files_back_exactly(tiny_mnist):
    folder, arrays = tiny_mnist
    loaded = mnist_files.load(str(folder), download_missing=False)
    for key, array in arrays.items():
        assert np.array_equal(getattr(loaded, key), array)
    limited = mnist_files.load(str(folder), download_missing=False, train_limit=50, test_limit=7)
    assert np.array_equal(limited.train_images, arrays["train_images"][:50])
    assert np.array_equal(limited.test_labels, arrays["test_labels"][:7])
    data = Mnist(root=str(folder), download=False).build()
    assert data.train.shape == (N_TRAIN, 784) and data.val.shape == (N_TEST, 784)
    assert torch.equal(data.train[3], torch.from_numpy(arrays["train_images"][3].reshape(-1) / 255.0).float())
    assert data.image_shape == (28, 28) and data.val_name == "test" and data.color_label == "digit"
    assert np.array_equal(data.val_color, arrays["test_labels"]) and data.val_color.dtype.kind == "i"
    assert np.array_equal(data.train_labels[:, 0], arrays["train_labels"]) and data.label_names == ("digit",)


def test_root_falls_back_to_the_env_var(tiny_mnist, monkeypatch):
    folder, arrays = tiny_mnist
    monkeypatch.setenv("AECLI_MNIST_DIR", str(folder))
    assert mnist_files.resolve_root(None) == folder
    assert np.array_equal(mnist_files.load(None, download_missing=False).test_labels, arrays["test_labels"])
    monkeypatch.delenv("AECLI_MNIST_DIR")
    assert mnist_files.resolve_root(None) == Path("~/.cache/aecli/mnist").expanduser()


def test_missing_files_name_the_folder_the_files_and_the_env_var(tiny_mnist):
    folder, _ = tiny_mnist
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError) as err:
        mnist_files.load(str(folder), download_missing=False)
    message = str(err.value)
    assert "\n" not in message and str(folder) in message and "AECLI_MNIST_DIR" in message
    assert all(name in message for name in mnist_files.STANDARD_FILES)


def test_offline_download_fails_with_one_sentence(tiny_mnist, monkeypatch):
    folder, _ = tiny_mnist
    (folder / "train-labels-idx1-ubyte.gz").unlink()

    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(mnist_files.urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte.gz is missing from .*no network") as err:
        mnist_files.load(str(folder), download_missing=True)
    assert "\n" not in str(err.value) and "ossci-datasets" in str(err.value)


def test_download_checks_the_checksum_and_saves_atomically(tiny_mnist, monkeypatch):
    folder, arrays = tiny_mnist
    name = "t10k-images-idx3-ubyte.gz"
    payload = (folder / name).read_bytes()
    (folder / name).unlink()
    monkeypatch.setitem(
        mnist_files.STANDARD_FILES,
        name,
        mnist_files.StandardFile(len(payload), hashlib.md5(payload).hexdigest(), hashlib.sha256(payload).hexdigest()),
    )
    served = []

    def mirror(url, timeout):
        served.append(url)
        if "ossci" in url:  # the first mirror serves a corrupted copy: rejected by its checksum
            return io.BytesIO(payload[:20] + bytes([payload[20] ^ 0xFF]) + payload[21:])
        return io.BytesIO(payload)

    monkeypatch.setattr(mnist_files.urllib.request, "urlopen", mirror)
    loaded = mnist_files.load(str(folder), download_missing=True)
    assert len(served) == 2 and np.array_equal(loaded.test_images, arrays["test_images"])
    assert (folder / name).read_bytes() == payload and not list(folder.glob(".*part"))


def test_standard_name_and_size_must_have_the_standard_checksum(tiny_mnist, monkeypatch):
    folder, _ = tiny_mnist
    path = folder / "train-labels-idx1-ubyte.gz"
    size = path.stat().st_size
    md5, sha256 = mnist_files.file_digests(path)
    # Pretend the tiny file's size is the standard size: now it claims to be the real file.
    monkeypatch.setitem(mnist_files.STANDARD_FILES, path.name, mnist_files.StandardFile(size, "0" * 32, "0" * 64))
    with pytest.raises(ConfigError, match=f"{path}.*not the standard checksum"):
        mnist_files.load(str(folder), download_missing=False)
    monkeypatch.setitem(mnist_files.STANDARD_FILES, path.name, mnist_files.StandardFile(size, md5, sha256))
    mnist_files.load(str(folder), download_missing=False)  # the right checksum passes
    # other sizes are not checked (the published sizes are far larger than these test files)
    assert mnist_files.STANDARD_FILES["t10k-labels-idx1-ubyte.gz"].size == 4542


def test_bad_magic_and_truncated_files_name_the_file(tiny_mnist):
    folder, arrays = tiny_mnist
    images = folder / "train-images-idx3-ubyte.gz"
    write_idx(images, arrays["train_labels"], 2049)  # a label file under the image name
    with pytest.raises(ConfigError, match=f"{images} is not an IDX image file: its magic number is 2049"):
        mnist_files.load(str(folder), download_missing=False)

    write_idx(images, arrays["train_images"], 2051)
    data = images.read_bytes()
    images.write_bytes(data[: len(data) // 2])  # cut in half
    with pytest.raises(ConfigError, match=f"{images} is corrupt or truncated"):
        mnist_files.load(str(folder), download_missing=False)

    # a complete gzip stream whose header promises more images than it holds: caught before allocating
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">4I", 2051, 10**8, 28, 28) + bytes(784))
    with pytest.raises(ConfigError, match="promises 78400000016 bytes"):
        mnist_files.load(str(folder), download_missing=False)


def test_openml_cache_stands_in_for_missing_files(tiny_mnist, monkeypatch):
    folder, _ = tiny_mnist
    empty = folder.parent / "empty"
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (70, 784)).astype(float), rng.integers(0, 10, 70).astype(str)
    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda *a, **k: (x, y))
    monkeypatch.setattr(mnist_files, "OPENML_TRAIN", 50)  # the real split is 60,000 / 10,000
    loaded = mnist_files.load(str(empty), download_missing=False)
    assert loaded.train_images.shape == (50, 28, 28) and loaded.test_images.shape == (20, 28, 28)
    assert np.array_equal(loaded.test_images.reshape(20, -1), x[50:]) and loaded.test_labels[0] == int(y[50])


def test_bad_limits_are_config_errors(tiny_mnist):
    with pytest.raises(ConfigError, match="dataset.train_limit=0 is not allowed"):
        mnist_files.load(str(tiny_mnist[0]), download_missing=False, train_limit=0)


def test_digits_data():
    data = Digits(seed=3).build()
    assert data.train.shape == (1438, 64) and data.val.shape == (359, 64) and data.image_shape == (8, 8)
    assert float(data.train.max()) == 1.0 and float(data.train.min()) == 0.0
    assert set(np.unique(data.val_color)) == set(range(10)) and data.val_color.dtype.kind == "i"
    assert torch.equal(Digits(seed=3).build().val, data.val) and not torch.equal(Digits(seed=4).build().val, data.val)


# ------------------------------------------------------------------ experiments
def test_experiments_compose_with_the_studys_settings():
    cfg = compose(["experiment=mnist_bottleneck"])  # what `aecli experiment=mnist_bottleneck --cfg job` prints
    assert cfg.dataset.name == "mnist" and cfg.model.hidden_sizes == [64] and cfg.model.latent_dim == 2
    assert cfg.model.init == "zeros" and cfg.model.code_dropout == 0.8 and cfg.regularizer.weight_l2 == 1e-2
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.optimizer.lr) == (50, 256, 1e-3)
    assert list(cfg.analyses.latent_manifold.point) == [0.0, -4.0]
    wide, noisy = compose(["experiment=mnist_wide"]), compose(["experiment=mnist_denoising"])
    assert (wide.model.hidden_sizes, wide.model.latent_dim, wide.regularizer.weight_l2) == ([256], 128, 1e-4)
    assert wide.model.init == "default" and wide.analyses.latent_knn.knn_neighbors == 5
    assert (noisy.model.latent_dim, noisy.regularizer.mask_rate, noisy.regularizer.weight_l2) == (32, 0.2, 1e-4)
    assert compose(["experiment=mnist_wide", "dataset=digits"]).dataset.name == "digits"


def test_missing_mnist_stops_the_run_with_the_one_sentence(tmp_path):
    env = {"AECLI_MNIST_DIR": str(tmp_path / "nowhere"), "SCIKIT_LEARN_DATA": str(tmp_path / "nocache")}
    proc = run_cli(
        "experiment=mnist_bottleneck",
        "dataset.download=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("aecli: error: 4 of the 4 MNIST files are missing from")
    assert str(tmp_path / "nowhere") in proc.stderr and "AECLI_MNIST_DIR" in proc.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


FIGURES = {  # besides loss_curve.png, latent.png (the codes by digit) and reconstruction.png
    "mnist_bottleneck": ["encoder_filters.png", "latent_manifold.png", "decoded_point.png"],
    "mnist_wide": ["encoder_filters.png"],
    "mnist_denoising": ["denoising.png", "encoder_filters.png"],
}
EVERY_RUN = ["loss_curve.png", "latent.png", "reconstruction.png"]


FAST = {"mnist_bottleneck": ["analyses.latent_manifold.n=3"], "mnist_wide": [], "mnist_denoising": []}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_on_tiny_mnist_and_on_digits(experiment, tiny_mnist, run_in_process):
    folder, _ = tiny_mnist
    for data_overrides in ([f"dataset.root={folder}", "dataset.download=false"], ["dataset=digits"]):
        summary, run_dir = run_in_process(
            f"experiment={experiment}",
            *data_overrides,
            "trainer.epochs=1",
            "trainer.batch_size=64",
            "plots.enabled=true",
            "plots.dpi=20",
            *FAST[experiment],
        )
        assert summary["status"] == "completed", summary
        assert all((run_dir / f).stat().st_size > 500 for f in [*EVERY_RUN, *FIGURES[experiment]])
        metrics = summary["metrics"]
        # test_mse is the per-pixel MSE on the held-out images: the logged val loss, recomputed
        assert metrics["test_mse"] == pytest.approx(summary["final_val_loss"], rel=1e-5)
        assert 0 < metrics["test_mse"] < 1
        if experiment == "mnist_denoising":
            assert np.isfinite(metrics["test_mse_noisy_input"]) and metrics["test_mse_masked_vs_clean"] > 0
        else:
            assert 0 <= metrics["latent_knn_accuracy"] <= 1


# ------------------------------------------------------------------ known answers
def test_masking_noise_zeroes_the_configured_share():
    x = torch.rand(100_000) + 0.5  # never 0 before masking
    noisy = masking_noise(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert float((noisy == 0).float().mean()) == pytest.approx(0.3, abs=0.01)
    kept = noisy != 0
    assert torch.equal(noisy[kept], x[kept])  # survivors are untouched (no rescaling)
    assert torch.equal(masking_noise(x, 0.3, generator=torch.Generator().manual_seed(0)), noisy)  # seeded


def test_weight_l2_penalty_is_gamma_times_the_sum_of_mean_squared_weights():
    model = MLPAutoencoder(3, [2], 1)
    with torch.no_grad():
        for i, layer in enumerate(m for m in model.modules() if isinstance(m, torch.nn.Linear)):
            layer.weight.fill_(i + 1.0)  # layers of 2x3, 1x2, 2x1, 3x2 weights: means 1, 4, 9, 16
    reg = WeightL2(0.01)
    reg.attach(model)
    penalty = reg.penalty(model)
    assert float(penalty.detach()) == pytest.approx(0.01 * (1 + 4 + 9 + 16))


def test_zero_init_zeroes_every_weight_but_not_the_biases():
    model = compose(["experiment=mnist_bottleneck"]).model
    from hydra.utils import instantiate

    net = instantiate(model).build(DataShape(784))
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 64), (64, 2), (2, 64), (64, 784)]
    assert all(float(m.weight.detach().abs().max()) == 0 for m in linears)
    assert all(float(m.bias.detach().abs().max()) > 0 for m in linears)
    assert type(net.decoder[0]) is torch.nn.Dropout and net.decoder[0].p == 0.8  # the study's code dropout


def code_to_pixels_model() -> MLPAutoencoder:
    """A 2x2-image model whose decoder writes (z_0, z_1, 0, 0): each image shows its own code."""
    model = MLPAutoencoder(4, [], 2, code_dropout=0.8)
    with torch.no_grad():
        model.decoder[-1].weight.copy_(torch.tensor([[1.0, 0], [0, 1], [0, 0], [0, 0]]))
        model.decoder[-1].bias.zero_()
    return model


def test_decoded_grid_decodes_exactly_the_points_it_labels():
    model = code_to_pixels_model()
    model.train()
    z0s, z1s, images = mnist_analyses.decode_grid(model, (-1.0, 2.0), (3.0, 5.0), 4, (2, 2))
    assert np.allclose(z0s, [-1, 0, 1, 2]) and np.allclose(z1s, [5, 13 / 3, 11 / 3, 3])  # z_1 top to bottom
    assert images.shape == (4, 4, 2, 2)
    for r in range(4):
        for c in range(4):
            assert images[r, c, 0, 0] == pytest.approx(z0s[c]) and images[r, c, 0, 1] == pytest.approx(z1s[r])
    assert model.training  # decoded in eval mode (no code dropout), mode restored


def tiny_context(tmp_path, model, val, train=None, train_labels=None, val_labels=None, mask_rate=0.0):
    from aecli.data import Dataset

    train = val if train is None else train
    data = Dataset(
        "tiny",
        torch.as_tensor(train).float(),
        torch.as_tensor(val).float(),
        np.zeros(len(train), int) if train_labels is None else train_labels,
        np.zeros(len(val), int) if val_labels is None else val_labels,
        "digit",
        train_labels=None if train_labels is None else train_labels[:, None],
        val_labels=None if val_labels is None else val_labels[:, None],
        label_names=("digit",),
        image_shape=(2, 2),
        val_name="test",
    )
    cfg = OmegaConf.create({"regularizer": {"mask_rate": mask_rate}})
    return RunContext(cfg, model, model, None, data, [], torch.device("cpu"), torch.float32, tmp_path, "tiny", 40)


def zero_output_model() -> MLPAutoencoder:
    model = MLPAutoencoder(4, [3], 2)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()
    return model


def test_reconstructions_test_mse_and_denoising_known_answers(tmp_path):
    x = np.random.default_rng(0).uniform(0.5, 1.0, (400, 4))
    ctx = tiny_context(tmp_path, zero_output_model(), x, mask_rate=0.25)
    # a model that outputs zeros scores mean(x^2), on clean and on masked inputs alike
    assert mnist_analyses.reconstruction_mse(ctx)["test_mse"] == pytest.approx(np.mean(x**2), rel=1e-5)
    metrics = mnist_analyses.denoising(ctx, n_images=3)
    assert metrics["test_mse_noisy_input"] == pytest.approx(np.mean(x**2), rel=1e-5)
    # the masked images miss a quarter of their pixels: their own MSE is about mean(x^2) / 4
    assert metrics["test_mse_masked_vs_clean"] == pytest.approx(0.25 * np.mean(x**2), rel=0.1)
    assert (tmp_path / "denoising.png").exists() and not (tmp_path / "reconstructions.png").exists()
    with pytest.raises(ConfigError, match="analyses.denoising.mask_rate=0.0"):
        mnist_analyses.denoising(tiny_context(tmp_path, zero_output_model(), x, mask_rate=0.0))


def test_encoder_filters_are_first_layer_weight_rows(tmp_path):
    model = MLPAutoencoder(4, [6], 2)
    units = mnist_analyses._seeded_pick(6, 3, seed=0)
    assert len(set(units)) == 3 and np.array_equal(units, mnist_analyses._seeded_pick(6, 3, seed=0))
    images = mnist_analyses.filter_images(model, units, (2, 2))
    assert np.array_equal(images[1].ravel(), model.encoder[0].weight[units[1]].detach().numpy())
    mnist_analyses.encoder_filters(tiny_context(tmp_path, model, np.zeros((5, 4))), n_filters=3)
    assert (tmp_path / "encoder_filters.png").exists()


def test_latent_knn_accuracy_and_manifold(tmp_path):
    model = code_to_pixels_model()
    with torch.no_grad():  # encoder: the code is the image's first two pixels
        model.encoder[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0]]))
        model.encoder[0].bias.zero_()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    x = np.zeros((200, 4))
    x[:, 0], x[:, 1] = labels * 10 + rng.uniform(0, 1, 200), rng.uniform(0, 1, 200)  # 10 far-apart clusters
    ctx = tiny_context(tmp_path, model, x, train_labels=labels, val_labels=labels)
    assert mnist_analyses.latent_knn(ctx)["latent_knn_accuracy"] == 1.0
    shuffled = tiny_context(tmp_path, model, x, train_labels=labels, val_labels=rng.permutation(labels))
    assert mnist_analyses.latent_knn(shuffled)["latent_knn_accuracy"] < 0.3
    mnist_analyses.latent_manifold(ctx, n=3)
    assert all((tmp_path / f).exists() for f in ("latent_manifold.png", "decoded_point.png"))
    assert not {"latent_2d.png", "latent_3d.png"} & {p.name for p in tmp_path.iterdir()}  # latent.png has them
    with pytest.raises(ConfigError, match="latent_knn.knn_neighbors=0 is not allowed"):
        mnist_analyses.latent_knn(ctx, knn_neighbors=0)


def test_integer_colours_get_one_discrete_colour_per_digit():
    kwargs, ticks = plots.color_kwargs(np.array([0, 3, 9, 9]))
    assert list(ticks) == list(range(10)) and kwargs["cmap"].N == 10
    assert kwargs["norm"](np.array([3]))[0] == 3 and kwargs["norm"](np.array([9]))[0] == 9  # digit k -> colour k
    kwargs, ticks = plots.color_kwargs(np.linspace(0, 1, 5))
    assert ticks is None and kwargs["cmap"] == "viridis"
