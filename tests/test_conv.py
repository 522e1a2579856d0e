"""model=conv: the convolutional autoencoder gives back exactly the image it was given (any size),
refuses what it cannot build in one sentence, learns digits better than the mean image, draws the
image figures, reloads to the same loss and resumes bit-exact; MNIST and its studies run with it."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from conftest import read_summary, run_cli
from torch import nn

import aecli
from aecli.config import compose
from aecli.data import DataShape, Digits
from aecli.errors import ConfigError
from aecli.models.conv import ConvAutoencoder, ConvSpec
from aecli.pipeline import run
from aecli.run_files import load_checkpoint

FIGURES = {"loss_curve.png", "latent.png", "reconstruction.png"}
QUIET = ["trainer.progress=false"]


def conv_for(height: int, width: int, **settings) -> ConvAutoencoder:
    spec = ConvSpec(**settings)
    shape = DataShape(height * width, (height, width))
    spec.check_fits(shape, "test")
    return spec.build(shape)


# ------------------------------------------------------------------------------ the model
@pytest.mark.parametrize(
    "height, width, channels",
    [(8, 8, [16, 32]), (28, 28, [16, 32]), (7, 9, [8, 16]), (5, 5, [8]), (28, 28, [4, 8, 16, 32]), (9, 7, [2, 2, 2])],
)
def test_the_decoder_gives_back_exactly_the_image_size(height, width, channels):
    model = conv_for(height, width, channels=channels, latent_dim=5)
    rows = torch.rand(3, height * width)  # flattened rows in, as the loop and the analyses give them
    code = model.encode(rows)
    assert code.shape == (3, 5)
    assert model.decode(code).shape == (3, height * width)  # flattened rows out: the loss compares them directly
    # and every layer's map, not only the last: the decoder retraces the encoder's sizes exactly
    maps = [rows.reshape(3, 1, height, width)]
    for layer in model.encoder:
        if isinstance(layer, nn.Conv2d):
            maps.append(layer(maps[-1]))
    out = model.decoder[1](model.decoder[0](code))
    for layer in model.decoder:
        if isinstance(layer, nn.ConvTranspose2d):
            maps.pop()
            out = layer(out)
            assert out.shape[2:] == maps[-1].shape[2:]


def test_the_encoder_sees_each_row_as_the_image_it_is():
    """A row is height x width, row-major (as the data sets flatten them): a transposed view would
    still give every size right, but the kernels would see columns as rows."""
    model = conv_for(7, 9, channels=[4])
    seen = []
    model.encoder[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    images = torch.arange(2 * 63, dtype=torch.float32).reshape(2, 7, 9)
    model.encode(images.reshape(2, 63))
    assert torch.equal(seen[0], images[:, None])


@pytest.mark.parametrize("channels", [[8], [8, 16], [4, 8, 16]])
def test_layers_follow_channels_and_the_parameter_count_is_exact(channels):
    model = conv_for(28, 28, channels=channels)
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    transposed = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == channels
    assert [m.in_channels for m in transposed] == channels[::-1]
    assert transposed[-1].out_channels == 1
    # an activation after every convolution but the last transposed one (the pixels are linear)
    assert len(model.activation_modules()) == 2 * len(channels) - 1
    assert isinstance(model.decoder[-2], nn.ConvTranspose2d)
    spec, shape = ConvSpec(channels=channels), DataShape(784, (28, 28))
    assert spec.parameter_count(shape) == sum(p.numel() for p in model.parameters())


def test_the_spec_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="kernel_size=4 is not allowed: use an odd size"):
        ConvSpec(kernel_size=4)
    with pytest.raises(ValueError, match=r"channels=\[\] is not allowed"):
        ConvSpec(channels=[])
    ConvSpec(channels=[4, 4, 4]).check_fits(DataShape(63, (7, 9)), "x")  # 7 -> 4 -> 2 -> 1 pixels: fits
    with pytest.raises(ConfigError, match=r"halves each image 4 times, more than the 7x9 images .* at most 3 entries"):
        ConvSpec(channels=[4, 4, 4, 4]).check_fits(DataShape(63, (7, 9)), "x")
    with pytest.raises(ConfigError, match="1x5 images of dataset=x are too small for model=conv"):
        ConvSpec(channels=[4]).check_fits(DataShape(5, (1, 5)), "x")
    with pytest.raises(ConfigError, match="needs image data"):
        ConvSpec().build(DataShape(2))


@pytest.mark.parametrize(
    "args, expect",
    [
        (["dataset=digits", "model.channels=[4,4,4,4]"], "halves each image 4 times, more than the 8x8 images"),
        (["dataset=digits", "model.kernel_size=4"], "model.kernel_size=4 is not allowed: use an odd size"),
        (["dataset=spiral"], "model=conv needs image data"),
    ],
    ids=["image-too-small", "even-kernel", "not-images"],
)
def test_what_conv_cannot_build_is_one_sentence_from_the_command(tmp_path, args, expect):
    run_dir = tmp_path / "run"
    proc = run_cli("model=conv", *args, f"hydra.run.dir={run_dir}", *QUIET, cwd=tmp_path, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("aecli: error: "), proc.stderr
    assert expect in lines[0] and "Traceback" not in proc.stderr
    assert lines[0].count(". ") == 0  # one sentence
    assert all(json.loads(s.read_text())["status"] != "completed" for s in tmp_path.rglob("summary.json"))


# ------------------------------------------------------------------ a real run on digits
EPOCHS = 10


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """`aecli model=conv dataset=digits`, as a user types it, with figures."""
    run_dir = tmp_path_factory.mktemp("conv_digits") / "run"
    run_cli(
        "model=conv",
        "dataset=digits",
        f"trainer.epochs={EPOCHS}",
        f"hydra.run.dir={run_dir}",
        *QUIET,
        cwd=run_dir.parent,
    )
    return run_dir


def test_conv_learns_digits_better_than_untrained_and_than_the_mean_image(digits_run):
    summary = read_summary(digits_run)
    assert summary["status"] == "completed" and summary["model"] == "conv" and summary["epochs"] == EPOCHS
    rows = list(csv.DictReader(open(digits_run / "metrics.csv")))
    untrained, final = float(rows[0]["val_loss"]), summary["final_val_loss"]
    assert final < untrained / 5
    data = Digits(seed=summary["seed"]).build()  # the run's own split (dataset.seed is ${seed})
    baseline = float(((data.val - data.train.mean(dim=0)) ** 2).mean())  # predict the mean training image
    assert final < baseline / 2, (final, baseline)


def test_conv_draws_the_figures_an_mlp_draws_on_images(digits_run, tmp_path):
    mlp_dir = tmp_path / "mlp"
    summary = run(compose(["model=mlp", "dataset=digits", "trainer.epochs=1", *QUIET]), mlp_dir)
    assert summary.status == "completed"
    pngs = lambda folder: {p.name for p in folder.glob("*.png")}  # noqa: E731
    assert pngs(digits_run) == pngs(mlp_dir) == FIGURES
    picture = matplotlib.image.imread(digits_run / "reconstruction.png")
    height, width = picture.shape[:2]
    assert width > 2.5 * height  # two rows of ten images, not a square scatter plot
    rgb = picture[..., :3]
    grey = np.isclose(rgb[..., 0], rgb[..., 1]) & np.isclose(rgb[..., 1], rgb[..., 2])
    assert grey.mean() > 0.99  # grey images on white, no colour map


def test_a_conv_checkpoint_reloads_to_the_logged_loss(digits_run):
    loaded = aecli.load_run(digits_run)
    assert isinstance(loaded.model, ConvAutoencoder) and loaded.model.image_shape == (8, 8)
    assert loaded.val_loss() == pytest.approx(loaded.summary["final_val_loss"], rel=1e-6)
    rows = loaded.data().val[:4].numpy()
    assert loaded.reconstruct(rows).shape == (4, 64) and loaded.encode(rows[0]).shape == (16,)
    best = aecli.load_run(digits_run, checkpoint="best")
    assert best.val_loss() == pytest.approx(best.summary["best_val_loss"], rel=1e-6)


# ------------------------------------------------------------------------- resume
RESUME = [
    "model=conv",
    "dataset=digits",
    "model.channels=[4,8]",
    "trainer.epochs=3",
    "trainer.checkpoint_every=1",
    "trainer.log_steps=true",
    "optimizer.lr_decay=0.9",
    "plots.enabled=false",
    *QUIET,
]
STEPS_PER_EPOCH = 45  # 1,438 training images in batches of 32


def run_stopping_at(step: int | None, run_dir: Path, *extra: str) -> dict:
    """RESUME in-process, sending ourselves SIGTERM during training step `step` (as SLURM would):
    ConvAutoencoder.encode is called once per step in train mode (evaluation runs in eval mode)."""
    calls, encode = {"n": 0}, ConvAutoencoder.encode

    def encode_and_maybe_signal(self, x):
        if self.training:
            calls["n"] += 1
            if calls["n"] == step:
                signal.raise_signal(signal.SIGTERM)
        return encode(self, x)

    ConvAutoencoder.encode = encode_and_maybe_signal  # type: ignore[method-assign]
    try:
        return run(compose([*RESUME, *extra]), run_dir).as_dict()
    finally:
        ConvAutoencoder.encode = encode  # type: ignore[method-assign]


def outcome(run_dir: Path) -> tuple:
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    losses = [row[:4] for row in csv.reader(open(run_dir / "metrics.csv"))]  # not the seconds
    return last["model"], losses, (run_dir / "steps.csv").read_text()


def test_an_interrupted_conv_run_resumes_bit_exact(tmp_path):
    reference = run_stopping_at(None, tmp_path / "reference")
    assert reference["status"] == "completed" and reference["steps"] == 3 * STEPS_PER_EPOCH
    run_dir, done = tmp_path / "stopped", 0
    for stop in (30, 70):  # mid-epoch 1, then mid-epoch 2 after resuming
        resume = [f"trainer.resume_from={run_dir}"] if done else []
        summary = run_stopping_at(stop - done, run_dir, *resume)
        assert summary["status"] == "interrupted" and summary["steps"] == stop
        done = stop
    summary = run_stopping_at(None, run_dir, f"trainer.resume_from={run_dir}")
    assert summary["status"] == "completed" and summary["resumed_from"]["step"] == 70
    (weights, losses, steps), (ref_weights, ref_losses, ref_steps) = outcome(run_dir), outcome(tmp_path / "reference")
    assert weights.keys() == ref_weights.keys() and all(torch.equal(weights[k], ref_weights[k]) for k in weights)
    assert losses == ref_losses and steps == ref_steps


# -------------------------------------------------------------------------------- MNIST
@pytest.fixture
def mnist_env(tiny_mnist, monkeypatch):
    """tiny_mnist's files through $AECLI_MNIST_DIR; dataset.download=false so nothing is ever fetched."""
    folder, _ = tiny_mnist
    monkeypatch.setenv("AECLI_MNIST_DIR", str(folder))
    return ["dataset.download=false", "trainer.epochs=1", *QUIET]


def test_conv_on_mnist_gives_back_28x28_images(mnist_env, tmp_path):
    summary = run(compose(["dataset=mnist", "model=conv", *mnist_env]), tmp_path / "run")
    assert summary.status == "completed" and summary.parameters == ConvSpec().parameter_count(DataShape(784, (28, 28)))
    assert {p.name for p in (tmp_path / "run").glob("*.png")} == FIGURES
    assert aecli.load_run(tmp_path / "run").model.image_shape == (28, 28)


def test_the_mnist_bottleneck_study_runs_with_a_conv_net(mnist_env, tmp_path):
    overrides = ["experiment=mnist_bottleneck", "model=conv", "model.latent_dim=2", "~analyses.encoder_filters"]
    summary = run(compose([*overrides, *mnist_env]), tmp_path / "run")
    assert summary.status == "completed"
    drawn = {p.name for p in (tmp_path / "run").glob("*.png")}
    assert {"reconstruction.png", "latent.png", "latent_manifold.png", "decoded_point.png"} <= drawn
    assert {"test_mse", "latent_knn_accuracy"} <= set(summary.metrics)


def test_the_mnist_denoising_study_runs_with_a_conv_net_including_its_encoder_filters(mnist_env, tmp_path):
    summary = run(compose(["experiment=mnist_denoising", "model=conv", *mnist_env]), tmp_path / "run")
    assert summary.status == "completed" and (tmp_path / "run" / "encoder_filters.png").is_file()


def test_the_mnist_denoising_study_runs_with_a_conv_net(mnist_env, tmp_path):
    overrides = ["experiment=mnist_denoising", "model=conv", "~analyses.encoder_filters"]
    summary = run(compose([*overrides, *mnist_env]), tmp_path / "run")
    assert summary.status == "completed" and (tmp_path / "run" / "denoising.png").is_file()
    assert summary.metrics["test_mse_noisy_input"] > 0


# --------------------------------------------------------------------- memory estimate
def test_conv_on_larger_images_is_not_refused_for_weights_it_does_not_have(monkeypatch):
    from aecli import memory

    monkeypatch.setattr(memory, "machine_memory", lambda: 8 * 2**30)  # a laptop
    spec, shape = ConvSpec(), DataShape(128 * 128, (128, 128))
    assert spec.parameter_count(shape) * 4 * memory.PARAM_COPIES < 2**30  # its real weights: a few MiB
    memory.check_model_memory(spec, shape, 1000, 100, compose(QUIET))  # refused today: "about 144 GiB"
