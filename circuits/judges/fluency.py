"""Is a reply broken? The fluency check every judged reply passes before any emotion verdict.

A steered model that breaks writes loops, runs and word salad, and an emotion judge reads emotion in
them (``"sad sad sad"`` reads as sadness). A reply the check flags gets the verdict :data:`BROKEN`
and counts as a miss in **fluent accuracy** (:func:`circuits.judges.base.judge_replies`).

The check reads only the text, never the model being steered, so the same reply gets the same verdict
whatever produced it. Its signals (:func:`text_signals`), per reply:

- ``distinct_1``, ``distinct_2``: unique words / words and unique word pairs / pairs;
- ``loop_cover``: the largest share of the words covered by repeats of one n-gram (n = 1..8, at least
  three occurrences), and ``longest_repeat``: the longest n-gram (in words) that occurs twice;
- ``char_run``: the longest run of one character or one two-character unit, in characters;
- ``chunk_cover``: the largest share of the characters (spaces removed) covered by non-overlapping
  repeats (3 or more) of one 4-10 character string: loops glued into one "word"
  (``"extendextendextendong..."``) that the word signals cannot see;
- ``function_share``: the share of words that are English function words (fluent English is about
  half; word salad has almost none);
- ``upper_share``: the share of letters in capitals (shouted loops);
- ``letter_share``: the share of words that are one letter other than "a" and "I" (letter salad:
  ``"G K g I G"``);
- and, when a reference language model is given (:class:`FluencyCheck`), ``logprob``: the mean
  per-token log-probability of the text under that fixed model, compared with the same model's scores
  of unsteered replies.

:class:`FluencyRule` turns the signals into a verdict with thresholds written as data; the shipped
thresholds were chosen on the development split of generated degenerate text
(:mod:`circuits.judges.degenerate`) and the judge set's dev replies, and are checked on the final split
in the tests.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

BROKEN = "broken"
"""The verdict of a reply the fluency check flags; it is never an emotion, so it is always a miss."""

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+")

FUNCTION_WORDS = frozenset(
    """a an the this that these those some any no every each all both either neither my your his her its
    our their me you him us them i he she it we they myself yourself itself what which who whom whose
    where when why how there here then than and or but nor so yet if because although though while
    unless until since as of to in on at by for with about against between into through during before
    after above below from up down out off over under again further once not only just very too also
    still even ever never always often is am are was were be been being have has had having do does did
    doing will would shall should can could may might must let let's i'm you're it's that's don't
    can't won't isn't aren't wasn't weren't didn't doesn't haven't hasn't i've you've we've i'll you'll
    i'd you'd he's she's there's what's""".split()
)
"""Closed-class English words: articles, pronouns, prepositions, conjunctions, auxiliaries."""


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _loop_cover(words: list[str], max_n: int = 8) -> float:
    """Largest share of ``words`` covered by non-overlapping repeats (3 or more) of one n-gram."""
    best = 0.0
    total = len(words)
    for n in range(1, min(max_n, total // 3) + 1):
        grams = Counter(tuple(words[i : i + n]) for i in range(total - n + 1))
        gram, count = grams.most_common(1)[0]
        if count < 3:
            continue
        covered, i = 0, 0  # count non-overlapping occurrences left to right
        while i <= total - n:
            if tuple(words[i : i + n]) == gram:
                covered += n
                i += n
            else:
                i += 1
        if covered // n >= 3:
            best = max(best, covered / total)
    return best


def _longest_repeat(words: list[str]) -> int:
    """Length (in words) of the longest n-gram that occurs at least twice without overlapping."""
    best = 0
    n = 1
    while n <= len(words) // 2:
        seen: dict[tuple[str, ...], int] = {}
        found = False
        for i in range(len(words) - n + 1):
            g = tuple(words[i : i + n])
            if g in seen and i - seen[g] >= n:
                found = True
                break
            seen.setdefault(g, i)
        if not found:
            break
        best = n
        n += 1
    return best


def _char_run(text: str) -> int:
    """The longest run of one character, or of one two-character unit (``hahaha``), in characters."""
    s = re.sub(r"\s+", "", text)
    best = 0
    for unit in (1, 2):
        i = 0
        while i + unit <= len(s):
            j = i + unit
            while j + unit <= len(s) and s[j : j + unit] == s[i : i + unit]:
                j += unit
            if j - i > unit:
                best = max(best, j - i)
            i = j if j - i > unit else i + 1
    return best


def _chunk_cover(text: str, lengths: range = range(4, 11)) -> float:
    """Largest share of the characters (spaces removed, lower case) covered by non-overlapping repeats
    (3 or more) of one string of each length in ``lengths``."""
    s = re.sub(r"\s+", "", text.lower())
    best = 0.0
    for n in lengths:
        if len(s) < 3 * n:
            break
        gram, count = Counter(s[i : i + n] for i in range(len(s) - n + 1)).most_common(1)[0]
        if count < 3:
            continue
        covered, i = 0, 0
        while i <= len(s) - n:
            if s[i : i + n] == gram:
                covered, i = covered + n, i + n
            else:
                i += 1
        if covered >= 3 * n:
            best = max(best, covered / len(s))
    return best


def text_signals(text: str) -> dict[str, float]:
    """The text-only signals of one reply (see the module docstring); ``n_words`` is its length."""
    words = _words(text)
    n = len(words)
    pairs = list(zip(words, words[1:]))
    letters = [c for c in text if c.isalpha()]
    return {
        "n_words": float(n),
        "distinct_1": len(set(words)) / n if n else 0.0,
        "distinct_2": len(set(pairs)) / len(pairs) if pairs else 1.0,
        "loop_cover": _loop_cover(words) if n >= 3 else 0.0,
        "longest_repeat": float(_longest_repeat(words)),
        "char_run": float(_char_run(text)),
        "chunk_cover": _chunk_cover(text),
        "function_share": sum(w in FUNCTION_WORDS for w in words) / n if n else 0.0,
        "upper_share": sum(c.isupper() for c in letters) / len(letters) if letters else 0.0,
        "letter_share": sum(len(w) == 1 and w.isalpha() and w not in ("a", "i") for w in words) / n if n else 0.0,
    }


@dataclass(frozen=True)
class FluencyRule:
    """Thresholds that flag a reply as broken; any one reason suffices (:meth:`reasons`).

    ``min_words``: replies with fewer words are judged on runs and capitals only (a short fluent
    reply has too few words for the ratios). ``max_logprob_drop``: with a reference model, a reply whose
    mean log-probability is more than this many nats per token below the unsteered replies' lower
    quantile (:attr:`FluencyCheck.reference_floor`) is broken (only from ``min_words`` words: a short
    exclamation scores low per token)."""

    min_words: int = 6
    max_loop_cover: float = 0.5
    min_distinct_1: float = 0.4
    min_function_share: float = 0.12
    max_char_run: int = 10
    max_chunk_cover: float = 0.4
    max_upper_share: float = 0.7
    max_letter_share: float = 0.2
    max_logprob_drop: float = 0.5

    def reasons(self, s: dict[str, float]) -> list[str]:
        """Why the signals ``s`` say broken (empty: fluent)."""
        out: list[str] = []
        if s["n_words"] == 0 and s["char_run"] == 0:
            return ["empty"]
        if s["char_run"] > self.max_char_run:
            out.append("character run")
        if s["upper_share"] > self.max_upper_share and s["n_words"] >= 3 and s["distinct_1"] < 0.6:
            out.append("shouted loop")  # capitals alone are not broken ("I AM SO ANGRY"), repeated ones are
        if s["n_words"] == 0:
            out.append("no words")
        if s["n_words"] >= self.min_words:
            if s["loop_cover"] > self.max_loop_cover:
                out.append("loop")
            if s["distinct_1"] < self.min_distinct_1:
                out.append("repeated words")
            if s["function_share"] < self.min_function_share:
                out.append("word salad")
            if s["letter_share"] > self.max_letter_share:
                out.append("letter salad")
        if s["chunk_cover"] > self.max_chunk_cover and not {"loop", "character run"} & set(out):  # unseen so far
            out.append("glued loop")
        if "logprob_drop" in s and s["logprob_drop"] > self.max_logprob_drop and s["n_words"] >= self.min_words:
            out.append("improbable text")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FluencyCheck:
    """The fluency check of every judged reply: :meth:`broken` says which texts are broken.

    ``rule``: the thresholds (default :class:`FluencyRule`). The text signals need nothing else; the
    reference model's log-probability signal is added by :meth:`with_reference` (kept separate so that
    a check without a model stays cheap and deterministic)."""

    name = "fluency"

    def __init__(self, rule: FluencyRule | None = None):
        self.rule = rule or FluencyRule()
        self.reference: Any = None
        self.reference_floor: float | None = None

    def signals(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """:func:`text_signals` of each text and, with a reference model, ``logprob`` and ``logprob_drop``
        for the texts the log-probability can decide: at least ``rule.min_words`` words and not broken
        by the text signals already (the others are not scored: the verdict is the same, and the
        reference model's pass is the check's only real cost)."""
        out = [text_signals(t) for t in texts]
        if self.reference is not None and self.reference_floor is not None:
            todo = [i for i, s in enumerate(out) if s["n_words"] >= self.rule.min_words and not self.rule.reasons(s)]
            for i, lp in zip(todo, self.reference([texts[i] for i in todo]) if todo else []):
                out[i]["logprob"] = lp
                out[i]["logprob_drop"] = self.reference_floor - lp
        return out

    def reasons(self, texts: Sequence[str]) -> list[list[str]]:
        """Why each text is broken (an empty list: fluent)."""
        return [self.rule.reasons(s) for s in self.signals(texts)]

    def broken(self, texts: Sequence[str]) -> list[bool]:
        return [bool(r) for r in self.reasons(texts)]

    def describe(self) -> dict[str, Any]:
        """What the check is, for a run's records: the rule and, with a reference model, its name and floor."""
        out: dict[str, Any] = {"rule": self.rule.to_dict()}
        if self.reference is not None:
            out |= {"reference": getattr(self.reference, "name", None), "reference_floor": self.reference_floor}
        return out

    def with_reference(self, reference: Any, floor: float) -> "FluencyCheck":
        """This check with a reference model's log-probability signal: ``reference`` maps texts to their
        mean per-token log-probability (:class:`~circuits.judges.encoder.ReferenceLM`); ``floor``: the
        lower quantile of that score on unsteered replies (:func:`calibrate_floor`)."""
        out = FluencyCheck(self.rule)
        out.reference, out.reference_floor = reference, float(floor)
        return out


CALIBRATION_QUANTILE = 0.01
"""The reference floor is this quantile of the fluent replies' mean log-probabilities."""


def calibrate_floor(reference: Any, texts: Sequence[str], quantile: float = CALIBRATION_QUANTILE) -> float:
    """The ``quantile`` of the mean per-token log-probabilities of fluent ``texts`` under ``reference``
    (the lower order statistic: no interpolation)."""
    if not texts:
        raise ValueError("calibrate_floor: no texts")
    scores = sorted(reference(list(texts)))
    return float(scores[int(quantile * (len(scores) - 1))])


def read_calibration() -> dict[str, Any]:
    """The shipped calibration (``circuits/data/fluency.json``): the reference model, its floor and
    how the floor was computed."""
    from circuits.core.readers import read_json
    from circuits.core.resources import data_path

    return read_json(data_path("fluency_calibration"))


_DEFAULT: list[FluencyCheck] = []

RECOMMENDED_FLUENCY: dict[str, str] = {
    # the toy model writes the project's own template sentences, which the reference model's floor (set on
    # replies of real instruct models) does not describe; its text signals are what a toy reply can show
    "toy": "text",
}
"""Model name -> ``"text"`` for models whose replies the check reads with its text signals only."""


def default_fluency_check(model_name: str | None = None) -> FluencyCheck:
    """The check every command applies to the replies of ``model_name``: the text signals with
    :class:`FluencyRule`'s thresholds and the shipped reference model (SmolLM2-135M-Instruct, packaged)
    with its calibrated floor, loaded once per process; the text signals alone for the models of
    :data:`RECOMMENDED_FLUENCY` (the toy model). Without the packaged reference model the check runs on
    the text signals alone and says so (:meth:`FluencyCheck.describe` has no ``reference``)."""
    from circuits.core.sev import recommendation_key

    if RECOMMENDED_FLUENCY.get(str(recommendation_key(model_name))) == "text":
        return FluencyCheck()
    if not _DEFAULT:
        import warnings

        from circuits.core.artifacts import InputError
        from circuits.judges.encoder import reference_lm

        cal = read_calibration()
        check = FluencyCheck()
        try:
            check = check.with_reference(reference_lm(cal["reference"]), cal["floor"])
        except (InputError, OSError) as err:
            warnings.warn(f"fluency check without its reference model ({err}): text signals only", stacklevel=2)
        _DEFAULT.append(check)
    return _DEFAULT[0]


def resolve_fluency(fluency: Any, model_name: str | None) -> FluencyCheck | None:
    """``fluency`` as the judged steps take it: ``"default"`` -> :func:`default_fluency_check` of
    ``model_name``; a check or None as given."""
    return default_fluency_check(model_name) if isinstance(fluency, str) and fluency == "default" else fluency


def calibration(reference: Any, texts: Sequence[str], source: dict[str, Any]) -> dict[str, Any]:
    """A calibration record (the shipped ``fluency.json`` format): the reference model's name, its floor on
    the fluent ``texts`` (:func:`calibrate_floor`) and ``source`` (which texts: file, split, count)."""
    return {
        "reference": getattr(reference, "name", str(reference)),
        "floor": calibrate_floor(reference, texts),
        "quantile": CALIBRATION_QUANTILE,
        "source": dict(source, n_texts=len(texts)),
    }


def flag_rates(check: FluencyCheck, fluent: Sequence[str], degenerate: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The check on fluent texts (the share wrongly flagged) and on ``(kind, text)`` degenerate texts (the
    share flagged, overall and per kind), with the reasons counted."""
    r_fluent = check.reasons(list(fluent))
    r_deg = check.reasons([t for _, t in degenerate])
    kinds = sorted({k for k, _ in degenerate})
    flagged = [bool(r) for r in r_deg]
    return {
        "fluent": {
            "n": len(fluent),
            "flagged": sum(map(bool, r_fluent)),
            "flagged_share": sum(map(bool, r_fluent)) / len(fluent) if fluent else None,
            "reasons": dict(Counter(x for r in r_fluent for x in r)),
        },
        "degenerate": {
            "n": len(degenerate),
            "flagged_share": sum(flagged) / len(flagged) if flagged else None,
            "by_kind": {
                k: sum(f for (kk, _), f in zip(degenerate, flagged) if kk == k)
                / max(1, sum(kk == k for kk, _ in degenerate))
                for k in kinds
            },
            "reasons": dict(Counter(x for r in r_deg for x in r)),
        },
        "check": check.describe(),
    }
