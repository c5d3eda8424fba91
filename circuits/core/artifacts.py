"""Artifacts on disk: atomic file writes (temporary file in the same folder, fsync, rename) and the two
error types every stage shares (:class:`InputError`, :class:`ModelMismatch`)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


class InputError(ValueError):
    """Bad input from the user: a malformed file, an unknown name, a request that cannot give a result,
    a saved artifact that does not match. Every such error of the package derives from this class;
    the CLI prints it as one line (``emocircuits: error: ...``) and exits with status 2."""


class ModelMismatch(InputError):
    """A saved artifact (circuit, directions, vectors) was made on another model than the one given.

    ``path`` names the file when there is one; the message says which model it was made on."""

    def __init__(self, path: str | os.PathLike | None, message: str) -> None:
        self.path = None if path is None else str(path)
        super().__init__(message if path is None else f"{self.path}: {message}")


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")
