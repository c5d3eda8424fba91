"""Judge calibration: labelled files, confusion, kappa, thresholds (hand-computed answers)."""

from __future__ import annotations

import json
import random

import pytest

from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.judges.calibrate import (
    LabelledFileError,
    LabelledReply,
    choose_threshold,
    cohen_kappa,
    confusion,
    judge_labels,
    label_metrics,
    match_metrics,
    match_pairs,
    read_labelled,
    reliability,
)


def test_confusion_and_metrics_by_hand():
    truth = ["anger", "anger", "fear", NEUTRAL, NEUTRAL]
    pred = ["anger", NEUTRAL, "fear", NEUTRAL, "fear"]
    m = confusion(truth, pred)
    a, f, n = LABELS.index("anger"), LABELS.index("fear"), LABELS.index(NEUTRAL)
    assert m[a][a] == 1 and m[a][n] == 1 and m[f][f] == 1 and m[n][n] == 1 and m[n][f] == 1
    assert sum(map(sum, m)) == 5
    r = label_metrics(truth, pred)
    assert r["accuracy"] == 3 / 5
    assert r["emotion_accuracy"] == 2 / 3  # a neutral verdict on an emotional row is a miss
    assert r["calm_recall"] == 1 / 2
    assert r["recall"]["anger"] == 1 / 2 and r["precision"]["fear"] == 1 / 2 and r["precision"]["anger"] == 1.0
    assert r["recall"]["sadness"] is None


def test_kappa_by_hand_and_its_bounds():
    # po = 3/4; pe = 1/2 * 1/4 + 1/2 * 3/4 = 1/2 -> kappa = (3/4 - 1/2) / (1/2) = 1/2
    assert cohen_kappa(["x", "x", "y", "y"], ["x", "y", "y", "y"]) == pytest.approx(0.5)
    assert cohen_kappa(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_kappa_matches_a_slow_reference():
    rng = random.Random(3)
    a = [rng.choice("abc") for _ in range(200)]
    b = [x if rng.random() < 0.6 else rng.choice("abc") for x in a]
    n = len(a)
    agree = sum(x == y for x, y in zip(a, b)) / n
    chance = 0.0
    for k in "abc":
        chance += (sum(x == k for x in a) / n) * (sum(y == k for y in b) / n)
    assert cohen_kappa(a, b) == pytest.approx((agree - chance) / (1 - chance))


def test_threshold_is_the_best_balanced_accuracy():
    scores = [0.9, 0.8, 0.7, 0.4, 0.3, 0.1]
    truth = [True, True, False, True, False, False]
    t = choose_threshold(scores, truth)
    best = match_metrics(scores, truth, t)["balanced_accuracy"]
    for cand in [0.0, 0.2, 0.35, 0.5, 0.75, 0.85, 1.0]:
        assert match_metrics(scores, truth, cand)["balanced_accuracy"] <= best + 1e-12
    sep = choose_threshold([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert 0.2 < sep < 0.8 and match_metrics([0.9, 0.8, 0.2, 0.1], [True, True, False, False], sep)["tpr"] == 1.0


def test_match_pairs_cover_every_emotion():
    rows = [LabelledReply("a", "fear"), LabelledReply("b", NEUTRAL)]
    probs = [{lab: (0.5 if lab == "fear" else 0.1) for lab in LABELS}, {lab: 0.1 for lab in LABELS}]
    scores, truth = match_pairs(rows, probs)
    assert len(scores) == 2 * len(EMOTIONS) and sum(truth) == 1
    assert scores[EMOTIONS.index("fear")] == 0.5 and truth[EMOTIONS.index("fear")]


def test_read_labelled_and_its_errors(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": "Ugh.", "label": "disgust", "split": "dev"},
                {"text": "Fine.", "label": "calm", "split": "final", "instruction": "Reply with disgust."},
            ]
        )
        + "\n\n"
    )
    rows = read_labelled(good)
    assert [r.label for r in rows] == ["disgust", NEUTRAL] and rows[1].instructions == ("Reply with disgust.",)
    assert [r.text for r in read_labelled(good, split="final")] == ["Fine."]
    cases = {
        '{"text": "x", "label": "joy"}': "line 1: field 'label' must be one of",
        '{"label": "fear"}': "line 1: expected an object with a string field 'text'",
        '{"text": "x", "label": "fear"}\n{oops': "line 2: not JSON",
        '{"text": "x", "label": "fear", "instruction": 3}': "field 'instruction'",
    }
    for i, (content, problem) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.jsonl"
        bad.write_text(content + "\n")
        with pytest.raises(LabelledFileError) as info:
            read_labelled(bad)
        assert str(bad) in str(info.value) and problem in str(info.value)
    with pytest.raises(LabelledFileError, match="no such file"):
        read_labelled(tmp_path / "missing.jsonl")
    with pytest.raises(LabelledFileError, match="no rows with split 'test'"):
        read_labelled(good, split="test")


def test_judging_discounts_an_echo_of_the_instruction():
    from circuits.judges.lexicon import LexiconJudge

    ins = ("Answer in a way that clearly shows disgust.",)
    rows = [LabelledReply("Clearly shows disgust.", NEUTRAL, ins), LabelledReply("Clearly shows disgust.", NEUTRAL)]
    assert judge_labels(LexiconJudge(), rows) == [NEUTRAL, "disgust"]  # fooled only without the instruction


def test_reliability_by_hand():
    # bin [0.9, 1]: 0.9, 0.95, 1.0 with 2 of 3 right -> gap |2/3 - 0.95|; bin [0.5, 0.6): 0.5, 0.5 with 1 of 2
    # right -> gap 0; bin [0.2, 0.3): 0.25 wrong -> gap 0.25
    r = reliability([0.9, 0.95, 1.0, 0.5, 0.5, 0.25], [True, True, False, True, False, False])
    assert r["n"] == 6 and [b["n"] for b in r["bins"]] == [0, 0, 1, 0, 0, 2, 0, 0, 0, 3]
    assert r["ece"] == pytest.approx(3 / 6 * abs(2 / 3 - 0.95) + 1 / 6 * 0.25)
    assert r["mce"] == pytest.approx(abs(2 / 3 - 0.95))
    assert r["bins"][0]["accuracy"] is None and r["bins"][9]["confidence"] == pytest.approx(0.95)
    # a calibrated judge: in each bin, as many hits as the confidence promises
    calibrated = reliability([0.75] * 4 + [0.25] * 4, [True, True, True, False, True, False, False, False])
    assert calibrated["ece"] == 0 and calibrated["mce"] == 0
    # overconfident: always 1.0, right half the time
    assert reliability([1.0] * 4, [True, False] * 2)["ece"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="as many"):
        reliability([0.5], [True, False])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability([1.5], [True])
