"""Degenerate text of the kinds steering produces when it breaks a model, generated from a seed.

Used to build and check the fluency check (:mod:`circuits.judges.fluency`): a judge that reads emotion
in ``"sad sad sad sad"`` counts broken replies as hits. Each kind imitates one failure seen in
steered replies:

- ``repeat_word``: one word over and over (``"angry angry angry ..."``);
- ``salad``: words drawn at random from a vocabulary of ordinary words, no syntax;
- ``salad_emotion``: the same with emotion words mixed in (what a strongly steered reply looks like);
- ``shout_loop``: a short exclamation repeated (``"WHAT? WHAT? WHAT?"``);
- ``char_run``: one character or a two-character unit run on (``"aaaaaaa"``, ``"!!!!!!"``, ``"hahaha"``);
- ``phrase_loop``: a short clause repeated (``"I am so sad. I am so sad. ..."``), with or without a
  fluent opening;

:func:`degenerate_texts` returns ``(kind, text)`` pairs; the same seed gives the same texts. The kinds
and the vocabulary are written for this project.
"""

from __future__ import annotations

import random

KINDS = ("repeat_word", "salad", "salad_emotion", "shout_loop", "char_run", "phrase_loop")

_PLAIN = (
    "table window morning river paper yellow quickly under between seven garden music letter street "
    "carry open small round almost before station orange cloud engine pencil coffee basket winter "
    "listen behind story number early bottle minute travel corner silver across kitchen ladder forest "
    "button simple handle market careful bridge shadow second plastic tomorrow often thick copper"
).split()
_EMOTION_WORDS = (
    "angry furious rage hate sad tears lonely grief afraid scared terror panic happy joy wonderful "
    "delighted wow shocked unbelievable amazing disgusting gross revolting vile sick hurt crying love"
).split()
_SHOUTS = ("WHAT?", "NO!", "WHY?!", "STOP!", "HELP!", "OH NO!", "HOW?!", "WOW!", "UGH!", "REALLY?!")
_UNITS = ("a", "!", "?", "ha", "no", "h", "o", ".", "ah", "x", "*", "-")
_CLAUSES = (
    "I am so sad",
    "this is terrible",
    "I can't believe it",
    "why would they do that",
    "I hate this so much",
    "everything is wonderful",
    "I'm scared",
    "that is disgusting",
    "it is so unfair",
    "what a surprise",
    "please help me",
    "I don't know",
)
_OPENINGS = (
    "Oh, that sounds hard.",
    "I understand how you feel.",
    "Well, here is what I think.",
    "That must have been a shock.",
    "I hear you.",
    "Let me tell you something.",
)


def _one(kind: str, rng: random.Random) -> str:
    if kind == "repeat_word":
        word = rng.choice(_PLAIN + _EMOTION_WORDS)
        return " ".join([word] * rng.randint(6, 30))
    if kind == "salad":
        return " ".join(rng.choice(_PLAIN) for _ in range(rng.randint(8, 30)))
    if kind == "salad_emotion":
        pool = _PLAIN + _EMOTION_WORDS * 2
        words = [rng.choice(pool) for _ in range(rng.randint(8, 30))]
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
            return " ".join(words) + rng.choice(("", ".", "!", "!!"))
        return " ".join(words)
    if kind == "shout_loop":
        shout = rng.choice(_SHOUTS)
        return " ".join([shout] * rng.randint(4, 20))
    if kind == "char_run":
        unit = rng.choice(_UNITS)
        run = unit * rng.randint(max(4, 12 // len(unit)), 60 // len(unit))
        return run if rng.random() < 0.6 else f"{rng.choice(_OPENINGS)} {run}"
    if kind == "phrase_loop":
        clause = rng.choice(_CLAUSES)
        sep = rng.choice((". ", "! ", ", ", " "))
        body = sep.join([clause] * rng.randint(3, 10))
        return body if rng.random() < 0.5 else f"{rng.choice(_OPENINGS)} {body}"
    raise ValueError(f"unknown degenerate kind {kind!r}: expected one of {', '.join(KINDS)}")


def degenerate_texts(n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str]]:
    """``n`` degenerate texts, the kinds in turn, as ``(kind, text)`` pairs drawn from ``seed``."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"degenerate kinds: expected some of {', '.join(KINDS)}, got {list(kinds)}")
    rng = random.Random(seed)
    return [(kinds[i % len(kinds)], _one(kinds[i % len(kinds)], rng)) for i in range(n)]
