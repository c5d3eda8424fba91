"""The ``emocircuits`` command line (also ``python -m circuits``).

Each sub-command is a thin wrapper over a Python function of the package; run
``emocircuits COMMAND --help`` for its options.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
from typing import Any, Iterator, Sequence

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
from circuits.core import signals
from circuits.core.signals import Terminated

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
    evidence.register_validity(sub)
    report.register_replicate(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input (files, names, models), printed as one line, no traceback."""
    from circuits.core.artifacts import InputError

    return (InputError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def _on_sigterm(signum: int, frame: Any) -> None:
    signals.note(signum)
    raise Terminated()


def _on_sigint(signum: int, frame: Any) -> None:
    signals.note(signum)
    raise KeyboardInterrupt()


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and Ctrl-C ``KeyboardInterrupt`` in the main
    thread, each noted first (:mod:`circuits.core.signals`); the previous handlers come back
    afterwards; outside the main thread nothing changes."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    previous_int = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        signals.clear()  # handled: a later command in this process (a notebook, a test) starts afresh


_STAGING = re.compile(r"\.([^/\s]+?)\.[A-Za-z0-9_]{8}\.(?:partial|old|tmp)(?=/|\s|$|[:'\"),;])")


def user_message(err: BaseException) -> str:
    """The one line a user error prints: its message with line breaks folded into ``; `` (a library's
    multi-line message included) and internal staging names (``.NAME.1a2b3c4d.partial``, an atomic
    write's ``.NAME.xxxxxxxx.tmp``) shown as the ``NAME`` the user gave.

    >>> user_message(ValueError("runs/.x.1a2b3c4d.partial/summary.json: bad\\n  second line"))
    'runs/x/summary.json: bad; second line'
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return _STAGING.sub(r"\1", "; ".join(lines) or type(err).__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command. Bad input (a malformed file, an unknown emotion, a bad number, a model or
    circuit that does not match, an unusable path) prints ``emocircuits: error: ...`` on stderr and
    returns 2, without a traceback; Ctrl-C returns 130 and SIGTERM 143 (128 + the signal's number), both
    after unwinding (what the command was writing is dropped, the old results stay); any other
    exception is a bug: its traceback is printed with a line asking to report it, and the status is 1."""
    from circuits.core.provenance import set_command

    parser = build_parser()
    args = parser.parse_args(argv)
    set_command(["emocircuits", *(sys.argv[1:] if argv is None else argv)])  # summary.json "command"
    try:
        return _run(parser, args)
    finally:  # work started from Python after this command (a notebook, a test) records no command line
        set_command(None)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The command of ``args`` with :func:`main`'s exit statuses."""
    try:
        with _sigterm_unwinds():
            status = int(args.func(args) or 0)
            signals.raise_if_received()  # a signal whose exception was swallowed (a weakref callback, C code)
            return status
    except _user_errors() as err:
        print(f"{parser.prog}: error: {user_message(err)}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"\n{parser.prog}: terminated", file=sys.stderr)  # own line: a progress bar may be mid-line
        return 128 + int(signal.SIGTERM)
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted", file=sys.stderr)
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


__all__ = ["Terminated", "build_parser", "main"]
