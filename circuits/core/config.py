"""Command-line flags generated from config dataclasses, so that each default and its help text
exist once: in the dataclass field (``help`` and optional ``choices`` / ``flag`` in its metadata).

>>> @dataclass(frozen=True)
... class C:
...     k: int = field(default=4, metadata={"help": "units per layer"})
>>> p = argparse.ArgumentParser(); add_config_flags(p, C, ["k"])
>>> config_from_args(C, p.parse_args(["--k", "8"]), ["k"])
C(k=8)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field  # noqa: F401  (used by the doctest)
from typing import Any, Sequence

from circuits.core.artifacts import InputError


def help_field(default: Any, help: str = "", **meta: Any) -> Any:
    """A dataclass field carrying its command-line help (and ``choices``, ``flag``, ``min``, ``metavar``,
    ``required``: the flag must be given) as metadata; :func:`check_config` enforces ``choices`` and ``min``."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def _base_type(hint: Any) -> tuple[Any, bool, bool]:
    """(element type, is a sequence, may be None) of a field's type hint."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


class ConfigError(InputError):
    """A config field holds a value it cannot take (the message names the field and its flag)."""


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def config_from_dict(cls: type, d: Any) -> Any:
    """``cls(**d)`` for a config dataclass read back from ``to_dict`` output (JSON): missing keys take
    their defaults; a non-mapping or an unknown key raises :class:`ConfigError` naming the class and
    the keys it knows."""
    from collections.abc import Mapping

    if not isinstance(d, Mapping):
        raise ConfigError(f"{cls.__name__}.from_dict: expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(cls.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"known fields: {', '.join(cls.__dataclass_fields__)}")
    return cls(**dict(d))


def check_config(cfg: Any) -> None:
    """Check every field of the dataclass instance ``cfg`` that has a type hint of int, float or str
    (or a tuple / optional of them): numbers must be finite and of the right kind, at least the
    field's ``min`` metadata, strings one of its ``choices``. Raises :class:`ConfigError` naming
    ``Class.field (--flag)``, the expected value and the one given."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        elem, many, optional = _base_type(hints[f.name])
        value = getattr(cfg, f.name)
        where = f"{type(cfg).__name__}.{f.name} ({_flag(f)})"
        if value is None:
            if not optional:
                raise ConfigError(f"{where}: a value is required")
            continue
        values = list(value) if many else [value]
        if many and not values:
            raise ConfigError(f"{where}: expected at least one value")
        for v in values:
            if elem in (int, float):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (elem is float or float(v).is_integer())
                if not ok or not math.isfinite(float(v)):
                    raise ConfigError(f"{where}: expected a finite {elem.__name__}, got {v!r}")
                if "min" in f.metadata and v < f.metadata["min"]:
                    raise ConfigError(f"{where}: expected a value >= {f.metadata['min']}, got {v!r}")
            if "choices" in f.metadata and v not in f.metadata["choices"]:
                raise ConfigError(f"{where}: expected one of {tuple(f.metadata['choices'])}, got {v!r}")


def add_config_flags(parser: argparse.ArgumentParser, cls: type, names: Sequence[str]) -> None:
    """Add ``--{name}`` (underscores as dashes, or the field's ``flag`` metadata) for each field in
    ``names`` of the dataclass ``cls``, with the field's default, type and help. Booleans that default
    to False are switches; those that default to True get ``--no-...`` as well."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f = by_name[name]
        meta = dict(f.metadata)
        flag = _flag(f)
        default = _default(f)
        elem, many, _ = _base_type(hints[name])
        shown = " ".join(map(str, default)) if many and default is not None else default
        help_text = (meta.get("help", "") if meta.get("required") else
                     f"{meta.get('help', '')} (default: {shown})".strip())
        kw: dict[str, Any] = {"dest": name, "help": help_text.replace("%", "%%")}
        if elem is bool:
            if default:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=True, **kw)
            else:
                parser.add_argument(flag, action="store_true", **kw)
            continue
        kw.update(type=elem, default=list(default) if many and default is not None else default)
        if many:
            kw["nargs"] = "+"
        if "choices" in meta:
            kw["choices"] = list(meta["choices"])
        if "metavar" in meta:
            kw["metavar"] = meta["metavar"]
        if meta.get("required"):
            kw["required"] = True
        parser.add_argument(flag, **kw)


def config_from_args(cls: type, args: argparse.Namespace, names: Sequence[str], **overrides: Any) -> Any:
    """The dataclass ``cls`` from parsed flags of :func:`add_config_flags` (sequences become tuples);
    ``overrides`` win."""
    hints = typing.get_type_hints(cls)
    values = {}
    for name in names:
        v = getattr(args, name)
        if _base_type(hints[name])[1] and v is not None:
            v = tuple(v)
        values[name] = v
    values.update(overrides)
    return cls(**values)
