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
from typing import Any, Sequence

from circuits.core.artifacts import InputError


def help_field(default: Any, help: str = "", **meta: Any) -> Any:
    """A dataclass field carrying its command-line help (and ``choices``, ``flag``, ``min``, ``metavar``,
    ``required``: the flag must be given) as metadata; :func:`check_config` enforces ``choices``, ``min``
    and ``max``."""
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


FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32: a float flag is used in float32 model tensors, so a larger magnitude
(``1e300`` passes a float64 check) would become inf there."""


def check_number(
    value: Any, where: str, kind: type = float, *, min: float | None = None, max: float | None = None, bound: str = ""
) -> None:
    """Refuse ``value`` unless it is a finite ``kind`` (int: a whole number, not a bool; float: finite
    also in float32, the dtype of the model tensors it ends in) within ``[min, max]``. Raises
    :class:`ConfigError` starting with ``where`` (e.g. ``"--threads"``); ``bound`` says what ``max``
    is (``"the model's layers"``). The one number check of every config field and CLI flag.

    >>> check_number(1e300, "--alphas")
    Traceback (most recent call last):
    ...
    circuits.core.config.ConfigError: --alphas: expected a finite float32 value (|x| <= 3.403e+38; model tensors are float32), got 1e+300
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a finite {kind.__name__}, got {value!r}")
    if not isinstance(value, int):
        if not math.isfinite(value) or (kind is int and not value.is_integer()):
            raise ConfigError(f"{where}: expected a finite {kind.__name__}, got {value!r}")
        if kind is float and abs(value) > FLOAT32_MAX:
            raise ConfigError(
                f"{where}: expected a finite float32 value (|x| <= {FLOAT32_MAX:.4g}; model tensors are float32), "
                f"got {value!r}"
            )
    if min is not None and value < min:
        raise ConfigError(f"{where}: expected a value >= {min}, got {value!r}")
    if max is not None and value > max:
        raise ConfigError(f"{where}: expected a value <= {max}{f' ({bound})' if bound else ''}, got {value!r}")


def check_config(cfg: Any) -> None:
    """Check every field of the dataclass instance ``cfg`` that has a type hint of int, float or str
    (or a tuple / optional of them): numbers must be finite (floats also in float32) and of the right
    kind, within the field's ``min`` / ``max`` metadata, strings one of its ``choices``. Raises
    :class:`ConfigError` naming ``Class.field (--flag)``, the expected value and the one given."""
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
                check_number(v, where, elem, min=f.metadata.get("min"), max=f.metadata.get("max"))
            if "choices" in f.metadata and v not in f.metadata["choices"]:
                raise ConfigError(f"{where}: expected one of {tuple(f.metadata['choices'])}, got {v!r}")


def check_at_most(cfg: Any, name: str, bound: int, what: str) -> None:
    """Refuse a value of the config field ``name`` above ``bound``, known only once the model has
    loaded (``what`` names the bound, e.g. ``"the model's MLP width"``): call it right after the model
    loads, before anything is written. :class:`ConfigError` names ``Class.field (--flag)``.

    >>> @dataclass(frozen=True)
    ... class C:
    ...     ks: tuple[int, ...] = help_field((1, 2), "units", min=1)
    >>> check_at_most(C(ks=(1, 9)), "ks", 4, "the model's heads")
    Traceback (most recent call last):
    ...
    circuits.core.config.ConfigError: C.ks (--ks): expected a value <= 4 (the model's heads), got 9
    """
    f = next(f for f in dataclasses.fields(cfg) if f.name == name)
    value = getattr(cfg, name)
    values = [] if value is None else list(value) if isinstance(value, (tuple, list)) else [value]
    for v in values:
        check_number(v, f"{type(cfg).__name__}.{name} ({field_flag(f)})", int, max=bound, bound=what)


def check_template(text: str, where: str, *, required: Sequence[str] = (), allowed: Sequence[str] = ()) -> None:
    """Refuse a prompt template ``text`` (``where``: its flag) that lacks a ``{field}`` of ``required``,
    holds a ``{field}`` outside ``required`` + ``allowed`` (a neutral prompt, with neither, must hold
    no placeholder: ``{emotion}`` there would be sent literally), or does not parse as a template
    (``{{`` and ``}}`` are literal braces).

    >>> check_template("Be calm about {emotion}.", "--neutral-system")
    Traceback (most recent call last):
    ...
    circuits.core.config.ConfigError: --neutral-system: {emotion} is not filled in here (this prompt has no placeholders; write {{ and }} for literal braces), got 'Be calm about {emotion}.'
    """
    import string

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as err:
        raise ConfigError(
            f"{where}: not a valid template ({err}; write {{{{ and }}}} for literal braces), got {text!r}"
        ) from None
    known = (*required, *allowed)
    for name in fields:
        if name not in known:
            takes = ", ".join("{" + k + "}" for k in known) or "no placeholders"
            raise ConfigError(
                f"{where}: {{{name}}} is not filled in here (this prompt has {takes}; write {{{{ and }}}} for "
                f"literal braces), got {text!r}"
            )
    for name in required:
        if name not in fields:
            raise ConfigError(f"{where}: expected a {{{name}}} placeholder, got {text!r}")
