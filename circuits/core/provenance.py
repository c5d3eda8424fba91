"""What produced an artifact: the command line that ran (when the ``emocircuits`` command line ran it)
and the versions of the packages whose behaviour the numbers depend on. Written into ``summary.json``
and ``evaluation.json`` as ``command`` and ``versions``; the run report shows both."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Sequence

PACKAGES = ("emotion-circuits", "torch", "transformers", "transformer-lens", "tokenizers", "numpy", "safetensors")
"""The distributions named in ``versions`` (absent ones are left out)."""

_command: list[str] | None = None


def set_command(argv: Sequence[str] | None) -> None:
    """Record the command line of this process (the CLI calls it with ``["emocircuits", *args]``); None
    forgets it (a run made from Python then records no command)."""
    global _command
    _command = None if argv is None else [str(a) for a in argv]


def command() -> list[str] | None:
    """The recorded command line, or None when the work was started from Python."""
    return None if _command is None else list(_command)


def versions() -> dict[str, str]:
    """``{distribution: version}`` of :data:`PACKAGES` that are installed, plus ``python``."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance() -> dict[str, object]:
    """``{"command": [...] or None, "versions": {...}}``, to merge into a summary."""
    return {"command": command(), "versions": versions()}


__all__ = ["PACKAGES", "command", "provenance", "set_command", "versions"]
