"""Frozen-dataclass configs built from plain dicts (TOML files, CLI flags).

Every stage declares its configuration as a frozen dataclass. `from_dict`
builds one from a mapping and refuses unknown keys with an error naming the key
(and where it came from), converts TOML lists to tuples where the field is a
tuple, and recurses into nested dataclasses. `to_dict` is the inverse and is
what run folders record as the resolved config.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from hcdg.pipeline.errors import HcdgError

T = TypeVar("T")


class ConfigError(HcdgError):
    """An invalid configuration key or value."""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table of {tp.__name__} keys, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(value, non_none[0], where)
        return value
    if origin is tuple or tp is tuple:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if args:
                if len(value) != len(args):
                    raise ConfigError(f"{label(where)}: expected a list of {len(args)} values, got {list(value)!r}")
                return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            return tuple(value)
        raise ConfigError(f"{label(where)}: expected a list, got {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if tp in (int, float) and isinstance(value, bool):  # `steps = true` is not 1
        raise ConfigError(f"{label(where)}: expected {'a number' if tp is float else 'an integer'}, got {value!r}")
    if tp is float and isinstance(value, int):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{label(where)}: expected {tp.__name__}, got {value!r}")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"{label(where)}: expected a finite number, got {value!r}")
    return value


def label(where: str) -> str:
    """How a message names a key: `flags.lambda_con` -> `--lambda-con`; other sources keep their path."""
    if where.startswith("flags."):
        return "--" + where[len("flags."):].replace("_", "-")
    head, sep, key = where.partition(".toml.")
    return f"{head}.toml: {key}" if sep else where


def check_finite(obj: Any, prefix: str = "--") -> None:
    """ConfigError naming the first float field (or float in a tuple field) of `obj` that is NaN or inf.

    For configs built in code, not through `from_dict` (which already refuses them).
    """
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        name = f"{prefix}{f.name.replace('_', '-')}"
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            check_finite(v, f"{name}.")
        values = v if isinstance(v, (list, tuple)) else (v,)
        for x in values:
            if isinstance(x, float) and not math.isfinite(x):
                raise ConfigError(f"{name}: expected a finite number, got {v!r}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "config") -> T:
    """Build the frozen dataclass `cls` from `data`; unknown keys are an error naming the key."""
    if not _is_dataclass_type(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} for {cls.__name__} "
            f"(known: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_dict(obj: Any) -> dict[str, Any]:
    """The plain-dict form of a config dataclass (tuples become lists, for JSON/TOML)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` on top; override values of None (flags not given) are ignored.

    Nested mappings merge key by key, so a CLI flag can override one key of a TOML table.
    """
    out: dict[str, Any] = dict(base)
    for k, v in overrides.items():
        if v is None:
            continue
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


# --- options declared once: field metadata, Literal choices, defaults ---------------------------

#: What a TrainConfig-like field is to a run: "identity" = it changes what the run computes (compared
#: on --resume, part of the config hash); "runtime" = paths, devices, cadence, length (a resume may change it).
ROLES = ("identity", "runtime")


def option(default: Any = dataclasses.MISSING, *, help: str, section: str = "", role: str | None = None,
           batch: bool | None = None, default_factory: Any = dataclasses.MISSING, **extra: Any) -> Any:
    """A dataclass field declaring its option once: `help` (user-facing, never the default: that is
    read from the field), the `--help` `section`, and for training fields its `role` (`ROLES`) and
    whether it decides the batches a run sees (`batch`; runs equal in every batch field can share
    a data loader)."""
    meta = {"help": help, "section": section, "role": role, "batch": batch, **extra}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a `Literal[...]` type (also inside `X | None`), else None."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            if typing.get_origin(a) is typing.Literal:
                return typing.get_args(a)
    return None


def field_choices(cls: type, name: str) -> tuple[Any, ...] | None:
    """The choices offered for field `name` of `cls`: its Literal values (None when not a Literal)."""
    return literal_choices(typing.get_type_hints(cls)[name])


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    """The dataclass fields of `cls` by name."""
    return {f.name: f for f in dataclasses.fields(cls)}


def default_of(cls: type, name: str) -> Any:
    """The default value of field `name` of dataclass `cls` (built from its factory when it has one)."""
    f = fields_of(cls)[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def show_default(value: Any) -> str:
    """How `--help` prints a default value: on/off for booleans, comma lists for tuples, "none" for None/()."""
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def check_choices(obj: Any, prefix: str = "--") -> None:
    """ConfigError naming the first `Literal` field of `obj` whose value is not one of its choices.

    One generic check for every frozen config (called from `__post_init__`): the Literal type is
    the only place the choices are spelled."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        allowed = literal_choices(hints[f.name])
        v = getattr(obj, f.name)
        if allowed is None or v in allowed or (v is None and type(None) in typing.get_args(hints[f.name])):
            continue
        raise ConfigError(f"{prefix}{f.name.replace('_', '-')}: expected one of {', '.join(map(str, allowed))}, "
                          f"got {v!r}")
