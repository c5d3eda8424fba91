"""One hardened reading layer: every loader of a user or run file reads JSON, JSONL, CSV, safetensors
and GGUF through these functions.

Any decoding problem becomes one :class:`~circuits.core.artifacts.InputError` (or the loader's own
subclass, passed as ``error``) whose one-line message starts with the file and names the line, field
or tensor: a missing or unreadable file, text that is not UTF-8, lone surrogate escapes
(``"\\ud800"``), integers beyond Python's digit limit, nesting deeper than :data:`MAX_DEPTH`,
truncated files, a wrong JSON type at the top, ``NaN`` / ``Infinity`` (and overflowing numbers such
as ``1e400``) where they are not allowed, tensors of the wrong shape or dtype, and non-finite tensor
values. Only the exact exception types these decoders raise are caught.
"""

from __future__ import annotations

import csv
import json
import math
import os
import struct
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from circuits.core.artifacts import InputError
from circuits.core.signals import raise_if_received

ErrorFactory = Callable[[str], Exception]
"""Builds the error raised for a message (an :class:`InputError` subclass, or ``InputError`` itself)."""

MAX_DEPTH = 64
"""The deepest JSON nesting a file may have (the package's files are at most a few levels deep)."""

TENSOR_FILE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, TypeError)
"""What torch and safetensors raise besides ``SafetensorError`` on a damaged file."""


FLOATING = "floating"
"""``dtypes`` value of :func:`check_tensor` / :func:`read_safetensors` accepting any floating dtype."""


class _Reject(Exception):
    """Raised from inside the JSON decoder's hooks; turned into the caller's error."""


def _typename(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _open_error(path: Path, err: OSError, what: str) -> str:
    if isinstance(err, FileNotFoundError):
        return f"{path}: no such {what}"
    if isinstance(err, IsADirectoryError):
        return f"{path}: expected a {what}, found a folder"
    return f"{path}: cannot read the {what} ({err.strerror or err})"


def as_path(value: Any, what: str = "path") -> Path:
    """``value`` as a Path; anything but a string or an ``os.PathLike`` (None, a number, a list) raises
    :class:`InputError` naming ``what`` (a loader's path argument)."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return Path(value)
    raise InputError(f"{what}: expected a file path (str or os.PathLike), got {value!r}")


def read_bytes(path: str | os.PathLike, *, what: str = "file", error: ErrorFactory = InputError) -> bytes:
    """The bytes of a file; a missing, unreadable or folder path raises ``error`` naming it."""
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as err:
        raise error(_open_error(p, err, what)) from None


def _decode(raw: bytes, where: str, error: ErrorFactory, first: bool = True) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{where}: not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start})") from None


def read_text(
    path: str | os.PathLike, *, what: str = "file", error: ErrorFactory = InputError, nonempty: bool = False
) -> str:
    """A UTF-8 text file (a leading BOM dropped); ``nonempty``: a file of only whitespace is refused."""
    p = Path(path)
    text = _decode(read_bytes(p, what=what, error=error), str(p), error)
    if nonempty and not text.strip():
        raise error(f"{p}: the {what} is empty")
    return text


def iter_lines(
    path: str | os.PathLike, *, what: str = "file", error: ErrorFactory = InputError
) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text)`` of a UTF-8 file, one line in memory at a time (BOM dropped, line
    ends stripped); a line that is not UTF-8 raises ``error("file:line: ...")``."""
    p = Path(path)
    try:
        fh = open(p, "rb")
    except OSError as err:
        raise error(_open_error(p, err, what)) from None
    with fh:
        try:
            for n, raw in enumerate(fh, start=1):
                yield n, _decode(raw, f"{p}:{n}", error, first=n == 1).rstrip("\r\n")
        except OSError as err:
            raise error(_open_error(p, err, what)) from None


def _safe(text: str) -> str:
    """``text`` printable on any UTF-8 stream: lone surrogates written as ``\\udXXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_tree(value: Any, where: str) -> None:
    """Walk a decoded JSON value without recursion: no lone surrogates in strings or keys, and no
    nesting deeper than :data:`MAX_DEPTH`. A problem names its field as a path (``event.neutral``,
    ``rows[3].text``)."""
    stack: list[tuple[Any, int, str, bool]] = [(value, 0, "", False)]
    while stack:
        node, depth, at, is_key = stack.pop()
        if depth > MAX_DEPTH:
            raise _Reject(f"{where}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                field = f"the key of field '{at}'" if is_key else f"field '{at}'" if at else "the text"
                raise _Reject(f"{where}: {field}: holds a lone surrogate escape (\\ud800-\\udfff)") from None
        elif isinstance(node, dict):
            for k, v in node.items():
                here = f"{at}.{_safe(k)}" if at else _safe(k)
                stack.append((k, depth + 1, here, True))
                stack.append((v, depth + 1, here, False))
        elif isinstance(node, list):
            stack.extend((v, depth + 1, f"{at}[{i}]", False) for i, v in enumerate(node))


def parse_json(
    text: str,
    where: str,
    *,
    error: ErrorFactory = InputError,
    allow_nan: bool = False,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Decode one JSON text; ``where`` (``file`` or ``file:line``) starts every message.

    ``allow_nan=False`` refuses ``NaN`` / ``Infinity`` tokens and numbers that overflow a float.
    ``object_pairs_hook`` may raise ``ValueError`` (e.g. on a duplicate key): its message is kept."""

    def constant(token: str) -> float:
        raise _Reject(f"{where}: {token} is not allowed here (expected a finite number)")

    def number(token: str) -> float:
        x = float(token)
        if not math.isfinite(x):
            raise _Reject(f"{where}: the number {token[:20]} overflows a float")
        return x

    kwargs: dict[str, Any] = {} if allow_nan else {"parse_constant": constant, "parse_float": number}
    if object_pairs_hook is not None:
        kwargs["object_pairs_hook"] = object_pairs_hook
    try:
        value = json.loads(text, **kwargs)
        _check_tree(value, where)
    except _Reject as err:
        raise error(str(err)) from None
    except json.JSONDecodeError as err:
        raise error(f"{where}: not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise error(f"{where}: nested too deep to read (at most {MAX_DEPTH} levels)") from None
    except ValueError as err:  # an integer beyond the digit limit, or object_pairs_hook's refusal
        if "integer string conversion" in str(err):
            raise error(f"{where}: an integer has more than {sys.get_int_max_str_digits()} digits") from None
        raise error(f"{where}: {err}") from None
    return value


def _check_top(value: Any, top: type | tuple[type, ...] | None, where: str, error: ErrorFactory) -> None:
    if top is None or isinstance(value, top):
        return
    names = " or ".join(_typename(t()) for t in (top if isinstance(top, tuple) else (top,)))
    raise error(f"{where}: expected {names} at the top, got {_typename(value)}")


def read_json(
    path: str | os.PathLike,
    *,
    what: str = "JSON file",
    top: type | tuple[type, ...] | None = dict,
    allow_nan: bool = False,
    error: ErrorFactory = InputError,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """A JSON file decoded and checked (:func:`parse_json`); ``top`` is the type the whole value must
    have (an object by default; None: any)."""
    p = Path(path)
    text = read_text(p, what=what, error=error, nonempty=True)
    value = parse_json(text, str(p), error=error, allow_nan=allow_nan, object_pairs_hook=object_pairs_hook)
    _check_top(value, top, str(p), error)
    return value


def iter_jsonl(
    path: str | os.PathLike,
    *,
    what: str = "JSONL file",
    top: type | tuple[type, ...] | None = dict,
    allow_nan: bool = False,
    error: ErrorFactory = InputError,
    where: str = "{path}:{line}",
) -> Iterator[tuple[int, Any]]:
    """Stream ``(line number, value)`` of a JSONL file, skipping blank lines; every value is checked as
    :func:`read_json` checks a file, and every message starts with ``where`` (file and line)."""
    for n, line in iter_lines(path, what=what, error=error):
        if not line.strip():
            continue
        here = where.format(path=Path(path), line=n)
        value = parse_json(line, here, error=error, allow_nan=allow_nan)
        _check_top(value, top, here, error)
        yield n, value


def read_jsonl(
    path: str | os.PathLike,
    *,
    what: str = "JSONL file",
    top: type | tuple[type, ...] | None = dict,
    allow_nan: bool = False,
    error: ErrorFactory = InputError,
    nonempty: bool = False,
    where: str = "{path}:{line}",
) -> list[Any]:
    """Every value of a JSONL file (:func:`iter_jsonl`); ``nonempty``: a file without one is refused."""
    rows = [v for _, v in iter_jsonl(path, what=what, top=top, allow_nan=allow_nan, error=error, where=where)]
    if nonempty and not rows:
        raise error(f"{Path(path)}: the {what} holds no entries")
    return rows


def iter_csv(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] = (),
    what: str = "CSV file",
    delimiter: str = ",",
    error: ErrorFactory = InputError,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream ``(line number, row)`` of a UTF-8 CSV file with a header; ``columns`` must all be in the
    header. Missing cells read as ``""``; a malformed line (a stray quote, a NUL byte, an oversized
    field) names its line."""
    p = Path(path)

    def lines() -> Iterator[str]:
        for _, line in iter_lines(p, what=what, error=error):
            for part in line.splitlines() or [""]:  # universal newlines, as open(newline=None) reads
                yield part + "\n"

    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise error(f"{p}: the {what} is empty (expected a header line)")
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise error(f"{p}: the header lacks the column(s) {', '.join(missing)} (it has {', '.join(header)})")
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            yield reader.line_num, {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header)}
    except csv.Error as err:
        raise error(f"{p}:{reader.line_num}: malformed CSV ({err})") from None


def read_csv(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] = (),
    what: str = "CSV file",
    delimiter: str = ",",
    error: ErrorFactory = InputError,
) -> list[dict[str, str]]:
    """Every row of a CSV file (:func:`iter_csv`)."""
    return [row for _, row in iter_csv(path, columns=columns, what=what, delimiter=delimiter, error=error)]


def to_float(value: Any, where: str, *, finite: bool = True, error: ErrorFactory = InputError) -> float:
    """A number from a CSV cell or JSON value; ``where`` names file, line and field."""
    if isinstance(value, bool):
        raise error(f"{where}: expected a number, got {value!r}")
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{where}: expected a number, got {value!r}") from None
    if finite and not math.isfinite(x):
        raise error(f"{where}: expected a finite number, got {value!r}")
    return x


def to_int(value: Any, where: str, *, minimum: int | None = None, error: ErrorFactory = InputError) -> int:
    """A whole number from a CSV cell or JSON value (``"3"`` and ``3`` read; ``3.5``, ``True`` do not)."""
    if isinstance(value, bool):
        raise error(f"{where}: expected a whole number, got {value!r}")
    try:
        n = int(value.strip() if isinstance(value, str) else value) if not isinstance(value, float) else None
    except (TypeError, ValueError):
        n = None
    if n is None:
        raise error(f"{where}: expected a whole number, got {value!r}")
    if minimum is not None and n < minimum:
        raise error(f"{where}: expected a whole number >= {minimum}, got {n}")
    return n


def check_tensor(
    tensor: Any,
    where: str,
    *,
    shape: Sequence[int | None] | None = None,
    dtypes: Iterable[Any] | str | None = None,
    finite: bool = True,
    error: ErrorFactory = InputError,
) -> Any:
    """Check a torch tensor's shape (``None`` entries match any size), dtype (``dtypes``: the allowed
    torch dtypes, or :data:`FLOATING`) and finiteness."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise error(f"{where}: expected a tensor, got {type(tensor).__name__}")
    if shape is not None:
        got = tuple(tensor.shape)
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise error(f"{where}: expected shape {want}, got {got}")
    if dtypes == FLOATING:
        if not tensor.is_floating_point():
            raise error(f"{where}: expected a floating dtype, got {str(tensor.dtype).replace('torch.', '')}")
    elif dtypes is not None:
        allowed = tuple(dtypes)
        if tensor.dtype not in allowed:
            names = ", ".join(str(d).replace("torch.", "") for d in allowed)
            raise error(f"{where}: expected dtype {names}, got {str(tensor.dtype).replace('torch.', '')}")
    if finite and (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
        raise error(f"{where}: holds NaN or infinite values")
    return tensor


def read_safetensors(
    path: str | os.PathLike,
    *,
    what: str = "tensor file",
    expect: Mapping[str, tuple[Sequence[int | None] | None, Iterable[Any] | str | None]] | None = None,
    finite: bool = True,
    metadata: Sequence[str] = (),
    error: ErrorFactory = InputError,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and the metadata of a ``.safetensors`` file, checked.

    ``expect`` maps each required tensor to ``(shape or None, dtypes or None)``; ``finite`` refuses
    NaN / inf in any floating tensor; ``metadata`` lists keys the header's metadata must hold. A
    missing, truncated or damaged file raises ``error`` naming it."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise error(f"{p}: no such {what}")
    if p.is_dir():
        raise error(f"{p}: expected a {what}, found a folder")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except SafetensorError as err:
        raise_if_received()  # a signal torch turned into another error: unwind, do not blame the file
        raise error(f"{p}: not a readable safetensors file, truncated or damaged ({err})") from None
    except TENSOR_FILE_ERRORS as err:
        raise_if_received()
        raise error(f"{p}: not a readable safetensors file ({type(err).__name__}: {err})") from None
    lacking = [k for k in metadata if k not in meta]
    if lacking:
        raise error(f"{p}: the file's metadata lacks {', '.join(lacking)} (re-save it with the workbench)")
    for name, (shape, dtypes) in (expect or {}).items():
        if name not in tensors:
            raise error(f"{p}: tensor {name!r} is missing (the file holds {', '.join(sorted(tensors)) or 'none'})")
        check_tensor(tensors[name], f"{p}: tensor {name!r}", shape=shape, dtypes=dtypes, finite=False, error=error)
    if finite:
        for name, t in tensors.items():
            check_tensor(t, f"{p}: tensor {name!r}", error=error)
    return tensors, meta


def load_tensors(path: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """The tensors of :func:`read_safetensors` (its metadata dropped)."""
    return read_safetensors(path, **kwargs)[0]


GGUF_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, IndexError, OverflowError, OSError, struct.error)
"""What ``gguf.GGUFReader`` raises on a damaged or truncated file."""


def read_gguf(path: str | os.PathLike, *, what: str = "GGUF file", error: ErrorFactory = InputError) -> Any:
    """A ``gguf.GGUFReader`` over a checked file: present, starting with ``GGUF``, and readable."""
    import gguf

    p = Path(path)
    check_gguf_magic(p, what=what, error=error)
    try:
        return gguf.GGUFReader(str(p))
    except GGUF_ERRORS as err:
        raise error(f"{p}: not a readable {what}, truncated or damaged ({type(err).__name__}: {err})") from None


def check_gguf_magic(path: str | os.PathLike, *, what: str = "GGUF file", error: ErrorFactory = InputError) -> None:
    """Refuse a missing file, a folder, or one whose first bytes are not ``GGUF``."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise error(_open_error(p, err, what)) from None
    if magic != b"GGUF":
        raise error(f"{p}: not a {what} (its first bytes are {magic!r}, a GGUF file starts with b'GGUF')")
