"""A small lexicon-based emotion judge: which of the six emotions does a text express?

The judge reads *words, not meaning*. It lowercases the text, splits it into word
tokens, looks up emotion cue words and phrases, drops cues that follow a negator
in the same clause, sums the cue weights per emotion and returns the argmax (or
``neutral`` when nothing scores). It is fast, deterministic and transparent (every
:class:`Judgement` lists the cues that counted), but it misses sarcasm, irony,
emotion conveyed by events rather than words ("my dog died"), negated emotion
that implies another ("I'm not happy" is not read as sadness), and topical mentions
("anger management classes" counts as anger). Treat it as a cheap proxy.

Lexicon format (JSON object; the shipped one is ``circuits/data/emotion_lexicon.json``)::

    {
      "version": 1,                          # required, must be 1
      "description": "free text",            # optional
      "emotions": {                          # required; keys are names from EMOTIONS
        "anger": {"words": {"furious": 2.0, "fed up": 2.0, "mad": 1.0, ...}},
        ...
      },
      "negators": ["not", "never", "no one", ...],  # optional
      "intensifiers": {"very": 1.5, "a bit": 0.8},  # optional: multiply the next cue
      "clause_breaks": ["but", "although", ...],    # optional: words that end a clause
      "include": "emotion_lexicon.json",     # optional: start from this lexicon (path relative to
                                             # this file; for a dict, to the shipped data folder)
      "remove": {"sadness": ["sorry"]},      # optional: drop inherited cues of an emotion
      "patterns": {"anger": {"\\bare you (serious|kidding)\\b": 1.5}},  # optional: regular
                                             # expressions over the lowercased text
      "match_threshold": 0.5                 # optional: P(target) needed by --judge-mode match
    }

Entries are lowercase words or phrases; hyphens count as spaces and apostrophes
stay inside words (``can't`` is one token). Weights are positive numbers (the
shipped lexicon uses 2 strong, 1.5 clear, 1 normal, 0.5 weak/ambiguous). One
phrase may cue several emotions but may not also be a negator or intensifier.

Matching rules: at each token the longest known phrase (cue, negator or
intensifier) wins and its tokens are consumed, so a word is never counted twice
and cues that contain a negator ("can't believe", "couldn't be happier") match
as phrases. Any other token ending in ``n't`` is a negator too. A cue is cancelled
when a negator ends at most ``negation_window`` tokens before it with no clause
break (``, . ; : ! ?``, dashes, brackets, or a ``clause_breaks`` word) between.
An intensifier multiplies a cue that starts within two tokens after it; a multiplier
of 1 shields phrases that look negative but do not negate ("no doubt", "not only").

Patterns carry style rather than words (a rhetorical attack, a revulsion interjection, a
catastrophising "what if"): each pattern that matches anywhere in the lowercased text (curly
apostrophes made straight) adds its weight once, whatever the negators; ``Judgement.matches`` lists it
as ``/pattern/``. The included lexicon is merged first: its cues, negators, intensifiers, clause
breaks and patterns, then this file's, whose weights win; ``remove`` takes cues out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from circuits.core.artifacts import InputError
from circuits.core.emotions import EMOTIONS, NEUTRAL
from circuits.core.readers import read_json
from circuits.core.resources import data_path

__all__ = ["DEFAULT_LEXICON_PATH", "Judgement", "LexiconJudge", "lexicon_judge", "judge", "load_lexicon", "tokenize"]

DEFAULT_LEXICON_PATH = data_path("emotion_lexicon")
DEFAULT_MIN_SCORE = 0.75
"""Best score needed for an emotion label: a lone weak (0.5) cue is not enough."""

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[.,;:!?…—–()\[\]{}]")
_BREAK_PUNCT = frozenset(".,;:!?…—–()[]{}")
_TOP_KEYS = {
    "version",
    "description",
    "emotions",
    "negators",
    "intensifiers",
    "clause_breaks",
    "include",
    "remove",
    "patterns",
    "match_threshold",
}
DEFAULT_MATCH_THRESHOLD = 0.5
_INTENSIFIER_REACH = 2


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into word tokens and clause-break punctuation."""
    text = _normalise(text)
    text = re.sub(r"\s-+\s|--+", " — ", text)  # a free-standing dash is a clause break
    return _TOKEN_RE.findall(text)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one text: ``label`` in LABELS, non-negative ``scores`` per
    emotion (all of EMOTIONS), and the cue phrases that counted, in text order."""

    label: str
    scores: dict[str, float]
    matches: tuple[str, ...]


def _phrase(entry: Any, where: str) -> tuple[str, ...]:
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"{where}: entries must be non-empty strings, got {entry!r}")
    toks = tuple(tokenize(entry))
    if not toks or any(t in _BREAK_PUNCT for t in toks):
        raise ValueError(f"{where}: {entry!r} must be words only (no clause punctuation)")
    return toks


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: weight must be a positive number, got {value!r}")
    return float(value)


def _normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def _patterns(data: dict) -> list[tuple[re.Pattern, str, dict[str, float]]]:
    """``(compiled, source, {emotion: weight})`` of the lexicon's patterns."""
    spec = data.get("patterns", {})
    if not isinstance(spec, dict):
        raise ValueError("'patterns' must be an object mapping emotion names to {regex: weight}")
    merged: dict[str, dict[str, float]] = {}
    for emotion, table in spec.items():
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r} in 'patterns' (expected one of {', '.join(EMOTIONS)})")
        if not isinstance(table, dict):
            raise ValueError(f"patterns.{emotion} must be an object mapping regular expressions to weights")
        for source, value in table.items():
            merged.setdefault(source, {})[emotion] = _weight(value, f"patterns.{emotion}[{source!r}]")
    out = []
    for source, weights in merged.items():
        try:
            out.append((re.compile(source), source, weights))
        except re.error as err:
            raise ValueError(f"patterns: {source!r} is not a valid regular expression: {err}") from err
    return out


def _merge(base: dict, top: dict) -> dict:
    """``top`` over ``base`` (an included lexicon): union of lists, ``top``'s weights win, then
    ``top["remove"]`` drops cues."""
    out: dict[str, Any] = {"version": top.get("version"), "description": top.get("description", "")}
    if "match_threshold" in top:
        out["match_threshold"] = top["match_threshold"]
    emotions = {e: {"words": dict(v.get("words", {}))} for e, v in base.get("emotions", {}).items()}
    for e, v in (top.get("emotions") or {}).items():
        if not isinstance(v, dict) or not isinstance(v.get("words"), dict):
            raise ValueError(f"emotions.{e} must be an object with exactly one key 'words' mapping cues to weights")
        emotions.setdefault(e, {"words": {}})["words"].update(v["words"])
    remove = top.get("remove", {})
    if not isinstance(remove, dict):
        raise ValueError("'remove' must be an object mapping emotion names to lists of cues")
    for e, cues in remove.items():
        if e not in emotions or not isinstance(cues, list):
            raise ValueError(f"remove.{e}: expected a list of cues of an emotion the lexicon has")
        for cue in cues:
            if emotions[e]["words"].pop(cue, None) is None:
                raise ValueError(f"remove.{e}: {cue!r} is not a cue of {e} in the included lexicon")
    out["emotions"] = emotions
    out["negators"] = list(dict.fromkeys([*base.get("negators", []), *top.get("negators", [])]))
    out["intensifiers"] = {**base.get("intensifiers", {}), **top.get("intensifiers", {})}
    out["clause_breaks"] = list(dict.fromkeys([*base.get("clause_breaks", []), *top.get("clause_breaks", [])]))
    patterns = {e: dict(t) for e, t in base.get("patterns", {}).items()}
    for e, t in (top.get("patterns") or {}).items():
        if not isinstance(t, dict):
            raise ValueError(f"patterns.{e} must be an object mapping regular expressions to weights")
        patterns.setdefault(e, {}).update(t)
    out["patterns"] = patterns
    return out


def resolve_includes(data: Any, folder: Path, _seen: tuple[Path, ...] = ()) -> Any:
    """The lexicon with its ``include`` (a path relative to ``folder``, recursively) merged in."""
    if not isinstance(data, dict) or "include" not in data:
        return data
    name = data["include"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"'include' must be a file name, got {name!r}")
    path = (folder / name).resolve()
    if path in _seen:
        raise ValueError(f"'include' loops back to {path}")
    if not path.is_file():
        raise ValueError(f"'include': cannot read {path}: no such file")
    base = read_json(
        path, what="included lexicon", top=None, object_pairs_hook=_reject_duplicates, error=_included_error
    )
    return _merge(resolve_includes(base, path.parent, (*_seen, path)), data)


def _compile(data: Any) -> tuple[dict[tuple[str, ...], tuple[str, Any]], frozenset[str]]:
    """Validate a lexicon object (includes already resolved); return the phrase table and the
    clause-break words."""
    if not isinstance(data, dict):
        raise ValueError(f"the lexicon must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown} (expected some of {sorted(_TOP_KEYS)})")
    if data.get("version") != 1:
        raise ValueError(f"'version' must be 1, got {data.get('version')!r}")
    if "include" in data or "remove" in data:
        raise ValueError("'include' / 'remove' must be resolved first (resolve_includes)")
    emotions = data.get("emotions")
    if not isinstance(emotions, dict) or not emotions:
        raise ValueError("'emotions' must be a non-empty object mapping emotion names to {'words': {...}}")
    table: dict[tuple[str, ...], tuple[str, Any]] = {}
    for emotion, spec in emotions.items():
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r} in 'emotions' (expected one of {', '.join(EMOTIONS)})")
        where = f"emotions.{emotion}"
        if not isinstance(spec, dict) or set(spec) != {"words"} or not isinstance(spec["words"], dict):
            raise ValueError(f"{where} must be an object with exactly one key 'words' mapping cues to weights")
        for entry, value in spec["words"].items():
            weights = table.setdefault(_phrase(entry, where), ("cue", {}))[1]
            weights[emotion] = _weight(value, f"{where}.words[{entry!r}]")
    extras: list[tuple[str, Any, Any]] = []
    negators = data.get("negators", [])
    if not isinstance(negators, list):
        raise ValueError("'negators' must be a list of strings")
    extras += [("neg", entry, None) for entry in negators]
    intensifiers = data.get("intensifiers", {})
    if not isinstance(intensifiers, dict):
        raise ValueError("'intensifiers' must be an object mapping words to multipliers")
    extras += [("int", entry, value) for entry, value in intensifiers.items()]
    for kind, entry, value in extras:
        where = "negators" if kind == "neg" else "intensifiers"
        key = _phrase(entry, where)
        if key in table and table[key][0] != kind:
            raise ValueError(f"{where}: {entry!r} is already a {table[key][0]} entry (one role per phrase)")
        table[key] = (kind, None if kind == "neg" else _weight(value, f"{where}[{entry!r}]"))
    breaks = data.get("clause_breaks", [])
    if not isinstance(breaks, list) or not all(isinstance(b, str) and len(tokenize(b)) == 1 for b in breaks):
        raise ValueError("'clause_breaks' must be a list of single words")
    return table, frozenset(tokenize(b)[0] for b in breaks)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    dupes = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
    if dupes:
        raise ValueError(f"duplicate key(s) {dupes}")
    return dict(pairs)


def load_lexicon(path: str | Path) -> dict[str, Any]:
    """Read and validate a lexicon JSON file; ValueError names the file and the problem."""
    path = Path(path)
    data = read_json(
        path,
        what="lexicon file",
        top=None,
        object_pairs_hook=_reject_duplicates,
        error=lambda msg: InputError(f"malformed lexicon file {msg}"),
    )
    try:
        data = resolve_includes(data, path.parent)
        _compile(data)
        _patterns(data)
    except ValueError as err:
        raise InputError(f"malformed lexicon file {path}: {err}") from None
    return data


def _included_error(msg: str) -> ValueError:
    """An included lexicon's problem, raised as the ValueError :func:`load_lexicon` reports."""
    return ValueError(f"'include': {msg}")


class LexiconJudge:
    """Label texts with one of LABELS by counting weighted, non-negated emotion cues.

    ``lexicon`` is a lexicon object (see the module docstring) or ``None`` for the
    shipped one. ``negation_window`` is how many tokens back a negator still
    cancels a cue (0 disables negation); ``min_score`` is the best score an
    emotion needs, below it the label is ``neutral``. Ties go to the emotion that
    comes first in EMOTIONS.
    """

    def __init__(
        self, lexicon: dict | None = None, *, negation_window: int = 3, min_score: float = DEFAULT_MIN_SCORE
    ) -> None:
        if isinstance(negation_window, bool) or not isinstance(negation_window, int) or negation_window < 0:
            raise ValueError(f"negation_window must be an int >= 0, got {negation_window!r}")
        self.negation_window = negation_window
        self.min_score = _weight(min_score, "min_score")
        if lexicon is None:
            lexicon = load_lexicon(DEFAULT_LEXICON_PATH)
        try:
            lexicon = resolve_includes(lexicon, DEFAULT_LEXICON_PATH.parent)
            self._table, self._breaks = _compile(lexicon)
            self._patterns = _patterns(lexicon)
            self.match_threshold = _weight(lexicon.get("match_threshold", DEFAULT_MATCH_THRESHOLD), "match_threshold")
        except ValueError as err:
            raise ValueError(f"malformed lexicon: {err}") from err
        self._max_len = max(len(key) for key in self._table)

    @property
    def cues(self) -> dict[str, dict[str, float]]:
        """Emotion -> {cue phrase (space-joined tokens): weight} of every cue that scores for it."""
        out: dict[str, dict[str, float]] = {e: {} for e in EMOTIONS}
        for key, (kind, payload) in self._table.items():
            if kind == "cue":
                for emotion, weight in payload.items():
                    out[emotion][" ".join(key)] = weight
        return out

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        negation_window: int = 3,
        min_score: float = DEFAULT_MIN_SCORE,
        name: str | None = None,
    ) -> "LexiconJudge":
        """Build a judge from a lexicon JSON file (ValueError naming the file if malformed)."""
        out = cls(load_lexicon(path), negation_window=negation_window, min_score=min_score)
        out.name = name or str(path)
        return out

    name = "lexicon"

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """A soft verdict per text over LABELS: softmax of the emotion scores with ``min_score`` as the
        neutral logit (so a text with no cue is mostly neutral, one strong cue mostly its emotion)."""
        out = []
        for j in self(texts):
            logits = {**j.scores, NEUTRAL: self.min_score}
            top = max(logits.values())
            exp = {k: math.exp(v - top) for k, v in logits.items()}
            z = sum(exp.values())
            out.append({k: v / z for k, v in exp.items()})
        return out

    def __call__(self, texts: Sequence[str]) -> list[Judgement]:
        """Judge a batch: one :class:`Judgement` per input text, in order."""
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got a single str: wrap it in a list")
        return [self._judge_one(text) for text in texts]

    def label(self, texts: Sequence[str]) -> list[str]:
        """Just the labels of :meth:`__call__`."""
        return [j.label for j in self(texts)]

    def _judge_one(self, text: str) -> Judgement:
        if not isinstance(text, str):
            raise TypeError(f"texts must be str, got {type(text).__name__}")
        toks = tokenize(text)
        scores = dict.fromkeys(EMOTIONS, 0.0)
        matches: list[str] = []
        last_negator: int | None = None  # index of the last token of the latest negator in this clause
        boost: tuple[int, float] | None = None  # (last token index, multiplier) of the latest intensifier
        i = 0
        while i < len(toks):
            span, kind, payload = 1, None, None
            for n in range(min(self._max_len, len(toks) - i), 0, -1):
                hit = self._table.get(tuple(toks[i : i + n]))
                if hit is not None:
                    span, (kind, payload) = n, hit
                    break
            end = i + span - 1
            if kind is None and (toks[i] in _BREAK_PUNCT or toks[i] in self._breaks):
                last_negator = boost = None
            elif kind == "neg" or (kind is None and toks[i].endswith("n't")):
                last_negator = end
            elif kind == "int":
                boost = (end, payload)
            elif kind == "cue":
                if last_negator is None or i - last_negator > self.negation_window:
                    factor = boost[1] if boost and i - boost[0] <= _INTENSIFIER_REACH else 1.0
                    for emotion, weight in payload.items():
                        scores[emotion] += weight * factor
                    matches.append(" ".join(toks[i : i + span]))
                boost = None
            i += span
        if self._patterns:
            flat = _normalise(text)
            for compiled, source, weights in self._patterns:
                if compiled.search(flat):
                    for emotion, weight in weights.items():
                        scores[emotion] += weight
                    matches.append(f"/{source}/")
        best = max(EMOTIONS, key=lambda e: scores[e])  # first maximum: EMOTIONS order breaks ties
        label = best if scores[best] >= self.min_score else NEUTRAL
        return Judgement(label=label, scores=scores, matches=tuple(matches))


@lru_cache(maxsize=1)
def lexicon_judge() -> LexiconJudge:
    """The shared judge built from the shipped lexicon (built once, then cached)."""
    return LexiconJudge()


def judge(texts: Sequence[str], judge: LexiconJudge | None = None) -> list[Judgement]:
    """Judge a batch of texts with ``judge`` or the cached default :class:`LexiconJudge`."""
    return (judge if judge is not None else lexicon_judge())(texts)
