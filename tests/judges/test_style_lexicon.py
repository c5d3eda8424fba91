"""Style patterns, includes and removals of the lexicon format, and the shipped style lexicon."""

from __future__ import annotations

import json

import pytest

from circuits.core.emotions import LABELS, NEUTRAL
from circuits.core.resources import data_path
from circuits.judges.lexicon import LexiconJudge, load_lexicon


def _tiny(words, **extra):
    return {"version": 1, "emotions": {e: {"words": w} for e, w in words.items()}, **extra}


def test_a_pattern_adds_its_weight_once_and_ignores_negators():
    j = LexiconJudge(_tiny({"anger": {"mad": 1.0}}, negators=["not"], patterns={"anger": {r"\bhow dare\b": 2.0}}))
    one = j(["How dare they."])[0]
    assert one.scores["anger"] == 2.0 and one.matches == ("/\\bhow dare\\b/",)
    twice = j(["How dare they! How dare they!"])[0]
    assert twice.scores["anger"] == 2.0  # once per text, not per occurrence
    # a negator before a pattern does not cancel it, unlike a word cue
    assert j(["not how dare"])[0].scores["anger"] == 2.0
    assert j(["not mad"])[0].scores["anger"] == 0.0
    # curly apostrophes are straightened before matching
    k = LexiconJudge(_tiny({"fear": {"x": 1.0}}, patterns={"fear": {r"i can't breathe": 1.0}}))
    assert k(["I can\u2019t breathe"])[0].scores["fear"] == 1.0


def test_include_merges_and_remove_drops(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(
        json.dumps(
            _tiny(
                {"sadness": {"sorry": 1.0, "alas": 2.0}, "anger": {"mad": 1.0}},
                negators=["not"],
                patterns={"fear": {"oh no": 1.0}},
            )
        )
    )
    top = tmp_path / "top.json"
    top.write_text(
        json.dumps(
            {
                "version": 1,
                "include": "base.json",
                "remove": {"sadness": ["sorry"]},
                "emotions": {"anger": {"words": {"mad": 3.0, "livid": 2.0}}},
                "match_threshold": 0.3,
            }
        )
    )
    j = LexiconJudge.from_file(top)
    assert j.cues["sadness"] == {"alas": 2.0}
    assert j.cues["anger"] == {"mad": 3.0, "livid": 2.0}  # the including file's weight wins
    assert j(["oh no"])[0].label == "fear"  # patterns come along
    assert j(["not mad"])[0].label == NEUTRAL  # and negators
    assert j.match_threshold == 0.3


@pytest.mark.parametrize(
    "top, problem",
    [
        ({"version": 1, "include": "missing.json"}, "cannot read"),
        ({"version": 1, "include": "base.json", "remove": {"sadness": ["nope"]}}, "not a cue of sadness"),
        ({"version": 1, "include": "top.json"}, "loops back"),
        (
            {"version": 1, "include": "base.json", "patterns": {"anger": {"(unclosed": 1}}},
            "not a valid regular expression",
        ),
        ({"version": 1, "include": "base.json", "patterns": {"joy": {"x": 1}}}, "unknown emotion 'joy'"),
        ({"version": 1, "remove": {"sadness": ["alas"]}, "emotions": {"anger": {"words": {"mad": 1}}}}, "resolve"),
    ],
)
def test_bad_includes_and_patterns_name_the_file(tmp_path, top, problem):
    (tmp_path / "base.json").write_text(json.dumps(_tiny({"sadness": {"alas": 2.0}})))
    path = tmp_path / "top.json"
    path.write_text(json.dumps(top))
    with pytest.raises(ValueError) as info:
        load_lexicon(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_probabilities_are_a_softmax_with_min_score_as_neutral():
    j = LexiconJudge(_tiny({"anger": {"mad": 2.0}}), min_score=1.0)
    p = j.probabilities(["mad", "nothing here"])
    assert set(p[0]) == set(LABELS) and abs(sum(p[0].values()) - 1) < 1e-12
    assert p[0]["anger"] > p[0][NEUTRAL] > p[0]["fear"]
    assert p[1][NEUTRAL] > p[1]["anger"]
    # anger's logit 2 vs neutral 1 and five zeros
    import math

    assert p[0]["anger"] == pytest.approx(math.exp(2) / (math.exp(2) + math.e + 5))


STYLE_CASES = [
    ("Ugh, how trite can one presentation be?", "disgust"),
    ("Are you seriously telling me they lost it again?", "anger"),
    ("Oh no, what if the scan shows something? What if it has spread?", "fear"),
    ("Alas, I suppose that's just how it goes.", "sadness"),
    ("Wait, what? They upgraded you to first class?", "surprise"),
    ("Yay! This calls for a celebration!", "happiness"),
    ("I'm sorry to hear that. You can request a refund on the website.", NEUTRAL),
    ("Congratulations on the transfer. The next step is the onboarding form.", NEUTRAL),
]


@pytest.mark.parametrize("text, label", STYLE_CASES)
def test_shipped_style_lexicon_reads_style_the_word_lexicon_misses(text, label):
    style = LexiconJudge.from_file(data_path("style_lexicon"))
    assert style.label([text]) == [label]


def test_the_word_lexicon_misses_most_style_cases():
    words = LexiconJudge()
    hits = sum(words.label([t]) == [lab] for t, lab in STYLE_CASES)
    assert hits < len(STYLE_CASES) - 2  # the reason the style lexicon exists
