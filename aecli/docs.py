"""README parts generated from the project itself, so they never drift from it.

    python -m aecli.docs config-groups   # README's config-group tables, from conf/ and the schemas
    python -m aecli.docs gallery         # docs/gallery/*.png from real aecli runs, and README's Gallery
    python -m aecli.docs all             # both
    python -m aecli.docs config-groups --check   # exit 1 if README's block is out of date (writes nothing)

Each generated part sits in README.md between `<!-- NAME:start -->` and `<!-- NAME:end -->`
markers; only the text between them is rewritten. tests/test_docs.py fails when README's
blocks differ from what these generators would write now.

config-groups reads every YAML option under conf/: its description is the first sentence of its
header comment (the comment lines before `defaults:`), and its values are those Hydra composes
for `<group>=<option>`. Each table lists what an option changes relative to the group's default.

gallery trains the studies' experiments with short settings (each caption gives the command)
into a temporary folder with the real `aecli` command, then copies the chosen figures,
downscaled to at most MAX_WIDTH pixels and reduced to a 256-colour palette, into docs/gallery/.
The MNIST entries need the MNIST files ($AECLI_MNIST_DIR, else ../shared/data/mnist beside the
repository); without them those entries keep their current PNGs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, cast

from omegaconf import DictConfig, OmegaConf

from aecli.config import config_options
from aecli.reporting.jobs import flatten

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONF = REPO / "conf"
GALLERY_DIR = REPO / "docs" / "gallery"
MAX_WIDTH = 760  # pixels: GitHub's README column is about 830 wide
COMMAND = "python -m aecli.docs"

# What each group is for: prose the YAML files cannot hold (their options and values are generated).
GROUP_NOTES = {
    "dataset": "The data and its seeded train/validation split (`train_fraction` 1: train on everything and "
    "validate on the same points); each option names its data set's spec class in aecli/data/ by `_target_`.",
    "model": "The autoencoder: a model family (its spec class in aecli/models/, named by `_target_`) or one of "
    "the studies' presets of the MLP.",
    "optimizer": "`lr_decay`: an exponential schedule, gamma per epoch; `fused`: torch's fused kernel of the "
    "same algorithm (else foreach).",
    "regularizer": "Terms that add up (`weight_l2`, `activation_l1`, `activation_l2`, `mask_rate`), each off at 0 "
    "unless an option or a value switches it on, so any mix can be set or chosen: "
    "`regularizer=denoising regularizer.weight_l2=1e-4`, `regularizer=[denoising,weight_l2]`.",
    "transfer": "Starting from another run's decoder (see the `rectangle_frozen_decoder` study).",
    "callbacks": "The per-epoch work, in order; drop one with e.g. `~callbacks.progress`.",
    "trainer": "The training loop (`loss`: `mse` mean / `sse` sum per sample; `device`: `auto`, `cpu`, `cuda`, `mps`).",
    "logger": "Experiment trackers; any number at once: `logger=[csv,tensorboard,mlflow]`.",
    "experiment": "A whole study comparison in one file (see [Studies](#studies)).",
    "hparams_search": "A hyperparameter search, with `-m` (see [Hyperparameter search](#hyperparameter-search)).",
    "hydra/launcher": "Where sweep jobs run; the launcher plugins' own `joblib`, `submitit_local` and "
    "`submitit_slurm` work too (see [Parallel and cluster runs](#parallel-and-cluster-runs)).",
    "variant": "Settings that an experiment sweeps as one unit.",
}
HIDDEN_KEYS = ("_target_", "name")  # the same for every preset of an option, or the option's own name


# ------------------------------------------------------------------ README blocks
def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str) -> str:
    """The text between a block's markers (ValueError when README has no such block)."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"README.md has no {start} ... {end} block")
    return text.split(start, 1)[1].split(end, 1)[0]


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the block's contents replaced by `body` (a blank line either side)."""
    start, end = markers(name)
    old = read_block(text, name)
    return text.replace(f"{start}{old}{end}", f"{start}\n{body.strip()}\n{end}", 1)


def write_block(name: str, body: str, check: bool = False) -> bool:
    """Put `body` into README's block; with check, only say whether it is up to date. True: up to date."""
    text = README.read_text()
    new = replace_block(text, name, body)
    if new == text:
        return True
    if not check:
        README.write_text(new)
    return False


# ----------------------------------------------------------------- config groups
def description(path: Path, limit: int = 240) -> str:
    """The first sentence of a YAML file's header comment (before its first non-comment line)."""
    lines: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        raw = line[1:]
        text = raw.strip()
        if text.startswith("@package"):
            continue
        if lines and raw.startswith("  "):  # an indented example or layout: the prose ended above it
            break
        if not text:
            if lines:
                break
            continue
        lines.append(text)
    joined = " ".join(lines)
    # a sentence ends at . ? or ! before whitespace, except in "e.g." / "i.e." / "vs."
    match = re.search(r"(?<!e\.g)(?<!i\.e)(?<!vs)[.?!](?=\s)", joined)
    sentence = joined[: match.end()] if match else re.sub(r"[:,;]$", ".", joined)
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return sentence


def value_text(value: Any) -> str:
    """A value as you would type it in an override: null, true, 0.001, [50,50,50], ${seed}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e6 else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def settings_text(values: dict[str, Any]) -> str:
    return ", ".join(f"`{key}={value_text(v)}`" for key, v in values.items()).replace("|", "\\|")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def container(node: Any) -> dict[str, Any]:
    """A config node as plain dicts and lists, interpolations left as `${...}` text."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=False))


def root_defaults() -> list[tuple[str, Optional[str]]]:
    """(group, default option or None) in conf/config.yaml's defaults order."""
    out = []
    for entry in container(OmegaConf.load(CONF / "config.yaml"))["defaults"]:
        if isinstance(entry, dict):
            ((group, option),) = entry.items()
            out.append((group, option if isinstance(option, str) else None))
    return out


def groups() -> list[tuple[str, Optional[str], list[str]]]:
    """(group, default option, options: the default first, then by name) for every folder of conf/."""
    found = config_options()
    defaults = dict(root_defaults())
    order = [g for g, _ in root_defaults() if g in found] + sorted(g for g in found if g not in defaults)
    out = []
    for group in order:
        default = defaults.get(group)
        options = sorted(found[group], key=lambda o: (o != default, o))
        out.append((group, default, options))
    return out


def composed(choices: Sequence[tuple[str, str]]) -> tuple[DictConfig, dict[tuple[str, str], dict[str, Any]]]:
    """The default config, and for each (group, option) that option's values: the option file composed on
    its own (its defaults list included: schema, preset base), which is what `aecli <group>=<option>`
    puts under `<group>`; one Hydra session for all of them."""
    from hydra import compose, initialize_config_module

    from aecli.config import register_schemas

    register_schemas()
    with initialize_config_module(config_module="aecli.conf", version_base="1.3"):
        root = compose(config_name="config")
        values = {(g, o): group_values(compose(config_name=f"{g}/{o}"), g) for g, o in choices}
    return root, values


def group_values(cfg: DictConfig, group: str) -> dict[str, Any]:
    """The group's node, flattened (`a.b` keys), unresolved (interpolations stay `${...}`), without
    `_target_` and `name`."""
    node = OmegaConf.select(cfg, group.replace("/", "."))
    tree = container(node) if node is not None else {}
    return {k: v for k, v in flatten(tree).items() if k.split(".")[-1] not in HIDDEN_KEYS}


def config_groups_markdown() -> str:
    """The README block: one table per group (option, description and, for groups with a default, what
    it changes relative to the default), then the top-level keys."""
    all_groups = groups()
    valued = [(g, d, opts) for g, d, opts in all_groups if d is not None]  # options that compose into cfg[g]
    top, option_values = composed([(g, o) for g, _, opts in valued for o in opts])
    lines = [
        (
            f"<!-- generated by `{COMMAND} config-groups` from conf/: edit the YAML files (their first comment "
            "sentence is the description), then run it again -->"
        ),
        "",
    ]
    for group, default, options in all_groups:
        heading = f"**`{group}`**" + (f" (default `{default}`)" if default else " (none by default)")
        lines += [f"{heading}: {GROUP_NOTES.get(group, '')}".rstrip(": ")]
        if default is not None:
            base = option_values[(group, default)]
            if base:
                lines += ["", f"Fields, as `{group}={default}` sets them: {settings_text(base)}."]
            lines += ["", "| option | what it is | changes from the default |", "|---|---|---|"]
            for option in options:
                values = option_values[(group, option)]
                changed = {k: v for k, v in values.items() if k not in base or base[k] != v}
                what = "*(default)*" if option == default else settings_text(changed) or "nothing"
                lines.append(f"| `{option}` | {cell(description(CONF / group / f'{option}.yaml'))} | {what} |")
        else:
            lines += ["", "| option | what it is |", "|---|---|"]
            lines += [f"| `{o}` | {cell(description(CONF / group / f'{o}.yaml'))} |" for o in options]
        lines.append("")
    skip = {g.split("/")[0] for g, _, _ in all_groups}
    tree = container(top)
    values = {k: v for k, v in flatten(tree).items() if k.split(".")[0] not in skip}
    values.update({k: v for k, v in tree.items() if k not in skip and v == {}})  # {} flattens to nothing
    lines.append(f"**Top level** (no group): {settings_text(dict(sorted(values.items())))}.")
    return "\n".join(lines)


# ----------------------------------------------------------------------- gallery
@dataclass(frozen=True)
class Shot:
    """One gallery image: `figure` of the run (or sweep) that `args` make, shown as `name`.png."""

    name: str
    title: str
    args: tuple[str, ...]  # aecli's arguments, as the caption shows them
    figure: str  # a file in the run folder (a sweep: in the sweep folder)
    caption: str
    mnist: bool = False  # needs the MNIST files: dataset.root is added
    width: int = MAX_WIDTH  # at most this many pixels wide (wide grids: more; GitHub opens the full size on click)
    run: str = ""  # shots with the same `run` share one run of `args` (default: the shot's own name)


GALLERY = (
    Shot(
        "nonlinear_2d",
        "nonlinear_2d: five 2-3-2 nets on two curves",
        ("-m", "experiment=nonlinear_2d", "plots.error_map_resolution=200"),
        "comparison_reconstruction.png",
        "Validation points (grey) and their reconstructions, one column per net, polynomial curve above and "
        "spiral below: the linear net reproduces the input, the ReLU and tanh nets squeeze it onto a curve.",
        width=1400,
    ),
    Shot(
        "nonlinear_2d_error_map",
        "nonlinear_2d: where the ReLU net reconstructs well",
        ("-m", "experiment=nonlinear_2d", "plots.error_map_resolution=200"),
        "1/error_map.png",
        "Job 1 of the same sweep (polynomial, relu): the reconstruction error over the plane, and the "
        "region where it is below 0.1.",
        run="nonlinear_2d",
    ),
    Shot(
        "swiss_roll",
        "swiss_roll: a new, noisier roll through the 2-D code",
        ("experiment=swiss_roll", "trainer.epochs=1500"),
        "decoded_new_roll.png",
        "The new roll, its reconstruction in eval mode, and in train mode (dropout on, as the study measured).",
        width=900,
    ),
    Shot(
        "beta_curves",
        "beta_curves: fitting an unseen curve through the decoder",
        ("experiment=beta_curves", "dataset.n=2000", "trainer.epochs=5"),
        "latent_inversion.png",
        "Nelder-Mead over the 2-D decoder input fits log Beta(2, 4), a curve the net never saw.",
    ),
    Shot(
        "mnist_bottleneck",
        "mnist_bottleneck: the 2-D code of the test digits",
        ("experiment=mnist_bottleneck", "dataset.train_limit=10000", "trainer.epochs=10"),
        "latent.png",
        "The study's code dropout of 0.8 squeezes the codes onto a line (see [docs/studies/mnist.md]"
        "(docs/studies/mnist.md)).",
        mnist=True,
        width=600,
    ),
    Shot(
        "mnist_denoising",
        "mnist_denoising: masked in, clean out",
        ("experiment=mnist_denoising", "trainer.epochs=10"),
        "denoising.png",
        "Test images with 20% of the pixels zeroed, their reconstructions, and the clean images.",
        mnist=True,
    ),
    Shot(
        "rectangle_capacity",
        "rectangle_capacity: a 1-D code through a 2-D rectangle",
        ("experiment=rectangle_capacity", "trainer.epochs=300"),
        "decoder_image.png",
        "The big net's decoder image of the code line (the curve) over the data, trained and untrained.",
        width=900,
    ),
    Shot(
        "rectangle_frozen_decoder",
        "rectangle_frozen_decoder: a new encoder for a frozen decoder",
        ("experiment=rectangle_frozen_decoder", "trainer.epochs=300"),
        "encoder_shift.png",
        "How far the new encoder moves each point's code from the old one: least near the decoder's curve.",
        width=600,
    ),
    Shot(
        "rectangle_gd_vs_sgd",
        "rectangle_gd_vs_sgd: full-batch GD against SGD at batch 1",
        ("-m", "experiment=rectangle_gd_vs_sgd", "trainer.epochs=300"),
        "comparison_step_losses.png",
        "The loss of every optimizer step on a shared 0-1 axis: SGD's swings over orders of magnitude, "
        "GD's smooth line near 1.",
    ),
    Shot(
        "activation_penalty",
        "activation_penalty: sparse activations from an L1 penalty",
        ("experiment=activation_penalty", "regularizer=activation_l1", "trainer.epochs=300"),
        "activations.png",
        "Histograms of the big net's hidden activations under the L1 penalty; the titles give the share "
        "that is (almost) exactly 0.",
        width=900,
    ),
)


def gallery_markdown() -> str:
    lines = [f"<!-- generated by `{COMMAND} gallery`: real runs with the short settings shown -->", ""]
    for shot in GALLERY:
        lines += [
            f"**{shot.title}** (`aecli {' '.join(shot.args)}`). {shot.caption}",
            "",
            f"![{shot.name}](docs/gallery/{shot.name}.png)",
            "",
        ]
    return "\n".join(lines).rstrip()


def mnist_dir() -> Optional[Path]:
    """$AECLI_MNIST_DIR, else ../shared/data/mnist beside the repository, if it holds the files."""
    for candidate in (os.environ.get("AECLI_MNIST_DIR"), REPO.parent / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate).resolve()
    return None


def shrink(source: Path, target: Path, max_width: int = MAX_WIDTH) -> None:
    """A copy of a PNG at most `max_width` wide, on a 256-colour palette (Pillow ships with matplotlib)."""
    from PIL import Image

    with Image.open(source) as opened:
        image = opened.convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def make_gallery(work_dir: Optional[Path] = None, only: Sequence[str] = (), reuse: bool = False) -> list[str]:
    """Run each shot's command with the real CLI and copy its figure into docs/gallery/; returns the
    names made. Shots needing MNIST are skipped (their PNGs kept) when the files are not there.
    With `reuse`, a run already in `work_dir` from an earlier call with the same arguments is not run again."""
    GALLERY_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="aecli-gallery-"))
    made, ran = [], set()
    for shot in GALLERY:
        if only and shot.name not in only:
            continue
        args = list(shot.args)
        if shot.mnist:
            root = mnist_dir()
            if root is None:
                print(f"{shot.name}: skipped, no MNIST files (set AECLI_MNIST_DIR); keeping its PNG", file=sys.stderr)
                continue
            args.append(f"dataset.root={root}")
        out = work / (shot.run or shot.name)
        figure, stamp = out / shot.figure, out / ".gallery-args"  # stamp: the arguments that run was made with
        started = time.perf_counter()
        if out not in ran and not (reuse and stamp.is_file() and stamp.read_text() == " ".join(args)):
            shutil.rmtree(out, ignore_errors=True)
            where = f"hydra.sweep.dir={out}" if "-m" in args else f"hydra.run.dir={out}"
            proc = subprocess.run(
                [sys.executable, "-m", "aecli", *args, "trainer.progress=false", where],
                cwd=work,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(
                    f"{shot.name}: aecli {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}"
                )
            stamp.write_text(" ".join(args))
            ran.add(out)
        if not figure.is_file():
            raise RuntimeError(f"{shot.name}: aecli {' '.join(args)} wrote no {shot.figure}")
        shrink(figure, GALLERY_DIR / f"{shot.name}.png", shot.width)
        print(
            f"{shot.name}: {time.perf_counter() - started:.0f} s, "
            f"{(GALLERY_DIR / f'{shot.name}.png').stat().st_size / 1024:.0f} KiB"
        )
        made.append(shot.name)
    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return made


# -------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Regenerate README parts from the project.")
    parser.add_argument("what", choices=["config-groups", "gallery", "all"])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if README's block(s) are out of date (gallery: the text only)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        metavar="NAME",
        help=f"gallery: remake only these images ({', '.join(s.name for s in GALLERY)})",
    )
    parser.add_argument("--work-dir", type=Path, help="gallery: run folder to keep (default: a temporary one)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="gallery: keep the runs already in --work-dir (only re-shrink their figures)",
    )
    args = parser.parse_args(argv)
    up_to_date = True
    if args.what in ("config-groups", "all"):
        up_to_date &= write_block("config-groups", config_groups_markdown(), args.check)
    if args.what in ("gallery", "all"):
        if not args.check:
            make_gallery(args.work_dir, args.only, args.reuse)
        up_to_date &= write_block("gallery", gallery_markdown(), args.check)
    if args.check and not up_to_date:
        print(f"README.md is out of date: run `{COMMAND} {args.what}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
