"""The fluency check: known answers for its signals, the broken verdict in judging, and the targets on
the final split (generated degenerate text, seed 2; the judge set's final split), which nothing was
tuned on (thresholds and floor were chosen on seed 1 and the dev split)."""

from __future__ import annotations

import pytest

from circuits.judges.base import judge_replies, judged_labels, make_judge
from circuits.judges.degenerate import KINDS, degenerate_texts
from circuits.judges.fluency import BROKEN, FluencyCheck, FluencyRule, text_signals


def test_degenerate_texts_are_seeded_and_cover_every_kind():
    a, b = degenerate_texts(70, seed=3), degenerate_texts(70, seed=3)
    assert a == b and a != degenerate_texts(70, seed=4)
    assert {k for k, _ in a} == set(KINDS) and all(t.strip() for _, t in a)
    with pytest.raises(ValueError, match="unknown|expected some of"):
        degenerate_texts(3, kinds=("poetry",))


def test_text_signals_known_answers():
    s = text_signals("sad sad sad sad sad sad")
    assert s["n_words"] == 6 and s["distinct_1"] == pytest.approx(1 / 6) and s["loop_cover"] == 1.0
    assert s["longest_repeat"] == 3  # "sad sad sad" occurs twice without overlapping
    assert text_signals("aaaaaaaaaaaa")["char_run"] == 12
    assert text_signals("ha ha ha ha")["char_run"] == 8  # one two-character unit, spaces ignored
    assert text_signals("WHAT? WHAT? WHAT?")["upper_share"] == 1.0
    s = text_signals("I am so sad. I am so sad. I am so sad.")
    assert s["loop_cover"] == 1.0 and s["distinct_1"] == pytest.approx(4 / 12)
    s = text_signals("The train was late again, and I missed the start of my sister's wedding.")
    assert s["loop_cover"] == 0.0 and s["char_run"] == 2 and s["distinct_1"] == pytest.approx(13 / 14)
    assert s["chunk_cover"] == 0.0
    assert text_signals("abcdabcdabcdxy")["chunk_cover"] == pytest.approx(12 / 14)
    assert s["function_share"] == pytest.approx(8 / 14)  # the, was, again, and, i, the, of, my
    assert text_signals("")["n_words"] == 0


def test_rule_reasons():
    rule, check = FluencyRule(), FluencyCheck()
    assert check.reasons(["sad sad sad sad sad sad sad"]) == [["loop", "repeated words", "word salad"]]
    assert check.reasons(["!!!!!!!!!!!!!!!!"]) == [["character run", "no words"]]
    assert check.reasons(["WHY?! WHY?! WHY?! WHY?! WHY?!"])[0][0] == "shouted loop"
    assert check.reasons(["I AM SO ANGRY WITH YOU RIGHT NOW!"]) == [[]]  # capitals alone are not broken
    assert check.reasons(["worn G K g I g I G others loved inter et"]) == [["letter salad"]]
    assert check.reasons(["window copper basket forest ladder engine pencil river"]) == [["word salad"]]
    assert check.reasons([""]) == [["empty"]]
    glued = "extendextendextendongextendextend extensionextendextend manyextendextend Manyextendextend"
    assert text_signals(glued)["loop_cover"] == 0.0 and "glued loop" in check.reasons([glued])[0]
    fluent = "I'm so sorry to hear that. Losing a pet after fourteen years is a real grief."
    assert check.reasons([fluent]) == [[]]
    assert check.reasons(["Ugh. Gross."]) == [[]]  # too short for the ratios: fluent
    # the reference model's signal: below the floor by more than the allowed drop, from min_words words
    s = text_signals(fluent) | {"logprob_drop": rule.max_logprob_drop + 0.1}
    assert rule.reasons(s) == ["improbable text"]
    assert rule.reasons(text_signals("Ugh. Gross.") | {"logprob_drop": 9.0}) == []


def test_the_toy_models_replies_are_read_with_the_text_signals_only():
    from circuits.judges.fluency import default_fluency_check, resolve_fluency
    from circuits.toy import TOY_MODEL_DIR

    for name in ("toy", str(TOY_MODEL_DIR)):
        assert default_fluency_check(name).reference is None
    assert resolve_fluency(None, "toy") is None
    mine = FluencyCheck()
    assert resolve_fluency(mine, "smollm2-135m") is mine


def test_broken_replies_are_misses_in_fluent_accuracy():
    lex = make_judge("lexicon")
    texts = ["sad sad sad sad sad sad sad sad", "I feel so sad and lonely since she left.", "The bus came."]
    targets = ["sadness", "sadness", "sadness"]
    j = judge_replies(lex, texts, targets, fluency=FluencyCheck())
    assert j.raw_hits == [True, True, False] and j.hits == [False, True, False]
    assert j.broken == [True, False, False] and j.verdicts[0] == BROKEN and j.raw_verdicts[0] == "sadness"
    assert j.reasons[0] and not j.reasons[1]
    none = judge_replies(lex, texts, targets, fluency=None)
    assert none.hits == none.raw_hits and not any(none.broken)
    assert judged_labels(lex, texts, fluency=FluencyCheck()) == [BROKEN, "sadness", "neutral"]


@pytest.fixture(scope="module")
def shipped_check():
    from circuits.judges.fluency import default_fluency_check, read_calibration

    check = default_fluency_check()
    cal = read_calibration()
    assert check.describe()["reference"] == cal["reference"] == "smollm2-135m"
    return check


def test_final_split_targets(shipped_check):
    """At least 95% of generated degenerate text (the final seed) is flagged broken, every kind at
    least 80%, and at most 1% of the judge set's final split (fluent replies of 1B-70B registers and
    of SmolLM2) is: every second row here, to keep the suite's time (`emocircuits judge fluency --split
    final --seed 2` reads all of them)."""
    from circuits.core.resources import data_path
    from circuits.judges.calibrate import read_labelled
    from circuits.judges.fluency import flag_rates

    final = [r.text for r in read_labelled(data_path("judge_replies"), split="final")][::2]
    res = flag_rates(shipped_check, final, degenerate_texts(300, seed=2))
    assert res["degenerate"]["flagged_share"] >= 0.95, res["degenerate"]
    assert min(res["degenerate"]["by_kind"].values()) >= 0.8, res["degenerate"]["by_kind"]
    assert res["fluent"]["flagged_share"] <= 0.01, res["fluent"]


def test_the_shipped_floor_is_the_dev_splits_quantile(shipped_check):
    """The calibration file's floor is what `emocircuits judge fluency --calibrate` computes on the dev
    split (recomputed here on a spread sample of it, which must bracket the shipped value)."""
    from circuits.core.resources import data_path
    from circuits.judges.calibrate import read_labelled
    from circuits.judges.fluency import read_calibration

    dev = [r.text for r in read_labelled(data_path("judge_replies"), split="dev")]
    cal = read_calibration()
    assert cal["source"] == {"file": "judge_replies.jsonl", "split": "dev", "n_texts": len(dev)}
    scores = sorted(shipped_check.reference(dev[::12]))
    assert scores[0] <= cal["floor"] <= scores[len(scores) // 10]


def test_real_steered_replies(shipped_check):
    """SmolLM2's own steered replies from the project's runs (``replies.jsonl`` of the demo and of the
    bfloat16 agreement runs), read and marked broken or fluent by hand (tests/data/steered_replies.jsonl):
    word loops, subword loops glued into one word, letter salad and list debris are broken; odd or
    off-topic but readable replies are fluent. A development set: the first check missed its letter
    salad, which the ``letter_share`` signal was added for; one known miss remains (list debris in
    capitals, "1. Slander: I will deny you 2) CUP(CUSP)...", whose words are probable enough)."""
    import json
    from pathlib import Path

    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "data" / "steered_replies.jsonl").open()]
    flags = shipped_check.broken([r["text"] for r in rows])
    missed = [r["text"][:60] for r, f in zip(rows, flags) if r["broken"] and not f]
    wrong = [r["text"][:60] for r, f in zip(rows, flags) if not r["broken"] and f]
    assert sum(r["broken"] for r in rows) >= 15 and sum(not r["broken"] for r in rows) >= 20
    assert len(missed) <= 1 and not wrong, (missed, wrong)
