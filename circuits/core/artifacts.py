"""Artifacts on disk: atomic file writes (temporary file in the same folder, fsync, rename) and the two
error types every stage shares (:class:`InputError`, :class:`ModelMismatch`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from circuits.core.signals import raise_if_received


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
        raise_if_received()  # a termination whose exception was swallowed on the way must not commit
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic_group(writes: dict[Path, Callable[[Path], None]]) -> list[Path]:
    """Write several files as one step: every ``write(tmp_path)`` runs first (each into a temporary file
    beside its target); only when all succeeded are they renamed onto their targets, back to back with
    SIGINT and SIGTERM held off, so an interrupt leaves either all old files or all new ones (only a
    SIGKILL landing between two renames, microseconds apart, could split them). For a set of files in a
    folder of their own, :func:`staged_dir` gives the full guarantee."""
    import signal

    from circuits.core.ownership import name_key

    staged: list[tuple[str, Path]] = []
    try:
        for path, write in writes.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name_key(path.name)}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            staged.append((tmp, path))
            write(Path(tmp))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
        raise_if_received()  # a termination whose exception was swallowed on the way must not commit
        held = {signal.SIGINT, signal.SIGTERM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            for tmp, path in staged:
                os.replace(tmp, path)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    return [path for _, path in staged]


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def _link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``dst`` as a hard link of the file ``src`` (the two names then share one file), or a copy of it
    where the file system cannot link."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _link_tree(src: Path, dst: Path) -> None:
    """A copy of the file or folder ``src`` at ``dst`` made of hard links (copies where linking fails):
    both names see the same files, and replacing a file under one name (an atomic write makes a new
    file) leaves the other name's file as it was."""
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _install(src: Path, dst: Path) -> None:
    """Put the file ``src`` at ``dst`` in one rename (through a linked or copied temporary name beside
    ``dst``); a folder ``src`` that ``dst`` lacks is moved there."""
    from circuits.core.ownership import name_key

    if src.is_dir() and not src.is_symlink():
        os.replace(src, dst)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{name_key(dst.name)}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        _link_or_copy(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _merge_back(new: Path, old: Path) -> None:
    """Bring the work held in ``new`` (a kept entry of a staging folder: a resumable store) back to
    ``old`` (the same entry of the output folder). Without ``old``, ``new`` is moved there. Otherwise
    each file of ``new`` that is not already ``old``'s own file is installed by one rename: files under
    new names first, then the ones that replace a file (for the store: the new shards first, then the
    ``meta.json`` that lists them), so ``old`` is consistent at every moment and a kill in the middle
    only leaves less to merge next time."""
    if not os.path.lexists(old):
        old.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, old)
        return
    if not (new.is_dir() and old.is_dir()) or new.is_symlink() or old.is_symlink():
        if new.is_file() and old.is_file() and not _same_file(new, old):
            _install(new, old)
        return
    replacing = []
    for child in sorted(new.iterdir()):
        target = old / child.name
        if child.is_dir() and not child.is_symlink():
            _merge_back(child, target)
        elif not os.path.lexists(target):
            _install(child, target)
        elif not _same_file(child, target):
            replacing.append(child)
    for child in replacing:
        _install(child, old / child.name)


def _recover_staged(path: Path, keep: Sequence[str]) -> None:
    """Tidy what a killed run (SIGKILL, power loss) left beside ``path``: an old folder set aside but
    never replaced comes back; the work of kept entries (the store) in a stale staged folder is merged
    back into ``path`` (:func:`_merge_back`) so the next run resumes it; then the stale folders are
    removed. Only the staging folders of ``path`` itself
    (:func:`~circuits.core.ownership.staging_folders`) whose owner is dead are touched: a live one is
    left alone."""
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
            if os.path.lexists(stale / name):
                path.mkdir(exist_ok=True)
                _merge_back(stale / name, path / name)
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
    the ``with`` block completes, so an interrupted, failed or killed run leaves the old results as they
    were, complete (and no half-written new ones). Yields the temporary folder's Path.

    The folder's writer lock (:func:`circuits.core.ownership.owned`) is held throughout: another
    process writing it is refused with :class:`InputError` (naming ``flag``), and so is a ``path`` that
    is an existing file. Entries named in ``keep`` (a resumable, identity-checked store) are given to
    the temporary folder as hard links (copies where the file system cannot link), so the block can
    resume or reuse them while the old folder keeps its own: this needs the block to replace a kept
    file only by an atomic write (a new file), never to change one in place, which is how the store
    writes. If the block fails, or the run is killed and a later call tidies up, the new work of the
    kept entries is merged back into ``path`` (:func:`_merge_back`), so a partly built store survives.
    The swap is two renames (old -> aside, new -> ``path``), then the old folder is deleted. Each
    staging folder records its owner; what a killed run left beside ``path`` is tidied first
    (:func:`_recover_staged`)."""
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
                if os.path.lexists(path / name):
                    _link_tree(path / name, tmp / name)
            yield tmp
            raise_if_received()  # a termination whose exception was swallowed on the way must not commit
        except BaseException:
            kept = [name for name in keep if os.path.lexists(tmp / name)]
            if kept:
                path.mkdir(exist_ok=True)
                for name in kept:  # a failure here leaves tmp for the tidying of a later run
                    _merge_back(tmp / name, path / name)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / OWNER_FILE).unlink(missing_ok=True)
        aside = _staging_name(path, ".old") if path.exists() else None
        try:
            if aside is not None:
                os.replace(path, aside)
                with contextlib.suppress(OSError):
                    write_owner(aside)
            os.replace(tmp, path)
        except BaseException:  # Ctrl-C / SIGTERM between the two renames: the old folder comes back
            if aside is not None and aside.exists() and not path.exists():
                os.replace(aside, path)
                (path / OWNER_FILE).unlink(missing_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
