"""Who writes an output folder: an exclusive writer lock per folder (:func:`owned`), the names of the
files and staging folders kept beside it (:func:`derived_name`), and the owner record of a staging
folder (:func:`write_owner`, :func:`owner_alive`).

The lock file lives beside the folder (``.NAME.lock`` in its parent), so swapping the folder for a new
one keeps it; the holder (pid, host, start time, command line) is recorded in ``.NAME.lock.json`` next
to it, so a refused writer can say who holds the folder. The lock is taken without waiting and is
reentrant within one process (``demo`` runs discover then evaluate into one folder); the operating
system drops it when its process dies, so a lock file left by a killed run blocks nobody."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from circuits.core.artifacts import InputError

OWNER_FILE = ".staging-owner.json"
"""The owner record inside a staging folder (removed before the folder is swapped into place)."""

_MAX_NAME_BYTES = 200
"""Longer folder names are shortened (prefix + hash) in derived names, to stay within the usual
255-byte file-name limit once a dot, a random token and a suffix are added."""

_held: dict[str, list[Any]] = {}
_held_guard = threading.Lock()


def canonical(folder: str | os.PathLike) -> Path:
    """``folder`` as an absolute path with its parent's symbolic links resolved (the folder itself is
    not followed: a swap replaces the link, not its target)."""
    path = Path(os.path.abspath(folder))
    return Path(os.path.realpath(path.parent)) / path.name


def name_key(name: str) -> str:
    """``name`` itself, or for a name over 200 bytes its start and a hash of the whole (derived names
    must fit the file-name limit, and differ for different names)."""
    if len(os.fsencode(name)) <= _MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    head = name[:64]
    while len(os.fsencode(head)) > 100:
        head = head[:-1]
    return f"{head}~{digest}"


def derived_name(folder: str | os.PathLike, suffix: str) -> str:
    """A hidden name beside ``folder`` that belongs to it alone: ``.NAME<suffix>`` (NAME shortened by
    :func:`name_key` when long)."""
    return f".{name_key(canonical(folder).name)}{suffix}"


def staging_pattern(folder: str | os.PathLike, suffix: str) -> re.Pattern[str]:
    """The names of ``folder``'s staging folders: ``.NAME.<8 characters><suffix>`` exactly, so the
    staging folders of another folder (``NAME.b``, say) never match."""
    return re.compile(re.escape(derived_name(folder, ".")) + r"[a-z0-9_]{8}" + re.escape(suffix))


def staging_folders(folder: str | os.PathLike, suffix: str) -> list[Path]:
    """The staging folders (``suffix`` ``.partial`` or ``.old``) beside ``folder`` that belong to it."""
    path = canonical(folder)
    pattern = staging_pattern(path, suffix)
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return []
    return [path.parent / n for n in names if pattern.fullmatch(n) and (path.parent / n).is_dir()]


def _holder() -> dict[str, Any]:
    from circuits.core.provenance import command

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command(),
    }


def write_owner(staging: Path) -> None:
    """Record this process as the owner of the staging folder ``staging``."""
    (staging / OWNER_FILE).write_text(json.dumps(_holder()) + "\n", encoding="utf-8")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def owner_alive(staging: Path) -> bool:
    """Whether the owner recorded in the staging folder may still be working in it: its pid is alive on
    this host, or it ran on another host (which cannot be asked). A folder without a readable record
    (left by an older version) counts as dead."""
    try:
        owner = json.loads((staging / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), str(owner.get("host", ""))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return False
    if host and host != socket.gethostname():
        return True
    return _pid_alive(pid)


def _refusal(folder: Path, info_file: Path, flag: str) -> str:
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        who = "another process"
    else:
        cmd = info.get("command")
        what = " ".join(str(c) for c in cmd) if isinstance(cmd, list) and cmd else "Python"
        host = info.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        who = f"pid {pid}{where} ({what}) since {info.get('since', '?')}"
    return f"{folder} is being written by {who}; wait for it or choose another {flag}"


def check_folder_target(folder: str | os.PathLike, flag: str | None = None) -> Path:
    """:class:`InputError` when ``folder`` (an output folder) exists and is not a folder; the message
    names ``flag`` (e.g. ``--out``) when given."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag + ' ' if flag else ''}{path}: exists and is not a folder; give a folder to write")
    return path


@contextlib.contextmanager
def owned(folder: str | os.PathLike, flag: str = "--out") -> Iterator[Path]:
    """Hold the exclusive writer lock of ``folder`` for the ``with`` block (the folder need not exist).
    Another process holding it: :class:`InputError` at once, naming the folder and the holder (pid,
    command line, start time) and ``flag``. Reentrant within one process. Yields the folder's Path."""
    path = canonical(folder)
    lock_file = path.parent / derived_name(path, ".lock")
    info_file = path.parent / derived_name(path, ".lock.json")
    key = str(lock_file)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(key, timeout=0, thread_local=False)
            lock.acquire()
        except Timeout:
            raise InputError(_refusal(Path(folder), info_file, flag)) from None
        except OSError as e:
            raise InputError(f"{folder}: cannot take its writer lock {lock_file} ({e.strerror or e})") from None
        try:
            info_file.write_text(json.dumps(_holder()) + "\n", encoding="utf-8")
        except OSError:
            pass  # the record only helps the message of a refused writer
        with _held_guard:
            _held[key] = [lock, 1]
    try:
        yield Path(folder)
    finally:
        with _held_guard:
            entry = _held[key]
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            with contextlib.suppress(OSError):
                info_file.unlink()
            entry[0].release()


__all__ = [
    "OWNER_FILE",
    "canonical",
    "check_folder_target",
    "derived_name",
    "name_key",
    "owned",
    "owner_alive",
    "staging_folders",
    "staging_pattern",
    "write_owner",
]
