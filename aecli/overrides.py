"""Checks of the command line's overrides, before Hydra composes anything.

Hydra answers a few bad overrides with a Python traceback or a long report instead of a
message: a config group set to a number, a bool or null (`dataset=null`, `model=3`) or to a
name it has no option of (`dataset=nosuch`, also inside a sweep), a value with no key (`=3`,
`+=x`), a key that moved to another group (`model.decoder_from=...`, now
`transfer.decoder_from`), a `resume=` naming no run folder (Hydra would make that folder
first), or a key that the data set or model named on the command line does not have
(`dataset=polynomial dataset.pth=x`, or `dataset.path=` in a sweep over `dataset=file,polynomial`).
`check_overrides` gives each one sentence. It runs before every command, so it stays
light and fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any, Optional

from aecli.config import check_resume_folder, config_options, register_schemas
from aecli.errors import ConfigError
from aecli.plugins import MOVED


@functools.lru_cache(maxsize=1)
def _config_repository() -> Any:
    """Hydra's view of aecli's config groups and options (what `dataset=...` may name)."""
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.utils import create_config_search_path

    register_schemas()
    return ConfigRepository(create_config_search_path("pkg://aecli.conf"))


def check_overrides(overrides: Sequence[str]) -> None:
    """ConfigError for the overrides Hydra's composition answers with a Python traceback or a long report
    instead of a message: a config group set to a number, a bool or null (`dataset=null`, `model=3`) or to
    a name it has no option of (`dataset=nosuch`, also inside a sweep), a value with no key (`=3`), or a
    `resume=` naming no run folder (Hydra would make that folder first). Everything else is left to Hydra,
    which reports it in its own words. Runs before every command: no config repository unless needed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # bad grammar: Hydra's own message says where
        return
    _check_override_forms(parsed)
    _check_group_values(parsed)
    if not any(o.key_or_group == "hydra.searchpath" for o in parsed) and not _search_path_from_command_line():
        _check_group_options(parsed)
        _check_option_keys(parsed)


def _check_override_forms(parsed: Sequence[Any]) -> None:
    """Every override has a key, and not one that moved; resume= names a run folder; no keys under a group
    set to an interpolation; no list element deleted."""
    interpolated: dict[str, Optional[str]] = {}  # key -> the override that set it to a ${...} interpolation
    for o in parsed:
        if o.key_or_group == "":  # `=3`, `+=x`: Hydra answers some with a traceback (an AssertionError)
            raise ConfigError(f"{o.input_line!r} is not allowed: an override needs a key, as in trainer.epochs=10")
        moved = _moved_key(o.key_or_group)
        if moved is not None:  # the struct config would refuse it in Hydra's many lines, naming no new key
            where = "at the top level" if o.key_or_group.startswith("source") else "of model"
            raise ConfigError(f"{o.key_or_group} is not a setting {where}: it moved to {moved}")
        if o.key_or_group == "resume" and not o.is_delete() and isinstance(o.value(), str):
            check_resume_folder(str(o.value()))
        parent = next((k for k in interpolated if o.key_or_group.startswith(k + ".")), None)
        if parent is not None and not o.is_delete():  # OmegaConf fails with an AssertionError
            raise ConfigError(
                f"{o.input_line} is not allowed after {interpolated[parent]}: that makes "
                f"{parent} an interpolation, which has no keys to set"
            )
        if isinstance(o.value(), str) and str(o.value()).startswith("${") and not o.is_delete():
            interpolated[o.key_or_group] = o.input_line
        if o.is_delete() and o.key_or_group.rpartition(".")[2].isdigit():  # Hydra fails with a TypeError
            whole = o.key_or_group.rpartition(".")[0]
            raise ConfigError(
                f"{o.input_line} is not allowed: one element of a list cannot be deleted; "
                f"set the whole list instead, e.g. {whole}=[...]"
            )


def _moved_key(key: str) -> Optional[str]:
    """Where a key that moved out of its group lives now (`model.decoder_from` -> `transfer.decoder_from`,
    `source.seed` -> `transfer.source.seed`), or None for a key that did not move."""
    group, _, rest = key.partition(".")
    if group == "model" and rest.split(".")[0] in MOVED:
        setting, _, inner = rest.partition(".")
        return MOVED[setting] + (f".{inner}" if inner else "")
    if group == "source":
        return f"transfer.{key}"
    return None


def _check_group_values(parsed: Sequence[Any]) -> None:
    """A config group set to a number, a bool or null, which Hydra answers with a traceback."""
    suspects = []
    for o in parsed:
        if o.is_sweep_override() or o.is_force_add() or "." in o.key_or_group:  # config groups have no dots
            continue
        value = o.value()
        if o.is_delete() and value is not None and not isinstance(value, str):
            suspects.append(o)
        elif not o.is_delete() and not isinstance(value, (str, list, dict)):
            suspects.append(o)
    for o in suspects:
        group = o.key_or_group
        if group == "hydra":
            raise ConfigError(f"{o.input_line} is not allowed: set Hydra's own keys instead, e.g. hydra.run.dir=out")
        options = _group_options(group)
        if options is None:
            continue  # a plain value, e.g. seed=3
        raise ConfigError(
            f"{o.input_line} is not allowed: {group} is a config group, so give it the name of "
            f"one of its options ({', '.join(options)})"
        )


def _check_group_options(parsed: Sequence[Any]) -> None:
    """`dataset=nosuch` (or one choice of a sweep, or of a list such as logger=[csv,nosuch]) in one line
    with the options, instead of Hydra's 14 lines of search path. Deletes (`~dataset`) are left to Hydra."""
    import difflib

    for o in parsed:
        group = o.key_or_group
        if o.is_delete() or not group or "." in group:
            continue
        names = _chosen_names(o.value())
        options = _group_options(group) if names else None
        if options is None:  # no option named, or no config group (a plain key such as seed)
            continue
        for name in names:
            if name.removesuffix(".yaml") not in options:  # Hydra takes `dataset=spiral.yaml` too
                close = difflib.get_close_matches(name, options, n=1)
                hint = f" (did you mean {group}={close[0]}?)" if close else ""
                raise ConfigError(
                    f"{group}={name} is not an option of {group}{hint}; choose one of {', '.join(options)}"
                )


def _chosen_names(value: Any) -> list[str]:
    """The option names a group override picks: one, a list of them, or a sweep's choices of either;
    none for glob, range or interval sweeps, interpolations and options in subfolders (left to Hydra)."""
    from hydra.core.override_parser.types import ChoiceSweep

    items = value.list if isinstance(value, ChoiceSweep) else value if isinstance(value, list) else [value]
    flat = [name for item in items for name in (item if isinstance(item, list) else [item])]
    return [name for name in flat if isinstance(name, str) and not name.startswith("${") and "/" not in name]


@functools.cache
def _group_options(group: str) -> Optional[tuple[str, ...]]:
    """The options of a config group, or None when `group` is no config group (a plain key such as seed).
    aecli's own groups come from its shipped files (a millisecond); groups that Hydra and its plugins add
    to (`hydra/launcher`) and the schema groups from Hydra's config repository (a tenth of a second)."""
    if not group.startswith(("hydra/", "schema")):
        options = config_options().get(group)
        return tuple(options) if options else None  # `hydra` itself is Hydra's node, no group to choose from
    repo = _config_repository()
    return tuple(sorted(repo.get_group_options(group))) if repo.group_exists(group) else None


def _search_path_from_command_line() -> bool:
    """Whether this command adds configs of its own (`--config-dir`, `--config-path`): then a group may
    have options aecli does not ship, and Hydra, which sees them, judges `dataset=...` alone."""
    flags = ("--config-dir", "-cd", "--config-path", "-cp")
    return any(arg.split("=", 1)[0] in flags for arg in sys.argv[1:])


PLUGIN_GROUPS = ("dataset", "model")  # groups whose options are specs: every setting is a key of the option's file


def _check_option_keys(parsed: Sequence[Any]) -> None:
    """`dataset.pth=x` with `dataset=polynomial` (or in a sweep `dataset=file,polynomial` with
    `dataset.path=x`, a key only one option has): one sentence naming the option that lacks the key,
    instead of Hydra's "Key 'pth' is not in struct". Only options named on the command line are
    checked; a group chosen by an experiment or by default is left to Hydra and the spec's checks."""
    import difflib

    named = {o.key_or_group: _chosen_names(o.value()) for o in parsed if o.key_or_group in PLUGIN_GROUPS}
    for o in parsed:
        group, _, key = o.key_or_group.partition(".")
        if not key or group not in named or o.is_force_add() or o.is_delete():
            continue
        setting = key.split(".")[0]
        keys = {name: _option_keys(group, name) for name in named[group]}
        lacking = [name for name, known in keys.items() if known is not None and setting not in known]
        if not lacking:
            continue
        having = [name for name, known in keys.items() if known is not None and setting in known]
        if having:
            why = f"only of {group}={','.join(having)}: sweep those in a separate command"
        else:
            close = difflib.get_close_matches(setting, sorted(keys[lacking[0]] or ()), n=1)
            why = f"did you mean {group}.{close[0]}?" if close else f"see `aecli {group}={lacking[0]} --cfg job`"
        raise ConfigError(f"{o.key_or_group} is not a setting of {group}={lacking[0]} ({why})")


@functools.cache
def _option_keys(group: str, name: str) -> Optional[frozenset[str]]:
    """The settings an option's YAML file gives (with those of the options its defaults list extends,
    e.g. model=tanh extends model=mlp), or None where that cannot be read simply (left to Hydra)."""
    from importlib.resources import files

    import yaml

    path = files("aecli.conf") / group / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        return None
    tree = yaml.safe_load(path.read_text())
    if not isinstance(tree, dict):
        return None
    keys = set(tree) - {"defaults"}
    for base in tree.get("defaults", []):
        if base == "_self_":
            continue
        inherited = _option_keys(group, base) if isinstance(base, str) and "/" not in base else None
        if inherited is None:
            return None
        keys |= inherited
    return frozenset(keys)
