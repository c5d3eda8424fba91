"""Echoes of the instruction, removed from a reply before it is judged.

Small instruct models often answer an emotion instruction by restating it ("Reply: Full of disgust.",
"Replying in an extremely fearful tone...", "Sure! Here is a happy reply:"). A judge that counts
emotion words takes such a line as a hit although the reply itself expresses nothing. :func:`strip_echo`
drops every sentence of a reply that is made (almost) only of words of the instruction, of meta words
about replying (``reply``, ``tone``, ``respond``, ``here``, ...) and of the forms of the emotion names,
*and* that holds at least one meta or instruction word that is not an emotion form. So "So sad." stays
(an emotion word alone is the reply expressing it) while "Full of sadness." (``full`` is meta) goes.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from circuits.core.emotions import EMOTIONS

EMOTION_FORMS: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "angry", "angrily", "angered"),
    "disgust": ("disgust", "disgusted", "disgustedly"),
    "fear": ("fear", "fearful", "fearfully"),
    "happiness": ("happiness", "happy", "happily"),
    "sadness": ("sadness", "sad", "sadly"),
    "surprise": ("surprise", "surprised"),
}
"""The names of the emotions and their adjective / adverb forms, as an instruction words them."""

META_WORDS = frozenset(
    """
reply replies replying replied respond responds responding response responses answer answers answering
tone tones voice style manner way mood emotion emotions emotional emotionally feeling feelings express
expressing expressed expression full filled strong strongly extremely very really deeply intense
intensely sure certainly okay ok here heres is are be am will with in of a an the my your this that
always keep at most two sentences sentence short brief write writing written text message version
following below sounding sounds sound like tinge hint note
""".split()
)
"""Words of a sentence that talks about the reply rather than being one."""

_STOP = frozenset("a an the of in to and or with for on at is are be am i it this that my your".split())
_SENTENCE = re.compile(r"[^.!?\n:;]*[.!?\n:;]+|[^.!?\n:;]+$")  # the pieces concatenate to the text
_WORD = re.compile(r"[a-z]+")

ALL_FORMS = frozenset(f for forms in EMOTION_FORMS.values() for f in forms)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("'", ""))


def is_echo(sentence: str, instruction_words: Iterable[str] = ()) -> bool:
    """Whether ``sentence`` only restates an instruction (see the module docstring)."""
    words = [w for w in _words(sentence) if w not in _STOP]
    if not words:
        return False
    echo_vocab = META_WORDS | ALL_FORMS | set(instruction_words)
    if sum(w in echo_vocab for w in words) < 0.8 * len(words):
        return False
    return any(w not in ALL_FORMS and (w in META_WORDS or w in instruction_words) for w in words)


def strip_echo(reply: str, instructions: Sequence[str] = ()) -> str:
    """``reply`` without its sentences that echo one of ``instructions`` (or instructions in general);
    sentences are split at ``. ! ? : ;`` and line breaks. Returns the remaining text, stripped, or
    ``reply`` itself when nothing echoes."""
    vocab = {w for text in instructions for w in _words(text) if w not in _STOP} - ALL_FORMS
    pieces = _SENTENCE.findall(reply)
    kept = [s for s in pieces if not is_echo(s, vocab)]
    return reply if len(kept) == len(pieces) else "".join(kept).strip()


def strip_echoes(replies: Sequence[str], instructions: Sequence[Sequence[str]] | None) -> list[str]:
    """:func:`strip_echo` of each reply with its own instructions (None: replies unchanged)."""
    if instructions is None:
        return list(replies)
    if len(instructions) != len(replies):
        raise ValueError(f"{len(replies)} replies but {len(instructions)} instruction lists")
    return [strip_echo(r, ins) for r, ins in zip(replies, instructions)]


assert set(EMOTION_FORMS) == set(EMOTIONS)
