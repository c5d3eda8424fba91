"""The elicitation sets that never name the emotion: the word-family check finds planted words (known
answers), every shipped text passes it, each set covers every emotion on both sides of its hash split,
and a bad row is refused naming its file and line."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from circuits.core.artifacts import InputError
from circuits.core.elicitation import (
    FEELING_WORDS,
    IMPLICIT_SETS,
    hash_split,
    load_implicit,
    named_words,
    word_families,
)
from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.core.resources import data_path


def test_named_words_finds_every_family_word_and_only_whole_words():
    fam = word_families()
    assert set(fam) == set(EMOTIONS) and all(e in fam[e] for e in EMOTIONS)  # each family holds its name
    for emotion, words in fam.items():
        for w in words:
            assert named_words(f"Then, {w.upper()}!") == [(emotion, w)]
    assert named_words("I feel it.") == [("feeling", "feel")]
    # whole words only: "madrid", "shocks" and "grossly" hold family words but are other words
    assert named_words("They flew to Madrid and the scar healed; shockabsorbers rattled.") == []
    assert named_words("He was sad, then furious.") == [("sadness", "sad"), ("anger", "furious")]


def test_every_implicit_text_is_free_of_emotion_and_feeling_words():
    """The shipped texts, read raw (not through the loader's own check): no word of any emotion's
    family and none of the general feeling words, in any row of any set."""
    banned = {w for words in word_families().values() for w in words} | set(FEELING_WORDS)
    for elicitation, name in IMPLICIT_SETS.items():
        field = "instruction" if elicitation == "stance" else "text"
        for line in data_path(name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert not named_words(row[field]), (elicitation, row[field])
            assert not {w for w in row[field].lower().replace("'", " ").split() if w.strip('.,!?;:"') in banned}


@pytest.mark.parametrize(
    "elicitation, labels, per_label", [("stance", EMOTIONS, 12), ("event", LABELS, 24), ("story", LABELS, 24)]
)
def test_each_set_covers_its_labels_on_both_sides_of_the_split(elicitation, labels, per_label):
    rows = load_implicit(elicitation)
    per = Counter(r.emotion for r in rows)
    assert set(per) == set(labels) and min(per.values()) >= per_label, per
    sides = Counter((r.emotion, r.split) for r in rows)
    assert all(sides[(e, "dev")] >= 1 and sides[(e, "final")] >= 1 for e in labels), sides
    assert all(r.split == hash_split(r.text) for r in rows)
    assert len({r.text for r in rows}) == len(rows)
    dev, final = load_implicit(elicitation, "dev"), load_implicit(elicitation, "final")
    assert len(dev) + len(final) == len(rows) and {r.split for r in final} == {"final"}
    if elicitation != "stance":
        assert len({r.theme for r in rows}) == 8
        assert NEUTRAL in per


def test_a_row_that_names_an_emotion_is_refused_with_file_and_line(tmp_path, monkeypatch):
    import circuits.core.elicitation as elicitation_module

    bad = tmp_path / "stories.jsonl"
    good = {"emotion": "fear", "theme": "work/job", "text": "The lift stopped between floors and went dark."}
    named = {"emotion": "fear", "theme": "work/job", "text": "She was terrified of the lift."}
    bad.write_text(json.dumps(good) + "\n" + json.dumps(named) + "\n", encoding="utf-8")
    monkeypatch.setattr(
        "circuits.core.resources.data_path", lambda name: bad if name == "implicit_stories" else data_path(name)
    )
    with pytest.raises(InputError, match=r"stories.jsonl, line 2: names an emotion \('terrified' \(fear\)\)"):
        elicitation_module.load_implicit("story")
    bad.write_text(json.dumps({**good, "emotion": "joy"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 1: emotion 'joy'"):
        elicitation_module.load_implicit("story")
    with pytest.raises(InputError, match="expected one of stance, event, story"):
        load_implicit("explicit")
