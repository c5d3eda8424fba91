"""Artifacts on disk: atomic file writes (temporary file in the same folder, fsync, rename) and the two
error types every stage shares (:class:`InputError`, :class:`ModelMismatch`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only if it succeeded."""
    from circuits.core.ownership import name_key

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name_key(path.name)}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def _recover_staged(path: Path, keep: Sequence[str]) -> None:
    """Tidy what a killed run (SIGKILL, power loss) left beside ``path``: an old folder set aside but
    never replaced comes back; kept entries (the store) in a stale staged folder go back into ``path``
    so the next run resumes them; then the stale folders are removed. Only the staging folders of
    ``path`` itself (:func:`~circuits.core.ownership.staging_folders`) whose owner is dead are touched:
    a live one is left alone."""
    from circuits.core.ownership import OWNER_FILE, owner_alive, staging_folders

    for old in staging_folders(path, ".old"):
        if owner_alive(old):
            continue
        if not path.exists():
            (old / OWNER_FILE).unlink(missing_ok=True)
            os.replace(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for stale in staging_folders(path, ".partial"):
        if owner_alive(stale):
            continue
        for name in keep:
            if (stale / name).exists() and not (path / name).exists():
                path.mkdir(exist_ok=True)
                os.replace(stale / name, path / name)
        shutil.rmtree(stale, ignore_errors=True)


def _staging_name(path: Path, suffix: str) -> Path:
    """A new, unused staging name beside ``path``: ``.NAME.<8 random hex digits><suffix>`` (not created)."""
    import secrets

    from circuits.core.ownership import derived_name

    while True:
        candidate = path.parent / derived_name(path, f".{secrets.token_hex(4)}{suffix}")
        if not os.path.lexists(candidate):
            return candidate


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike, keep: Sequence[str] = (), flag: str = "--out"):
    """Write a folder's results into a temporary folder beside it; replace the old folder only when
    the ``with`` block completes, so an interrupted or failed run leaves the old results as they were
    (and no half-written new ones). Yields the temporary folder's Path.

    The folder's writer lock (:func:`circuits.core.ownership.owned`) is held throughout: another
    process writing it is refused with :class:`InputError` (naming ``flag``), and so is a ``path`` that
    is an existing file. Entries named in ``keep`` (a resumable, identity-checked store) are moved from
    the old folder into the temporary one at the start, and moved back into ``path`` if the block fails,
    so work they hold (a partly built store, say) survives an interruption. The swap is two renames
    (old -> aside, new -> ``path``), then the old folder is deleted. Each staging folder records its
    owner; what a killed run left beside ``path`` is tidied first (:func:`_recover_staged`)."""
    from circuits.core.ownership import OWNER_FILE, canonical, check_folder_target, owned, write_owner

    check_folder_target(path, flag)
    with owned(path, flag):
        path = canonical(path)
        _recover_staged(path, keep)
        tmp = _staging_name(path, ".partial")
        tmp.mkdir()
        try:
            write_owner(tmp)
            for name in keep:
                if (path / name).exists():
                    os.replace(path / name, tmp / name)
            yield tmp
        except BaseException:
            kept = [name for name in keep if (tmp / name).exists()]
            if kept:
                path.mkdir(exist_ok=True)
                for name in kept:
                    if not (path / name).exists():
                        os.replace(tmp / name, path / name)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / OWNER_FILE).unlink(missing_ok=True)
        aside = None
        if path.exists():
            aside = _staging_name(path, ".old")
            os.replace(path, aside)
            with contextlib.suppress(OSError):
                write_owner(aside)
        os.replace(tmp, path)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def iter_text_lines(path: str | os.PathLike, error: Callable[[str], Exception]) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text)`` from a UTF-8 text file (a leading BOM is dropped), one line in
    memory at a time; a line that is not UTF-8 raises ``error("file:line: ...")``."""
    path = Path(path)
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise error(
                    f"{path}:{n}: not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1})"
                ) from None
            yield n, line.rstrip("\r\n")
