"""The ``emocircuits`` command line (also ``python -m circuits``).

Each sub-command is a thin wrapper over a Python function of the package; run
``emocircuits COMMAND --help`` for its options.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _sev_validate(args: argparse.Namespace) -> int:
    from circuits.sev import SEVFormatError, load_sev

    status = 0
    for path in args.files:
        try:
            ds = load_sev(path)
        except (SEVFormatError, FileNotFoundError) as err:
            print(f"INVALID {err}", file=sys.stderr)
            status = 1
            continue
        print(f"OK {path}: {ds.summary()}")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emocircuits", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sev = sub.add_parser("sev", help="SEV dataset tools").add_subparsers(dest="sev_command", required=True)
    val = sev.add_parser("validate", help="check SEV files and print a one-line summary or the errors")
    val.add_argument("files", nargs="+", help="SEV JSONL (or JSON array) files")
    val.set_defaults(func=_sev_validate)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Sub-commands defined next to the code they run (each module exposes ``register_cli``)."""
    import importlib

    out = []
    for mod in ("circuits.toy.cli",):
        try:
            out.append(importlib.import_module(mod).register_cli)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
