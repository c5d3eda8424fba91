"""Reading the VA inputs: labelled texts (CSV / JSONL), VA ratings, a VA word lexicon; the VA error types."""

from __future__ import annotations

import contextlib
import csv
import math
import re
from pathlib import Path
from typing import Any

from circuits.core.artifacts import InputError
from circuits.core.readers import iter_jsonl, iter_lines

GOEMOTIONS = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
)
"""The GoEmotions label set (27 emotions + neutral); our six (with ``happiness``) are accepted too."""


class VAFormatError(InputError):
    """A labelled-text, ratings, lexicon or probe file is malformed (message names file and line)."""


class VAInputError(InputError):
    """The data given cannot support the analysis (too few emotions, texts or lexicon words; no ratings)."""


# ----------------------------------------------------------------------------------------------- files
def _split_labels(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip().lower() for v in value if str(v).strip()]
    return [p.strip().lower() for p in re.split(r"[,;|]", str(value or "")) if p.strip()]


@contextlib.contextmanager
def _csv_lines(path: Path):
    """The lines of a UTF-8 CSV file for ``csv.DictReader``, streamed, with universal newlines; a line
    that is not UTF-8, or CSV the reader rejects, gives a :class:`VAFormatError` naming the file."""
    lines = (part + "\n" for _, line in iter_lines(path, error=VAFormatError) for part in (line.splitlines() or [""]))
    try:
        yield lines
    except csv.Error as err:
        raise VAFormatError(f"{path}: not a valid CSV file ({err})") from None


def _jsonl(path: Path):
    """Yield ``(line number, value)`` for the non-empty lines of a JSONL file (read by
    :func:`circuits.core.readers.iter_jsonl`: every decoding problem names the file and line)."""
    yield from iter_jsonl(path, top=None, allow_nan=True, error=VAFormatError)


def load_labelled_texts(path: str | Path) -> list[tuple[str, tuple[str, ...]]]:
    """Read ``(text, labels)`` pairs from CSV (columns ``text`` and ``labels`` or ``label``; several
    labels separated by ``,`` ``;`` or ``|``) or JSONL (``{"text": ..., "labels": [...]}`` or
    ``"label": str``). Errors name the file and line."""
    path = Path(path)
    rows: list[tuple[str, tuple[str, ...]]] = []
    if path.suffix.lower() == ".csv":
        with _csv_lines(path) as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "text" not in reader.fieldnames:
                raise VAFormatError(f"{path}:1: expected a header with a 'text' column and 'labels' or 'label'")
            key = "labels" if "labels" in reader.fieldnames else "label" if "label" in reader.fieldnames else None
            if key is None:
                raise VAFormatError(f"{path}:1: expected a 'labels' or 'label' column, got {reader.fieldnames}")
            for n, rec in enumerate(reader, start=2):
                text, labels = (rec.get("text") or "").strip(), _split_labels(rec.get(key))
                if not text or not labels:
                    raise VAFormatError(
                        f"{path}:{n}: field '{'text' if not text else key}': expected a non-empty value"
                    )
                rows.append((text, tuple(labels)))
    else:
        for n, obj in _jsonl(path):
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise VAFormatError(f"{path}:{n}: field 'text': expected a non-empty string")
            labels = _split_labels(obj.get("labels", obj.get("label")))
            if not labels:
                raise VAFormatError(f"{path}:{n}: field 'labels': expected one or more labels")
            rows.append((obj["text"].strip(), tuple(labels)))
    if not rows:
        raise VAFormatError(f"{path}: no rows")
    return rows


MAX_RATING = 100.0
"""Largest |valence| or |arousal| a ratings file may hold (a guard against typos such as -500 or 3000)."""


def load_va_ratings(path: str | Path) -> dict[str, tuple[float, float]]:
    """Emotion -> (valence, arousal) from a CSV with columns ``emotion,valence,arousal``."""
    path = Path(path)
    out: dict[str, tuple[float, float]] = {}
    with _csv_lines(path) as fh:
        reader = csv.DictReader(fh)
        need = {"emotion", "valence", "arousal"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise VAFormatError(f"{path}:1: expected columns {sorted(need)}, got {reader.fieldnames}")
        for n, rec in enumerate(reader, start=2):
            emotion = (rec["emotion"] or "").strip().lower()
            if not emotion:
                raise VAFormatError(f"{path}:{n}: field 'emotion': empty")
            if emotion in out:
                raise VAFormatError(f"{path}:{n}: field 'emotion': {emotion!r} is rated twice")
            try:
                va = (float(rec["valence"]), float(rec["arousal"]))
            except (TypeError, ValueError) as err:
                raise VAFormatError(f"{path}:{n}: valence and arousal must be numbers ({err})") from err
            if not all(math.isfinite(x) for x in va):
                raise VAFormatError(f"{path}:{n}: valence and arousal must be finite numbers, got {va}")
            if not all(abs(x) <= MAX_RATING for x in va):
                raise VAFormatError(
                    f"{path}:{n}: valence and arousal beyond +-{MAX_RATING:g} ({va}): VA ratings are on "
                    "a small scale (1-9 for the shipped and self-reported ones, 0-1 or -1-1 in NRC-VAD)"
                )
            out[emotion] = va
    for i, what in enumerate(("valence", "arousal")):
        if len(out) > 1 and len({v[i] for v in out.values()}) == 1:
            raise VAFormatError(
                f"{path}: every {what} rating is the same ({next(iter(out.values()))[i]}): the axes "
                "cannot be fitted to ratings that do not vary"
            )
    return out


def load_va_lexicon(path: str | Path) -> dict[str, tuple[float, float]]:
    """Word -> (valence, arousal) from an NRC-VAD style file: ``word<TAB or ,>valence<sep>arousal[<sep>
    dominance]``, optional header line."""
    path = Path(path)
    out: dict[str, tuple[float, float]] = {}
    for n, line in iter_lines(path, error=VAFormatError):
        if not line.strip():
            continue
        parts = [p.strip() for p in re.split(r"\t|,", line)]
        if len(parts) < 3:
            raise VAFormatError(f"{path}:{n}: expected word, valence, arousal[, dominance]")
        try:
            va = (float(parts[1]), float(parts[2]))
        except ValueError:
            if n == 1:
                continue  # header
            raise VAFormatError(f"{path}:{n}: valence and arousal must be numbers, got {parts[1:3]}") from None
        if not all(math.isfinite(x) for x in va):
            raise VAFormatError(f"{path}:{n}: valence and arousal must be finite numbers, got {parts[1:3]}")
        out[parts[0].lower()] = va
    return out
