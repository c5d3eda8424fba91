"""Config dataclasses whose fields carry their own help, bounds and flag name (:func:`help_field`), so
that each default and its help text exist once: in the dataclass field. :func:`check_config` enforces
the bounds; ``circuits.cli.common.add_config_flags`` turns the fields into command-line flags.

>>> @dataclass(frozen=True)
... class C:
...     k: int = help_field(4, "units per layer", min=1)
...     def __post_init__(self):
...         check_config(self)
>>> C(k=8)
C(k=8)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass  # noqa: F401  (used by the doctest)
from typing import Any

from circuits.core.artifacts import InputError


def help_field(default: Any, help: str = "", **meta: Any) -> Any:
    """A dataclass field carrying its command-line help (and ``choices``, ``flag``, ``min``, ``metavar``,
    ``required``: the flag must be given) as metadata; :func:`check_config` enforces ``choices`` and ``min``."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})


def field_type(hint: Any) -> tuple[Any, bool, bool]:
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


def field_default(f: dataclasses.Field) -> Any:
    """The field's default (its factory called), None when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


class ConfigError(InputError):
    """A config field holds a value it cannot take (the message names the field and its flag)."""


def field_flag(f: dataclasses.Field) -> str:
    """The field's command-line flag: its ``flag`` metadata, or ``--name-with-dashes``."""
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
        raise ConfigError(
            f"{cls.__name__}: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"known fields: {', '.join(cls.__dataclass_fields__)}"
        )
    return cls(**dict(d))


def check_config(cfg: Any) -> None:
    """Check every field of the dataclass instance ``cfg`` that has a type hint of int, float or str
    (or a tuple / optional of them): numbers must be finite and of the right kind, at least the
    field's ``min`` metadata, strings one of its ``choices``. Raises :class:`ConfigError` naming
    ``Class.field (--flag)``, the expected value and the one given."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        elem, many, optional = field_type(hints[f.name])
        value = getattr(cfg, f.name)
        where = f"{type(cfg).__name__}.{f.name} ({field_flag(f)})"
        if value is None:
            if not optional:
                raise ConfigError(f"{where}: a value is required")
            continue
        values = list(value) if many else [value]
        if many and not values:
            raise ConfigError(f"{where}: expected at least one value")
        for v in values:
            if elem in (int, float):
                ok = (
                    isinstance(v, (int, float)) and not isinstance(v, bool) and (elem is float or float(v).is_integer())
                )
                if not ok or not math.isfinite(float(v)):
                    raise ConfigError(f"{where}: expected a finite {elem.__name__}, got {v!r}")
                if "min" in f.metadata and v < f.metadata["min"]:
                    raise ConfigError(f"{where}: expected a value >= {f.metadata['min']}, got {v!r}")
            if "choices" in f.metadata and v not in f.metadata["choices"]:
                raise ConfigError(f"{where}: expected one of {tuple(f.metadata['choices'])}, got {v!r}")
