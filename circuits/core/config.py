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
import types
import typing
from dataclasses import dataclass, field  # noqa: F401  (used by the doctest)
from typing import Any, Sequence


def help_field(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
               **meta: Any) -> Any:
    """A dataclass field carrying its command-line help (and ``choices``, ``flag``) as metadata."""
    kw: dict[str, Any] = {"metadata": {"help": help, **meta}}
    if default_factory is not dataclasses.MISSING:
        kw["default_factory"] = default_factory
    else:
        kw["default"] = default
    return dataclasses.field(**kw)


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


def add_config_flags(parser: argparse.ArgumentParser, cls: type, names: Sequence[str], *, prefix: str = "") -> None:
    """Add ``--{prefix}{name}`` (underscores as dashes, or the field's ``flag`` metadata) for each
    field in ``names`` of the dataclass ``cls``, with the field's default, type and help. Booleans
    that default to False are switches; those that default to True get ``--no-...`` as well."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f = by_name[name]
        meta = dict(f.metadata)
        flag = meta.get("flag") or f"--{prefix}{name}".replace("_", "-")
        default = _default(f)
        elem, many, _ = _base_type(hints[name])
        shown = " ".join(map(str, default)) if many and default is not None else default
        help_text = f"{meta.get('help', '')} (default: {shown})".strip()
        kw: dict[str, Any] = {"dest": prefix.replace("-", "_") + name, "help": help_text.replace("%", "%%")}
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
        parser.add_argument(flag, **kw)


def config_from_args(cls: type, args: argparse.Namespace, names: Sequence[str], *, prefix: str = "",
                     base: Any = None, **overrides: Any) -> Any:
    """The dataclass ``cls`` (or ``base`` with these fields replaced) from parsed flags of
    :func:`add_config_flags`; sequences become tuples; ``overrides`` win."""
    hints = typing.get_type_hints(cls)
    values = {}
    for name in names:
        v = getattr(args, prefix.replace("-", "_") + name)
        if _base_type(hints[name])[1] and v is not None:
            v = tuple(v)
        values[name] = v
    values.update(overrides)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)
