"""The emotion vocabulary shared by every module of the workbench."""

from __future__ import annotations

from typing import Iterable

from circuits.core.artifacts import InputError

EMOTIONS: tuple[str, ...] = ("anger", "sadness", "happiness", "fear", "surprise", "disgust")
"""The six emotions of the SEV experiments, in the canonical order used for every tensor axis."""

NEUTRAL = "neutral"
LABELS: tuple[str, ...] = EMOTIONS + (NEUTRAL,)
"""Judge labels: the six emotions plus ``neutral``."""

VALENCES: tuple[str, ...] = ("positive", "neutral", "negative")


class UnknownEmotionError(InputError):
    """Raised when an emotion name is not one of :data:`EMOTIONS`."""


def check_emotions(names: Iterable[str] | None, allowed: tuple[str, ...] = EMOTIONS) -> tuple[str, ...]:
    """Validate emotion names; ``None`` means all of ``allowed``.

    Returns the names in the order given (duplicates removed). Raises
    :class:`UnknownEmotionError` naming the bad entry and the allowed values.
    """
    if names is None:
        return allowed
    out: list[str] = []
    for name in names:
        key = str(name).strip().lower()
        if key not in allowed:
            raise UnknownEmotionError(f"unknown emotion {name!r}: expected one of {', '.join(allowed)}")
        if key not in out:
            out.append(key)
    if not out:
        raise UnknownEmotionError("no emotions given: expected at least one of " + ", ".join(allowed))
    return tuple(out)
