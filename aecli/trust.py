"""Nothing read from a file may run code or exhaust memory: the checks every file-born input passes.

A run folder can come from anyone (a shared disk, a download), so what it holds is data, never
instructions. Two ways that data could turn into code or into gigabytes:

- A config. Hydra's `instantiate` imports and calls whatever a `_target_` names, and an OmegaConf
  interpolation `${...}` calls a resolver. `trusted_config` is the one gate every config read from
  a file goes through: only aecli's own targets (`aecli_targets`), anywhere in the tree, and no
  interpolation in a config that was saved resolved. YAML anchors and aliases are refused too:
  OmegaConf expands each alias into a copy, so a few kilobytes of nested aliases become gigabytes.
- A checkpoint. `torch.load(weights_only=True)` unpickles no objects, but it allocates whatever
  size each record of the zip archive declares, and inflates compressed records into that space.
  `check_torch_archive` refuses such archives before torch reads them; `check_checkpoint_layout`
  checks the loaded parts' types, so later code never fails with a KeyError or StopIteration.

Every refusal is one sentence, a `aecli.run_files.CheckpointError` (a ConfigError).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import pkgutil
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn, cast

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from aecli.config import register_schemas

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB of YAML; a resolved aecli config is 2-4 KB
# YAML nodes: a resolved aecli config has about 150; OmegaConf needs ~50 us and ~700 B per node,
# so 1 MiB of `[0,0,0,...]` (400,000 nodes) would take 20 s and 300 MB without this cap
MAX_CONFIG_NODES = 10_000
MAX_CONFIG_DEPTH = 32  # nesting of mappings and lists; aecli's configs nest 4 deep
# A checkpoint's size, and the total its archive entries may declare. The largest real aecli
# checkpoint (mnist_wide, with its Adam state) is about 4 MB; this leaves room for far bigger models.
MAX_CHECKPOINT_BYTES = 4 << 30  # 4 GiB


def refuse(message: str) -> NoReturn:
    """Raise CheckpointError(message). Imported here, not at the top: aecli.run_files imports torch,
    and readers of .hydra/*.yaml (aecli.reporting.report) should not need it to read a file that is fine."""
    from aecli.run_files import CheckpointError

    raise CheckpointError(message)


def _one_line(err: BaseException, limit: int = 200) -> str:
    """An error's message on one line (YAML errors span several), shortened."""
    return " ".join(str(err).split())[:limit] or type(err).__name__


def _where(err: yaml.YAMLError) -> str:
    """ " (line 3)": where in the text a YAML error is, as far as PyYAML says."""
    mark = getattr(err, "problem_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ configs
def trusted_config(text: str, origin: str, *, resolved: bool = True) -> DictConfig:
    """The config in `text` (YAML read from `origin`, a file), refused unless building it can only
    build aecli's own objects and reading it costs bounded time and memory: at most
    MAX_CONFIG_BYTES, MAX_CONFIG_NODES nodes and MAX_CONFIG_DEPTH levels, no anchors or aliases,
    a mapping at the top (empty text: an empty one), every `_target_` one of `aecli_targets()`,
    and, when `resolved` (checkpoints save their config resolved), no `${...}` anywhere."""
    _scan_yaml(text, origin, top="mapping")
    try:
        cfg = OmegaConf.create(text)
    except (yaml.YAMLError, OmegaConfBaseException, ValueError, TypeError) as err:
        refuse(f"{origin} holds a config OmegaConf cannot read ({_one_line(err)})")
    if not isinstance(cfg, DictConfig):  # _scan_yaml saw a mapping; this tells the type checker
        refuse(f"{origin} holds a config that is not a mapping of settings")
    _check_tree(OmegaConf.to_container(cfg, resolve=False), origin, resolved)
    return cfg


def bounded_yaml(text: str, origin: str, top: str) -> Any:
    """YAML that is only shown, never built (a sweep job's .hydra/config.yaml and overrides.yaml, in
    the report), read within the bounds of `trusted_config`: size, node count, depth, no anchors or
    aliases, a `top` ("mapping" or "list") at the top. Targets and interpolations stay plain text."""
    _scan_yaml(text, origin, top=top)
    try:
        value = yaml.safe_load(text)  # the scan saw the right top; tags can still fail (!!python/..., !!binary)
    except yaml.constructor.ConstructorError as err:
        tag = f" ({err.problem.split(' ')[-1].strip(chr(39))})" if err.problem and "tag" in err.problem else ""
        refuse(f"{origin} holds a YAML tag aecli never writes{tag}{_where(err)}")
    except (yaml.YAMLError, ValueError, TypeError) as err:
        refuse(f"{origin} holds YAML that cannot be read ({_one_line(err)})")
    return value if value is not None else ([] if top == "list" else {})


def trusted_overrides(text: str, origin: str) -> list[str]:
    """A run's .hydra/overrides.yaml: a bounded YAML list of `key=value` strings."""
    overrides = bounded_yaml(text, origin, top="list")
    if not all(isinstance(item, str) for item in overrides):
        refuse(f"{origin} holds a list of overrides that are not all key=value strings")
    return cast("list[str]", overrides)


def _scan_yaml(text: str, origin: str, top: str) -> None:
    """Read the YAML as a stream of parser events, which builds no objects: at most MAX_CONFIG_BYTES,
    one document, a `top` ("mapping" or "list") at the top, no anchors or aliases, bounded depth and
    node count."""
    if not isinstance(text, str):
        refuse(f"{origin} holds no YAML text (a {type(text).__name__} where text belongs)")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        refuse(f"{origin} holds {size} bytes of YAML, more than the {MAX_CONFIG_BYTES} an aecli config may have")
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent) and nodes:
                refuse(f"{origin} holds more than one YAML document, where aecli writes one")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.NodeEvent):
                nodes += 1
                depth += isinstance(event, yaml.CollectionStartEvent)
                _check_event(event, nodes, depth, origin, top)
    except yaml.YAMLError as err:
        refuse(f"{origin} holds text that is not valid YAML{_where(err)}")


def _check_event(event: yaml.NodeEvent, nodes: int, depth: int, origin: str, top: str) -> None:
    """One node of the YAML stream: the `nodes`-th, at nesting `depth`, in a document whose top is `top`."""
    if event.anchor is not None:  # an AliasEvent's anchor is the name it refers to
        kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
        refuse(
            f"{origin} uses the YAML {kind}{event.anchor}, which aecli never writes and OmegaConf "
            f"expands into copies (a few KB of nested aliases become gigabytes)"
        )
    expected = yaml.MappingStartEvent if top == "mapping" else yaml.SequenceStartEvent
    if nodes == 1 and not isinstance(event, expected):
        found = {yaml.MappingStartEvent: "mapping", yaml.SequenceStartEvent: "list"}.get(type(event))
        wanted = "a mapping of settings" if top == "mapping" else "a list of overrides"
        refuse(f"{origin} holds a YAML {found or f'single value {_short(event.value)}'}, not {wanted}")
    if nodes > MAX_CONFIG_NODES:
        refuse(f"{origin} holds more than {MAX_CONFIG_NODES} YAML nodes, far more than an aecli config has")
    if depth > MAX_CONFIG_DEPTH:
        refuse(f"{origin} nests its YAML more than {MAX_CONFIG_DEPTH} levels deep, far more than an aecli config")


def _check_tree(node: Any, origin: str, resolved: bool, path: str = "") -> None:
    """Every `_target_` in the tree (mappings and lists, any depth, `_args_` included) is one of
    aecli's; with `resolved`, no string holds an interpolation. Depth is bounded by _scan_yaml."""
    if isinstance(node, dict):
        if "_target_" in node:
            _check_target(node["_target_"], origin, f"{path}._target_" if path else "_target_")
        for key, value in node.items():
            _check_tree(value, origin, resolved, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_tree(value, origin, resolved, f"{path}[{i}]")
    elif resolved and isinstance(node, str) and "${" in node:
        refuse(
            f"{origin} holds the interpolation {path}={_short(node)}, but a saved config is resolved "
            f"and an interpolation could call any registered resolver"
        )


def _check_target(target: Any, origin: str, path: str) -> None:
    if not (isinstance(target, str) and target in aecli_targets()):
        refuse(
            f"{origin} sets {path}={_short(target)}, which is not one of aecli's own targets (its data sets, "
            f"models, callbacks, trackers and analyses), so it is not built: building it would run that code"
        )


@functools.cache
def aecli_targets() -> frozenset[str]:
    """What a config from a file may build: every `_target_` aecli's own shipped configs name (conf/:
    the data sets' and models' specs, the callbacks, the error map; not Hydra's callbacks), the
    `_target_` of every schema `register_schemas` puts in Hydra's ConfigStore (the trackers), and the
    study analyses, the public functions of the aecli.analyses modules whose first parameter is `ctx`.
    Nothing else: not builtins, not os, not aecli's other functions. Read from files and sources:
    deciding imports nothing."""
    from hydra.core.config_store import ConfigStore

    register_schemas()
    found = set(_analysis_functions()) | set(_shipped_targets())
    for group in ConfigStore.instance().repo["schema"].values():
        for entry in group.values():
            if "_target_" in entry.node and not OmegaConf.is_missing(entry.node, "_target_"):
                found.add(str(entry.node["_target_"]))
    return frozenset(found)


def _shipped_targets() -> list[str]:
    """The `_target_` values that name aecli in aecli's own YAML files (conf/, shipped as aecli.conf), but
    not in Hydra's own settings (conf/hydra/, the `hydra:` node): Hydra's callbacks are never part of a
    run's config, so a saved config that names one is not aecli's."""
    from importlib.resources import files
    from importlib.resources.abc import Traversable

    found: list[str] = []

    def targets(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str) and re.fullmatch(r"aecli(\.\w+)+", target):
                found.append(target)
            for value in node.values():
                targets(value)
        elif isinstance(node, list):
            for value in node:
                targets(value)

    def walk(folder: Traversable) -> None:
        for entry in folder.iterdir():
            if entry.is_dir() and entry.name != "hydra":
                walk(entry)
            elif entry.name.endswith(".yaml"):
                config = yaml.safe_load(entry.read_text(encoding="utf-8"))
                if isinstance(config, dict):
                    config.pop("hydra", None)  # the root config's and experiments' Hydra settings
                targets(config)

    walk(files("aecli.conf"))
    return found


def _analysis_functions() -> list[str]:
    """`aecli.analyses.<module>.<function>` for each public top-level `def f(ctx, ...)` of the package's
    modules, read from their source: deciding what is trusted imports nothing (the analyses pull in
    torch and matplotlib, which aecli.reporting.report does not need)."""
    spec = importlib.util.find_spec("aecli.analyses")
    folders = list(spec.submodule_search_locations or []) if spec else []
    names = []
    for folder in folders:
        for module in pkgutil.iter_modules([folder]):
            source = Path(folder, f"{module.name}.py")
            if module.ispkg or not source.is_file():
                continue
            for node in ast.parse(source.read_text(encoding="utf-8")).body:
                if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                    continue
                params = [*node.args.posonlyargs, *node.args.args]
                if params and params[0].arg == "ctx":
                    names.append(f"aecli.analyses.{module.name}.{node.name}")
    return names


# ------------------------------------------------------------------ checkpoints
def check_torch_archive(file: IO[bytes], path: Path) -> None:
    """Refuse, before torch.load allocates anything, a checkpoint that could unpack into more memory
    than it takes on disk. torch.save writes a zip archive whose entries are all STORED (not
    compressed), and torch.load allocates each record's declared uncompressed size, inflating a
    compressed one into it. So: a zip (not torch's legacy format), every entry STORED with its
    declared size equal to its stored size and inside the file, all entries together no larger
    than the file, and the file at most MAX_CHECKPOINT_BYTES. Then torch cannot allocate more for
    data than the file's size. `file` is the open checkpoint that torch.load then reads."""
    size = os.fstat(file.fileno()).st_size
    if size > MAX_CHECKPOINT_BYTES:
        refuse(f"{path} is {size} bytes, more than the {MAX_CHECKPOINT_BYTES} an aecli checkpoint may have")
    try:
        with zipfile.ZipFile(file) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        refuse(
            f"{path} is not a readable aecli checkpoint: it is truncated, corrupted or not the zip archive "
            f"torch.save writes ({_one_line(err, 120)})"
        )
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            refuse(
                f"{path} is not a readable aecli checkpoint: its entry {entry.filename} is compressed, which "
                f"torch.save never does and which could inflate to far more memory than the file's {size} bytes"
            )
        if entry.file_size != entry.compress_size or entry.header_offset + entry.compress_size > size:
            refuse(
                f"{path} is not a readable aecli checkpoint: its entry {entry.filename} declares "
                f"{entry.file_size} bytes, which do not fit in the file's {size}"
            )
    total = sum(entry.file_size for entry in entries)
    if total > size:
        refuse(f"{path} is not a readable aecli checkpoint: its entries declare {total} bytes, more than its {size}")
    file.seek(0)


def check_tensor_storage(ckpt: Any, path: Path) -> None:
    """Every tensor in the loaded checkpoint holds the memory its shape claims: a tensor saved as a view
    with stride 0 (`expand`) or overlapping strides keeps a few bytes of storage on disk but becomes its
    whole shape once a model is built to match it or it is copied (a 6.9 KB checkpoint asking for 40 GB).
    And all of them together fit in the memory budget (aecli.memory.file_budget)."""
    import torch

    from aecli.memory import check_file_budget

    total, stack = 0, [("", ckpt)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
        elif isinstance(node, torch.Tensor):
            claimed = node.numel() * node.element_size()
            if claimed > node.untyped_storage().nbytes():
                refuse(
                    f"{path} is not a usable aecli checkpoint: its tensor {where} of shape {tuple(node.shape)} claims "
                    f"{claimed} bytes but stores {node.untyped_storage().nbytes()} (a stride-0 or overlapping view)"
                )
            total += claimed
    check_file_budget(total, f"{path}, whose tensors hold {total} bytes,")


def check_resumable(ckpt: dict[str, Any], path: Path) -> None:
    """A checkpoint to continue training from (a last.pt): its training state is there and every field of
    it is what `fit` can restore (generator states of the right size and type, a position inside the
    epoch, the step losses and running sums of that position), and its best epoch is whole; one sentence
    naming the file and the field otherwise, never a traceback from torch.set_rng_state or a copy."""
    import torch

    state = ckpt.get("train_state")
    if not isinstance(state, dict) or "optimizer" not in ckpt:
        refuse(
            f"{path} holds no training state to continue from (a best.pt holds only the best epoch's model, or a "
            f"checkpoint from an older aecli); resume from a run folder or its checkpoints/last.pt"
        )

    def bad(field: str, value: Any, expected: str) -> NoReturn:
        refuse(f"{path} is not a usable aecli checkpoint: its {field} is {_short(value, 60)}, not {expected}")

    def generator_state(field: str, value: Any, size: int) -> None:
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and tuple(value.shape) == (size,)):
            shown = (
                f"a {value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else value
            )
            bad(field, shown, f"a generator state (uint8, {size} bytes)")

    generator_state("train_state.order_state", state["order_state"], torch.Generator().get_state().numel())
    generator_state("train_state.rng_state", state["rng_state"], torch.get_rng_state().numel())
    cuda = state.get("cuda_rng_states")
    if not isinstance(cuda, list) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda):
        bad("train_state.cuda_rng_states", cuda, "a list of generator states")
    epoch, batch, n_batches = state["epoch"], state["batch"], state["n_batches"]
    if epoch != ckpt["epoch"]:
        bad("train_state.epoch", epoch, f"the checkpoint's epoch {ckpt['epoch']}")
    rows = ckpt["metrics"]
    if not rows or rows[-1]["epoch"] != epoch or len(rows) > epoch + 1:
        bad("metrics", f"{len(rows)} rows", f"one row per epoch up to its epoch {epoch}")
    if batch and batch >= n_batches:
        bad("train_state.batch", batch, f"a step inside its epoch of {n_batches} steps")
    if batch:  # stopped inside an epoch: the epoch's step losses and running sums so far
        losses, running, terms = state.get("step_losses"), state.get("running"), state.get("terms")
        if not (isinstance(losses, torch.Tensor) and losses.is_floating_point() and tuple(losses.shape) == (batch,)):
            bad("train_state.step_losses", losses, f"the {batch} step losses of the epoch so far")
        if not (isinstance(terms, list) and terms and all(isinstance(t, str) for t in terms)):
            bad("train_state.terms", terms, "a list of loss term names")
        if not (isinstance(running, torch.Tensor) and running.is_floating_point() and running.shape == (len(terms),)):
            bad("train_state.running", running, f"the running sums of its {len(terms)} terms")
    best = ckpt.get("best")
    if best is not None:
        if not (isinstance(best.get("val_loss"), (int, float)) and not isinstance(best.get("val_loss"), bool)):
            bad("best.val_loss", best.get("val_loss"), "the best epoch's validation loss")
        if best["epoch"] > ckpt["epoch"]:
            bad("best.epoch", best["epoch"], f"an epoch up to the checkpoint's {ckpt['epoch']}")


def check_checkpoint_layout(ckpt: Any, path: Path, required: Sequence[str]) -> dict[str, Any]:
    """`ckpt` if it has the `required` keys and every part RunFiles.save_checkpoint writes has that
    part's type; else one sentence, instead of a KeyError, TypeError or StopIteration later."""
    if not isinstance(ckpt, dict) or not all(isinstance(key, str) for key in ckpt):
        refuse(f"{path} is a torch file but not an aecli checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    missing = [key for key in required if key not in ckpt]
    if missing:
        refuse(
            f"{path} is a torch file but not an aecli checkpoint (it needs the keys {', '.join(required)}; "
            f"{', '.join(missing)} missing)"
        )
    for key, (ok, expected) in _checkpoint_layout().items():
        if key in ckpt and not ok(ckpt[key]):
            refuse(f"{path} is not a usable aecli checkpoint: its {key} is {_short(ckpt[key], 60)}, not {expected}")
    return ckpt


def _checkpoint_layout() -> dict[str, tuple[Callable[[Any], bool], str]]:
    """Key -> (test, what it must be) for the parts of a checkpoint (last.pt and best.pt)."""
    from dataclasses import fields

    import torch

    from aecli.training.state import RECORD_FIELDS, TrainState

    columns = set(RECORD_FIELDS)
    state_keys = {f.name for f in fields(TrainState)} - {"terms"}  # terms: mid-epoch states only

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def tensors(v: Any) -> bool:
        return (
            isinstance(v, dict)
            and bool(v)
            and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())
        )

    def rows(v: Any) -> bool:  # the five columns, then the loss terms: train_<term>, val_<term>
        return isinstance(v, list) and all(
            isinstance(r, dict)
            and columns <= set(r)
            and all(k in columns or (isinstance(k, str) and k.startswith(("train_", "val_"))) for k in r)
            and all(number(x) for x in r.values())
            for r in v
        )

    def train_state(v: Any) -> bool:
        return v is None or (
            isinstance(v, dict)
            and state_keys <= set(v)
            and all(count(v[k]) for k in ("epoch", "batch", "steps", "n_batches"))
            and all(isinstance(v[k], torch.Tensor) for k in ("order_state", "rng_state"))
        )

    def best(v: Any) -> bool:
        return v is None or (isinstance(v, dict) and count(v.get("epoch")) and tensors(v.get("model")))

    return {
        "model": (tensors, "a non-empty dict of parameter names to tensors"),
        "config_yaml": (lambda v: isinstance(v, str), "YAML text"),
        "epoch": (count, "a whole number >= 0"),
        "metrics": (rows, f"a list of metrics rows ({', '.join(sorted(columns))})"),
        "optimizer": (lambda v: isinstance(v, dict), "an optimizer state dict"),
        "scheduler": (lambda v: v is None or isinstance(v, dict), "a schedule state dict or None"),
        "train_state": (train_state, f"None or a training state ({', '.join(sorted(state_keys))})"),
        "best": (best, "None or the best epoch's epoch, val_loss and model"),
        "val_loss": (number, "a number"),
    }
