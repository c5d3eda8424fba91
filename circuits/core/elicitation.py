"""Elicitation sets that never name the emotion (issue 38, first part): the data to tell an emotion
direction that encodes an emotional state from one that encodes the instruction's word.

Three sets ship under ``circuits/data/implicit/``, written for this project, each row with a fixed
``dev`` / ``final`` side (:func:`hash_split` of its text):

- ``stance``: per emotion, instructions that describe the speaker's stance or situation, not a feeling
  ("You have just been treated unfairly ..."), to put before a SEV scenario (:data:`ELICITATIONS` ``stance``);
- ``event``: first-person user turns telling an event that evokes the emotion, with no instruction (the
  model replies as the person it happened to), and calm ones;
- ``story``: short third-person stories whose character goes through the emotion (the concept-vector
  texts), and calm ones.

No text of any set holds a word of any emotion's word family (``word_families.json``: the emotion's
name and its common synonyms, per emotion) nor :data:`FEELING_WORDS`; :func:`named_words` finds them
and the readers refuse a row that has one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from circuits.core.artifacts import InputError
from circuits.core.emotions import EMOTIONS, LABELS

ELICITATIONS = ("explicit", "stance", "event", "story")
"""Prompt families (:class:`~circuits.core.sev.PromptSettings` ``prompt_family``): ``explicit`` names the
emotion (the SEV instruction); ``stance`` puts a stance instruction in its place; ``event`` and ``story``
send an implicit set's text as the user turn, with no instruction. Only the first two are SEV-shaped."""

SEV_ELICITATIONS = ("explicit", "stance")
"""The elicitations whose prompts are built around SEV scenarios (what ``discover`` can run on)."""

IMPLICIT_SETS = {"stance": "implicit_stance", "event": "implicit_events", "story": "implicit_stories"}
"""Elicitation -> its data file (a key of :data:`circuits.core.resources.DATA_FILES`)."""

FEELING_WORDS = ("emotion", "emotions", "emotional", "feel", "feels", "feeling", "feelings", "mood")
"""Words about feeling in general, banned from every implicit text like the emotions' own words."""

FINAL_SHARE = 0.35
"""Share of rows on the ``final`` side of :func:`hash_split` (the judge set uses the same)."""


def hash_split(text: str, final_share: float = FINAL_SHARE) -> str:
    """``dev`` or ``final``: a fixed function of the text's SHA-256, so a row never changes side when
    others are added or removed."""
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64
    return "final" if h < final_share else "dev"


@lru_cache(maxsize=1)
def word_families() -> dict[str, tuple[str, ...]]:
    """Emotion -> the words that name it (lower case), from ``circuits/data/implicit/word_families.json``."""
    from circuits.core.readers import read_json
    from circuits.core.resources import data_path

    path = data_path("implicit_word_families")
    raw = read_json(path, what="emotion word families")
    if not isinstance(raw, dict) or sorted(raw) != sorted(EMOTIONS):
        raise InputError(f"{path}: expected an object with one word list per emotion {EMOTIONS}")
    out = {}
    for emotion, words in raw.items():
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.islower() for w in words):
            raise InputError(f"{path}: {emotion}: expected a non-empty list of lower-case words")
        out[emotion] = tuple(words)
    return out


def named_words(text: str) -> list[tuple[str, str]]:
    """Every ``(emotion or "feeling", word)`` of ``text`` that names an emotion or feeling in general
    (whole words, case-insensitive), in text order."""
    banned = {w: e for e, words in word_families().items() for w in words} | {w: "feeling" for w in FEELING_WORDS}
    return [(banned[w], w) for w in re.findall(r"[a-z]+", text.lower()) if w in banned]


@lru_cache(maxsize=2)
def stance_instructions(split: str) -> dict[str, tuple[str, ...]]:
    """Emotion -> the stance instructions of one side (``dev`` or ``final``) of the stance set, in file
    order (what :class:`~circuits.core.sev.PromptSettings` with ``prompt_family="stance"`` sends)."""
    out: dict[str, list[str]] = {e: [] for e in EMOTIONS}
    for item in load_implicit("stance", split):
        out[item.emotion].append(item.text)
    empty = [e for e, texts in out.items() if not texts]
    if empty:
        raise InputError(f"the stance set's {split} side has no instruction for {', '.join(empty)}")
    return {e: tuple(texts) for e, texts in out.items()}


def stance_for(emotion: str, user: str, split: str) -> str:
    """The stance instruction sent with the SEV text ``user`` for ``emotion``: one of the emotion's
    instructions on ``split``'s side, picked by a hash of ``user`` (so each scenario and valence gets
    a fixed one, and the instructions are used about equally often)."""
    texts = stance_instructions(split)[emotion]
    return texts[int.from_bytes(hashlib.sha256(user.encode("utf-8")).digest()[:8], "big") % len(texts)]


@dataclass(frozen=True)
class ImplicitItem:
    """One row of an implicit set: ``text`` (the stance instruction, the user turn or the story), the
    ``emotion`` it evokes (``neutral``: none), its ``theme`` ("" for stance rows) and its ``split``."""

    elicitation: str
    emotion: str
    text: str
    theme: str
    split: str


def load_implicit(elicitation: str, split: str | None = None) -> list[ImplicitItem]:
    """The rows of one implicit set (``stance``, ``event`` or ``story``; only ``split``'s side when
    given). A row that is not an object with the set's fields, has an unknown emotion, or names an
    emotion (:func:`named_words`) is refused with :class:`InputError` naming the file and line."""
    from circuits.core.readers import iter_jsonl
    from circuits.core.resources import data_path

    if elicitation not in IMPLICIT_SETS:
        raise InputError(f"elicitation: expected one of {', '.join(IMPLICIT_SETS)}, got {elicitation!r}")
    if split not in (None, "dev", "final"):
        raise InputError(f"split: expected dev or final, got {split!r}")
    path = data_path(IMPLICIT_SETS[elicitation])
    field = "instruction" if elicitation == "stance" else "text"
    out = []
    for n, row in iter_jsonl(path, what=f"implicit {elicitation} set"):
        where = f"{path}, line {n}"
        text, emotion = row.get(field), row.get("emotion")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: expected a non-empty string field {field!r}")
        if emotion not in LABELS:
            raise InputError(f"{where}: emotion {emotion!r}: expected one of {', '.join(LABELS)}")
        hits = named_words(text)
        if hits:
            raise InputError(f"{where}: names an emotion ({', '.join(f'{w!r} ({e})' for e, w in hits)})")
        item = ImplicitItem(elicitation, emotion, text, str(row.get("theme", "")), hash_split(text))
        if split is None or item.split == split:
            out.append(item)
    return out
