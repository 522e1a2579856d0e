"""Plug-ins: a data set or a model family is a typed settings class that checks itself and builds
what it describes.

A config group option names its plug-in with `_target_`, a `Spec` subclass: a dataclass whose
fields are the option's settings, their types the rules (`Literal[...]` for a fixed set of
choices), its `check` the ranges types cannot say. The option's YAML file gives every setting its
value (conf/ stays the single source of the values the CLI composes; tests/test_plugins.py keeps
the dataclass defaults equal to them). `build_spec` makes the spec from a composed config node:
an unknown setting, a wrong type or a value out of range is one sentence naming the key, before
any data or weights exist. The spec then builds what it describes (`aecli.data.DataSpec.build`,
`aecli.models.ModelSpec.build`).

Adding a data set or a model family is one module (its spec and its code), one YAML file in
conf/, and its tests. Nothing else changes: the pipeline, the loop and the checks see only the
base classes.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, TypeVar, Union, cast, get_args, get_origin

from omegaconf import DictConfig, OmegaConf

from aecli.errors import ConfigError, first_sentence

SPECS: dict[str, type[Spec]] = {}  # "aecli.models.vae.VAESpec" -> the class: every spec, as Python defines it
MOVED = {  # settings that moved to another group: the hint their old key gets
    "decoder_from": "transfer.decoder_from",
    "freeze_decoder": "transfer.freeze_decoder",
}


class SettingError(ValueError):
    """One setting of a spec is not allowed; `build_spec` names it with its group (model.latent_dim)."""

    def __init__(self, key: str, value: Any, rule: str) -> None:
        super().__init__(f"{key}={value!r} is not allowed: {rule}")
        self.key, self.value, self.rule = key, value, rule


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """SettingError(key, value, rule) unless `ok`: the one way a spec says a value is out of range."""
    if not ok:
        raise SettingError(key, value, rule)


@dataclass
class Spec:
    """A plug-in's settings. Subclasses are dataclasses; every one is registered in SPECS as it is defined."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SPECS[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def __post_init__(self) -> None:
        check_types(self)
        self.check()

    def check(self) -> None:
        """Ranges and relations the types cannot say (raise SettingError through `require`)."""

    def settings(self) -> dict[str, Any]:
        """The settings as a config node: `_target_` first, then every field."""
        target = f"{type(self).__module__}.{type(self).__qualname__}"
        return {"_target_": target, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}}


S = TypeVar("S", bound=Spec)


def build_spec(node: Any, group: str, base: type[S]) -> S:
    """The spec a config group's node names (by `_target_`), made and checked; one ConfigError
    sentence naming `<group>.<key>` when a setting is unknown, of the wrong type or out of range."""
    if not isinstance(node, DictConfig) or not isinstance(node.get("_target_"), str):
        raise ConfigError(f"{group} is not allowed without a _target_ naming its {base.__name__}")
    cls = spec_class(node._target_, group, base)
    values = cast("dict[str, Any]", OmegaConf.to_container(node, resolve=True))  # a mapping node: a dict
    values.pop("_target_")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in values:
        if key not in names:
            raise ConfigError(unknown_setting(group, str(key), names, values.get("name", "")))
    try:
        return cls(**values)
    except SettingError as err:
        raise ConfigError(f"{group}.{err}") from None


def spec_class(target: str, group: str, base: type[S]) -> type[S]:
    """The Spec subclass `target` names: aecli's own from SPECS, a user's own imported by its dotted path."""
    cls: Any = SPECS.get(target)
    if cls is None:
        from hydra._internal.utils import _locate  # hydra.utils.get_class, without its log line

        try:
            cls = _locate(target)
        except Exception as err:
            reason = first_sentence(" ".join(str(err).split()))
            raise ConfigError(f"{group}._target_={target!r} is not allowed: it cannot be imported ({reason})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            f"{group}._target_={target!r} is not allowed: a {group} option names a {base.__module__}.{base.__name__}"
        )
    return cls


def unknown_setting(group: str, key: str, names: list[str], option: str) -> str:
    """`model.hiden_sizes is not a setting of model=mlp (did you mean model.hidden_sizes?)`."""
    where = f"{group}={option}" if option else group
    if key in MOVED:
        return f"{group}.{key} is not a setting of {where}: it moved to {MOVED[key]}"
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {group}.{close[0]}?)" if close else f"; its settings are {', '.join(names)}"
    return f"{group}.{key} is not a setting of {where}{hint}"


# ---------------------------------------------------------------------------- types
def check_types(spec: Spec) -> None:
    """Every field's value against its annotation: bool, int, float (an int is taken), str, Literal
    choices, Optional, list/tuple of those. Converted in place where that loses nothing (an int
    setting of a float, a list of ints of a list of floats); SettingError otherwise."""
    hints = typing.get_type_hints(type(spec))
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if OmegaConf.is_config(value):  # made by hydra.utils.instantiate: plain lists and dicts, please
            value = OmegaConf.to_container(value, resolve=True)
        ok, converted = _conforms(value, hints[f.name])
        if not ok:
            raise SettingError(f.name, value, f"use {_describe(hints[f.name])}")
        object.__setattr__(spec, f.name, converted)


def _conforms(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` is a `hint`, the value converted to it)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True, value
    if origin is Union:
        if value is None:
            return type(None) in args, None
        for arg in args:
            ok, converted = _conforms(value, arg)
            if ok and arg is not type(None):
                return True, converted
        return False, value
    if origin is Literal:
        return value in args and not isinstance(value, bool), value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        item = args[0] if args else Any
        checked = [_conforms(v, item) for v in value]
        return all(ok for ok, _ in checked), [v for _, v in checked]
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number, float(value) if number else value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _describe(hint: Any) -> str:
    """`an integer`, `one of relu, tanh`, `a list of integers or null`: what a setting takes."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a) for a in inner) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a text"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def finite(value: Optional[float]) -> bool:
    """A real number, neither nan nor inf (None is not)."""
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
