"""Checking a composed config before anything is built, and what the check gives the run.

`validate` refuses, in one sentence naming the key, what composing cannot: a `+key` no schema
has, ranges and choices, the plug-in groups' settings (each data set's and model's spec checks
its own; aecli/plugins.py), regularizer terms, analyses that do not take their settings, and
sizes that cannot fit in this machine's memory. It returns a `Plan`: the config resolved, with
every setting of the data set and the model written out (what config.yaml and the checkpoints
save), and the specs that build them.
"""

from __future__ import annotations

import math
import re
from collections.abc import ItemsView
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Optional, cast

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from aecli.config import DEVICES, DTYPES, LOSSES, AecliConfig
from aecli.data import DataSpec, SyntheticSpec
from aecli.errors import ConfigError, first_sentence
from aecli.folders import is_plain_file_name
from aecli.memory import check_data_memory, check_model_memory, file_budget
from aecli.models import ModelSpec
from aecli.plugins import build_spec
from aecli.training.optim import OPTIMIZERS
from aecli.training.regularizers import build_regularizers

SEED_LIMIT = 2**32  # numpy, torch and scikit-learn all take seeds in [0, 2**32)
MAX_ERROR_MAP_RESOLUTION = 4000  # 16 million grid points; beyond that the error map exhausts memory
MAX_DPI = 1000
MAX_THREADS = 1024  # torch's OpenMP pool fails to start (a segfault) somewhere beyond a few thousand


@dataclass
class Plan:
    """A checked config: `cfg` resolved, the data set's and model's every setting written out, and
    the specs that build them."""

    cfg: DictConfig
    data: DataSpec
    model: ModelSpec


def validate(cfg: DictConfig) -> Plan:
    """Check keys, ranges and choices of a composed config; raise ConfigError on the first bad value."""
    _check_known_keys(cfg, cfg)
    for name in AecliConfig.__dataclass_fields__:  # `~plots` deletes a whole part aecli reads
        # (`~dataset` leaves the group's ???, which _resolved names with what to choose)
        rule = f"{name} is part of every aecli config; set it instead of deleting it"
        _check(name in cfg.keys(), name, "<deleted>", rule)
    cfg = _resolved(cfg)
    _check(0 <= cfg.seed < SEED_LIMIT, "seed", cfg.seed, f"use an integer in [0, {SEED_LIMIT - 1}]")
    _validate_trainer(cfg.trainer)
    _validate_optimizer(cfg.optimizer)
    _validate_plots(cfg.plots)
    data = build_spec(cfg.dataset, "dataset", DataSpec)
    model = build_spec(cfg.model, "model", ModelSpec)
    build_regularizers(cfg.regularizer)
    check_data_memory(data)  # sizes that cannot fit in memory, before anything is allocated
    file_budget()  # a bad $AECLI_MEMORY_BUDGET is one sentence now, not when a file is first read
    if isinstance(data, SyntheticSpec):  # the data's shape is known before it is made
        model.check_fits(data.shape(), data.name)
        check_model_memory(model, data.shape(), *data.split_sizes(), cfg)
    _validate_parts(cfg, "analyses", "an analysis function", check_settings=True)
    _validate_parts(cfg, "callbacks", "a callback class")
    _validate_transfer(cfg)
    with open_dict(cfg):  # assigned, not merged: a struct node refuses a key that `~dataset.name` deleted
        cfg.dataset, cfg.model = data.settings(), model.settings()
    return Plan(cfg, data, model)


def _validate_transfer(cfg: DictConfig) -> None:
    """transfer.*: a decoder to start from, and (decoder_from=train) the source run's own config."""
    t = cfg.transfer
    _check(
        t.decoder_from is None or t.decoder_from.strip() != "",
        "transfer.decoder_from",
        t.decoder_from,
        "give a run folder, a checkpoint file, `train` or null",
    )
    _check(
        not t.freeze_decoder or t.decoder_from is not None,
        "transfer.freeze_decoder",
        True,
        "it needs transfer.decoder_from (a run folder, a checkpoint, or `train`)",
    )
    if t.decoder_from == "train":  # the source run trained first must be valid too
        try:
            validate(source_config(cfg))
        except ConfigError as err:
            message = str(err)
            if not message.startswith("transfer.source."):  # the key, and the one a hint suggests, are the source's
                message = "transfer.source." + message.replace("(did you mean ", "(did you mean transfer.source.")
            raise ConfigError(message) from None


def source_config(cfg: DictConfig) -> DictConfig:
    """The config of the run `transfer.decoder_from=train` trains first: this one with
    `transfer.source` merged in, no decoder transfer and no analyses of its own."""
    source = cfg.transfer.source
    try:
        _check_known_keys(OmegaConf.to_container(source, resolve=False), cfg, shown="transfer.source.")
        merged = cast(DictConfig, OmegaConf.merge(cfg, {"transfer": {"decoder_from": None, "freeze_decoder": False}}))
        with open_dict(merged):  # a plug-in group's unknown key is for its spec to name (did you mean ...?)
            merged.merge_with(source)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        raise ConfigError(
            f"transfer.source{'.' + key if key else ''}={_at(source, key)!r} is not allowed: {_first_line(err)}; "
            f"transfer.source takes keys of the run's own config, e.g. transfer.source.optimizer.lr=1e-3"
        ) from None
    merged.analyses, merged.transfer.source = {}, {}  # assigned, not merged: merging {} keeps old keys
    return merged


def _validate_parts(cfg: DictConfig, group: str, what: str, check_settings: bool = False) -> None:
    """Each entry of `analyses` or `callbacks`: a mapping with a _target_, and for analyses, settings
    the function takes and a file name inside the run folder."""
    for name, spec in cfg[group].items():
        _check(
            isinstance(spec, DictConfig) and isinstance(spec.get("_target_"), str),
            f"{group}.{name}",
            OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else spec,
            f"give a mapping with a _target_ ({what}) and its settings",
        )
        if "file" in spec:
            _check(
                is_plain_file_name(spec.file),
                f"{group}.{name}.file",
                spec.file,
                "use a plain file name such as figure.png: a run writes only inside its own folder",
            )
        if check_settings:
            _check_analysis_settings(f"{group}.{name}", spec)


def _validate_trainer(t: DictConfig) -> None:
    """trainer.*: counts, choices and limits."""
    _check(t.epochs >= 0, "trainer.epochs", t.epochs, "use an integer >= 0")
    _check(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "use an integer >= 1")
    _check(t.loss in LOSSES, "trainer.loss", t.loss, f"choose one of {', '.join(LOSSES)}")
    _check(t.device in DEVICES, "trainer.device", t.device, f"choose one of {', '.join(DEVICES)}")
    _check(
        0 <= t.num_threads <= MAX_THREADS,
        "trainer.num_threads",
        t.num_threads,
        f"use 0 (torch's default) to {MAX_THREADS}, at most about the number of CPU cores",
    )
    _check(t.checkpoint_every >= 1, "trainer.checkpoint_every", t.checkpoint_every, "use an integer >= 1")
    for key in ("limit_train_batches", "limit_val_batches"):
        _check(t[key] is None or t[key] >= 1, f"trainer.{key}", t[key], "use an integer >= 1, or null for all")
    _check(t.dtype in DTYPES, "trainer.dtype", t.dtype, f"choose one of {', '.join(DTYPES)}")


def _validate_optimizer(o: DictConfig) -> None:
    """optimizer.*: the settings of the chosen optimizer, and that they belong to it."""
    _check(o.name in OPTIMIZERS, "optimizer.name", o.name, f"choose one of {', '.join(OPTIMIZERS)}")
    _check(
        ("betas" in o) == (o.name == "adam") and ("momentum" in o) == (o.name == "sgd"),
        "optimizer.name",
        o.name,
        "it must match the chosen optimizer option; switch optimizers with optimizer=adam or optimizer=sgd",
    )
    _check(_finite(o.lr) and o.lr > 0, "optimizer.lr", o.lr, "use a learning rate > 0")
    _check(
        _finite(o.weight_decay) and o.weight_decay >= 0,
        "optimizer.weight_decay",
        o.weight_decay,
        "use a finite value >= 0",
    )
    if o.lr_decay is not None:
        _check(0 < o.lr_decay <= 1, "optimizer.lr_decay", o.lr_decay, "use a gamma in (0, 1] or null")
    if "betas" in o:
        betas = list(o.betas)
        _check(
            len(betas) == 2 and all(0 <= b < 1 for b in betas),
            "optimizer.betas",
            betas,
            "use two values in [0, 1), e.g. [0.9, 0.999]",
        )
    if "momentum" in o:
        _check(_finite(o.momentum) and o.momentum >= 0, "optimizer.momentum", o.momentum, "use a finite value >= 0")
        _check(
            not o.nesterov or o.momentum > 0,
            "optimizer.nesterov",
            True,
            "Nesterov momentum needs optimizer.momentum > 0",
        )


def _validate_plots(p: DictConfig) -> None:
    """plots.*: resolution, threshold and dpi."""
    _check(
        2 <= p.error_map_resolution <= MAX_ERROR_MAP_RESOLUTION,
        "plots.error_map_resolution",
        p.error_map_resolution,
        f"use an integer from 2 to {MAX_ERROR_MAP_RESOLUTION}",
    )
    _check(
        _finite(p.error_threshold) and p.error_threshold > 0,
        "plots.error_threshold",
        p.error_threshold,
        "use a finite value > 0",
    )
    _check(10 <= p.dpi <= MAX_DPI, "plots.dpi", p.dpi, f"use an integer from 10 to {MAX_DPI}")


def _check_analysis_settings(key: str, spec: DictConfig) -> None:
    """The analysis function exists and takes these settings, checked before training rather than after it."""
    import inspect

    from hydra._internal.utils import _locate  # hydra.utils.get_method, without its log line

    try:
        signature = inspect.signature(_locate(spec._target_))
    except Exception as err:  # not importable, not callable, no signature
        reason = first_sentence(" ".join(str(err).split()), 200) or type(err).__name__
        raise ConfigError(
            f"{key}._target_={spec._target_!r} is not allowed: it must name an analysis function "
            f"such as aecli.analyses.activations.activation_histograms ({reason})"
        ) from None
    items = cast("ItemsView[str, Any]", spec.items())  # keys of a mapping of settings: names (OmegaConf: any key type)
    settings = {k: v for k, v in items if not (k.startswith("_") and k.endswith("_"))}
    try:
        signature.bind(None, **settings)  # None stands for the RunContext every analysis gets first
    except TypeError as err:
        takes = ", ".join(p for p in list(signature.parameters)[1:])
        raise ConfigError(
            f"{key} has settings {sorted(settings)}, which is not allowed: {spec._target_} takes "
            f"{takes or 'no settings'} ({_first_line(err)})"
        ) from None


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}.")


def _finite(*values: Any) -> bool:
    """Every value a real number, neither nan nor inf."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _at(tree: Any, key: str) -> Any:
    """The value at a full key such as `model.hidden_sizes[0]` of a config or a plain container, or '?'."""
    try:
        node: Any = OmegaConf.to_container(tree, resolve=False) if OmegaConf.is_config(tree) else tree
        for part in re.findall(r"[^.\[\]]+", key):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node
    except Exception:
        return "?"


def _resolved(cfg: DictConfig) -> DictConfig:
    """`cfg` with every value set (no ???) and every ${...} interpolation resolved, then merged back into
    the typed config, so what an interpolation gives is checked against its key's type like a typed value
    (OmegaConf itself does not check an interpolation that stands for a whole list or group). A part set
    to an interpolation (`plots=${trainer}`) is resolved and checked first: a key that reads through it
    (`analyses.error_map.resolution=${plots.error_map_resolution}`) would otherwise fail first, naming itself."""
    for key in [str(k) for k in cfg.keys() if cfg._get_node(k)._is_interpolation()]:  # type: ignore[union-attr]
        cfg = _resolved_part(cfg, key)
    return _resolved_part(cfg, None)


def _resolved_part(cfg: DictConfig, key: Optional[str]) -> DictConfig:
    """`cfg` with the top-level `key` (None: everything) resolved and merged back into the typed config."""
    try:
        if key is None:
            values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        else:
            value = cfg[key]
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
            values = {key: value}
    except MissingMandatoryValue as err:
        bad = getattr(err, "full_key", None) or "a config value"
        raise ConfigError(
            f"{bad}=??? is not allowed: give it a value, e.g. {bad}=<value>, or for a config group one of its options"
        ) from None
    except OmegaConfBaseException as err:
        bad = getattr(err, "full_key", None) or "a config value"
        raise ConfigError(f"{bad}={_at(cfg, bad)!r} is not allowed: it does not resolve ({_first_line(err)})") from None
    try:
        return cast(DictConfig, OmegaConf.merge(cfg, values))  # merged into a DictConfig: a DictConfig
    except OmegaConfBaseException as err:
        bad = getattr(err, "full_key", None) or "a config value"
        raise ConfigError(
            f"{bad}={_at(cfg, bad)!r} is not allowed: it resolves to {_at(values, bad)!r}, "
            f"not a value of {bad}'s type ({_first_line(err)})"
        ) from None


def _check_known_keys(tree: Any, typed: Any, path: str = "", shown: str = "") -> None:
    """Every key of `tree` where `typed` (the same place of a composed config) comes from a dataclass schema
    is a field of that schema. A `+key` or `++key` override adds keys past the schema's struct flag, so a
    misspelt `+trainer.fast_dev_runs=true` would otherwise be silently ignored. Free-form mappings
    (analyses, source, logger) have no schema and stay open; `shown` prefixes keys in messages (source.)."""
    if not isinstance(typed, DictConfig) or typed._is_none() or typed._is_missing() or typed._is_interpolation():
        return
    if isinstance(tree, DictConfig) and (tree._is_none() or tree._is_missing() or tree._is_interpolation()):
        return
    if not isinstance(tree, (DictConfig, dict)):
        return
    schema = OmegaConf.get_type(typed)
    names = [f.name for f in fields(schema)] if is_dataclass(schema) else None
    for raw in tree.keys():
        key = str(raw)
        if names is not None and key not in names and not (path == "" and key == "hydra"):
            raise _unknown_key(f"{path}{key}", names, shown)
        child = tree._get_node(raw) if isinstance(tree, DictConfig) else tree[raw]
        # validate_access=False: a key the struct config lacks (one of a plug-in group's, for its spec to name) is None
        _check_known_keys(child, typed._get_node(key, validate_access=False), f"{path}{key}.", shown)


def _unknown_key(key: str, names: list[str], shown: str) -> ConfigError:
    """`trainer.fast_dev_runs is not a setting of trainer (did you mean trainer.fast_dev_run?)`."""
    import difflib

    parent, _, name = key.rpartition(".")
    where = f"of {parent}" if parent else "at the top level"
    if key == "source":  # a run-level setting that left the root (and model.decoder_from: aecli.plugins.MOVED)
        return ConfigError(f"{shown}source is not a setting {where}: it moved to {shown}transfer.source")
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        hint = f" (did you mean {shown}{parent + '.' if parent else ''}{close[0]}?)"
    else:
        hint = f"; remove it, or use one of {', '.join(n for n in names if not n.startswith('_'))}"
    return ConfigError(f"{shown}{key} is not a setting {where}{hint}")
