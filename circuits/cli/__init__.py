"""The ``emocircuits`` command line (also ``python -m circuits``).

Each sub-command is a thin wrapper over a Python function of the package; run
``emocircuits COMMAND --help`` for its options.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from circuits.cli import (
    demo,
    discover,
    evaluate,
    evidence,
    export,
    figures,
    judge,
    prompts,
    report,
    sev,
    steering,
    toy,
    va,
)

# Registration order = the order of ``emocircuits --help``.
_COMMAND_GROUPS = (sev, discover, evaluate, demo, report, va, figures, toy, prompts, judge, export)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every sub-command (each with its handler as ``func``)."""
    parser = argparse.ArgumentParser(prog="emocircuits", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in _COMMAND_GROUPS:
        group.register(sub)
    evidence.register_faithfulness(sub)
    steering.register_dose_response(sub)
    evidence.register_concepts(sub)
    evidence.register_atlas(sub)
    steering.register_trace(sub)
    evidence.register_nulls(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input (files, names, models), printed as one line, no traceback."""
    from circuits.core.artifacts import InputError

    return (InputError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command. Bad input (a malformed file, an unknown emotion, a bad number, a model or
    circuit that does not match, an unusable path) prints ``emocircuits: error: ...`` on stderr and
    returns 2, without a traceback; Ctrl-C returns 130; any other exception is a bug: its traceback is
    printed with a line asking to report it, and the status is 1."""
    from circuits.core.provenance import set_command

    parser = build_parser()
    args = parser.parse_args(argv)
    set_command(["emocircuits", *(sys.argv[1:] if argv is None else argv)])  # summary.json "command"
    try:
        return int(args.func(args) or 0)
    except _user_errors() as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"{parser.prog}: internal error (a bug, not your input): please report it with the command "
            "line and the traceback above",
            file=sys.stderr,
        )
        return 1


__all__ = ["build_parser", "main"]
