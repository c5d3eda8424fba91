"""Termination signals a command received, for code that must tell them from a damaged input.

A signal handler that raises (Ctrl-C's ``KeyboardInterrupt``, the CLI's SIGTERM handler) can fire
inside a library's C code, which may turn the exception into another one: torch reports a
``KeyboardInterrupt`` raised while it sizes a tensor as ``ValueError: could not determine the shape``.
A reader that turned that into "not a readable file" would blame a healthy file and exit 2 instead of
unwinding. So the handlers note the signal here first (:func:`note`), and readers call
:func:`raise_if_received` before reporting a damaged file.
"""

from __future__ import annotations

import signal

_RECEIVED: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM received: raised in the main thread by the CLI's handler, so that the command unwinds as
    it does on Ctrl-C (staging folders removed, the old results kept); the CLI then exits with 143."""


def note(signum: int) -> None:
    """Record that ``signum`` arrived (the handler then raises)."""
    _RECEIVED.append(int(signum))


def clear() -> None:
    """Forget the signals noted: the command that received them has unwound and returned."""
    _RECEIVED.clear()


def raise_if_received() -> None:
    """Raise the exception of a termination signal this process received (:class:`Terminated` for
    SIGTERM, ``KeyboardInterrupt`` for SIGINT), if any: the error being handled is its side effect."""
    if int(signal.SIGTERM) in _RECEIVED:
        raise Terminated()
    if int(signal.SIGINT) in _RECEIVED:
        raise KeyboardInterrupt()
