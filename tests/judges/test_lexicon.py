"""Tests for the lexicon-based emotion judge (circuits.judges.lexicon)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.judges.lexicon import DEFAULT_LEXICON_PATH, Judgement, LexiconJudge, judge, load_lexicon

SENTENCES = Path(__file__).parents[1] / "data" / "judge_sentences.jsonl"


@pytest.fixture(scope="module")
def lj() -> LexiconJudge:
    return LexiconJudge()


def _rows() -> list[dict]:
    return [json.loads(line) for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tiny(words: dict[str, dict[str, float]], **extra) -> dict:
    return {"version": 1, "emotions": {e: {"words": w} for e, w in words.items()}, **extra}


# --- accuracy on the hand-labelled sentences ---------------------------------------------------


def test_sentence_file_is_balanced():
    counts = Counter(row["label"] for row in _rows())
    assert set(counts) == set(LABELS)
    assert all(counts[label] >= 12 for label in LABELS), counts


def test_accuracy_and_recall(lj):
    rows = _rows()
    predicted = lj.label([row["text"] for row in rows])
    total, correct = Counter(), Counter()
    for row, label in zip(rows, predicted):
        total[row["label"]] += 1
        correct[row["label"]] += label == row["label"]
    accuracy = sum(correct.values()) / len(rows)
    recall = {label: correct[label] / total[label] for label in LABELS}
    assert accuracy >= 0.85, (accuracy, recall)
    assert min(recall.values()) >= 0.7, recall


# --- matching rules ---------------------------------------------------------------------------


def test_negation_cancels_cue(lj):
    plain, negated = lj(["happy", "not happy"])
    assert plain.label == "happiness" and plain.scores["happiness"] > 0
    assert negated.scores["happiness"] == 0 and negated.label != "happiness"
    assert lj.label(["I am not happy"]) != ["happiness"]
    assert lj.label(["This isn't scary.", "I don\u2019t feel sad", "Not at all angry."]) == [NEUTRAL] * 3


def test_negation_window_and_clause_boundaries(lj):
    assert lj.label(["I'm not really that angry"]) == [NEUTRAL]  # negator 3 tokens back
    assert lj.label(["I'm not sad, but I'm angry", "I'm not sad but angry"]) == ["anger", "anger"]
    assert lj.label(["No. I am happy!"]) == ["happiness"]
    assert LexiconJudge(negation_window=0).label(["not happy"]) == ["happiness"]
    assert LexiconJudge(negation_window=1).label(["not really happy"]) == ["happiness"]


def test_whole_words_only(lj):
    made = lj(["I made dinner and read a madeleine recipe."])[0]
    assert made.label == NEUTRAL and made.matches == ()
    assert lj(["I'm so mad!"])[0].matches == ("mad",)


def test_phrases_and_cues_containing_negators(lj):
    result = lj(["I can't believe it"])[0]
    assert result.label == "surprise" and "can't believe" in result.matches
    both = lj(["I can't believe how happy I am"])[0]  # the phrase's n't must not negate "happy"
    assert both.scores["happiness"] > 0 and both.scores["surprise"] > 0
    assert lj.label(["I couldn't be happier.", "That came out of nowhere"]) == ["happiness", "surprise"]


def test_longest_match_and_no_double_count(lj):
    fed_up = lj(["I am fed up."])[0]
    assert fed_up.matches == ("fed up",)
    assert lj(["sick to my stomach"])[0].matches == ("sick to my stomach",)
    assert lj(["bad-tempered"])[0].matches == lj(["bad tempered"])[0].matches == ("bad tempered",)


def test_intensifiers_scale_scores(lj):
    plain, strong = lj(["I am happy", "I am very happy"])
    assert strong.scores["happiness"] > plain.scores["happiness"]


# --- batching and the Judgement record ----------------------------------------------------------


def test_batching_order_and_empty(lj):
    texts = ["I'm furious!", "", "What a lovely day, I'm so glad.", "The bus leaves at noon."]
    results = lj(texts)
    assert [r.label for r in results] == ["anger", NEUTRAL, "happiness", NEUTRAL]
    assert all(isinstance(r, Judgement) for r in results)
    assert results[1].matches == () and all(v == 0 for v in results[1].scores.values())
    assert lj([]) == []
    assert judge(texts) == results and judge(texts, judge=lj) == results
    with pytest.raises(TypeError):
        lj("a single string")


def test_judgement_fields(lj):
    result = lj(["I'm scared and a bit disgusted"])[0]
    assert result.label in LABELS
    assert tuple(result.scores) == EMOTIONS and all(v >= 0 for v in result.scores.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "anger"  # type: ignore[misc]


def test_tie_break_and_min_score():
    tie = LexiconJudge(_tiny({"fear": {"boo": 1.0}, "anger": {"boo": 1.0}, "sadness": {"meh": 0.5}}))
    assert tie.label(["boo"]) == ["anger"]  # EMOTIONS order: anger before fear
    assert tie.label(["meh"]) == [NEUTRAL]  # below the default min_score
    weak = LexiconJudge(_tiny({"sadness": {"meh": 0.5}}), min_score=0.5)
    assert weak.label(["meh"]) == ["sadness"]


# --- lexicon loading and validation -------------------------------------------------------------


def test_shipped_lexicon_sizes():
    data = load_lexicon(DEFAULT_LEXICON_PATH)
    assert set(data["emotions"]) == set(EMOTIONS)
    for emotion in EMOTIONS:
        assert len(data["emotions"][emotion]["words"]) >= 40, emotion
    assert LexiconJudge.from_file(DEFAULT_LEXICON_PATH).label(["I'm thrilled"]) == ["happiness"]


@pytest.mark.parametrize(
    "content, problem",
    [
        (json.dumps(_tiny({"joy": {"yay": 1}})), "unknown emotion 'joy'"),
        (json.dumps(_tiny({"anger": {"mad": -1}})), "positive number"),
        (json.dumps({"emotions": {"anger": {"words": {"mad": 1}}}}), "version"),
        (json.dumps(_tiny({"anger": {"mad": 1}}, negators="not")), "negators"),
        ('{"version": 1, "emotions": {"anger": {"words": {"mad": 1, "mad": 2}}}}', "duplicate"),
        ("{not json", "malformed"),
    ],
)
def test_malformed_lexicon_file(tmp_path, content, problem):
    path = tmp_path / "bad_lexicon.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        LexiconJudge.from_file(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_malformed_lexicon_dict():
    with pytest.raises(ValueError, match="unknown emotion"):
        LexiconJudge(_tiny({"joy": {"yay": 1}}))
    with pytest.raises(ValueError, match="one role"):
        LexiconJudge(_tiny({"anger": {"not": 1}}, negators=["not"]))
