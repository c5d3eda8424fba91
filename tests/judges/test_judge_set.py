"""The shipped judge set (circuits/data/judge_replies.jsonl): its size, its fixed split, its
independence from the toy model's corpus and from the 186 sentences, and the shipped head's record
of what it was trained on."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.core.resources import data_dir, data_path
from circuits.judges.calibrate import read_labelled, split_of


def _rows():
    return [json.loads(line) for line in data_path("judge_replies").read_text(encoding="utf-8").splitlines()]


def test_size_and_sources():
    rows = _rows()
    written = Counter(r["label"] for r in rows if r["source"] == "written")
    assert all(written[lab] >= 100 for lab in LABELS), written
    smol = [r for r in rows if r["source"] == "smollm2-135m-instruct"]
    assert len(smol) >= 150 and all(r["instruction"] is not None and "prompted" in r for r in smol)
    assert {r["label"] for r in smol} == set(LABELS)  # hand labels: every label occurs
    assert len({r["text"] for r in rows}) == len(rows)
    assert len(read_labelled(data_path("judge_replies"))) == len(rows)  # the calibration reader accepts it


INSTRUCT_REGISTERS = {
    "exclamation",
    "rhetorical",
    "sarcasm",
    "expectation",
    "formatted",
    "mixed",
    "roleplay",
    "assistant",
    "short",
}


def test_the_instruct_set_covers_bigger_models_registers():
    """The replies written in the registers of 1B-70B instruct models: every emotion in most registers
    (calm in the plain ones), surprise and disgust weighted (their borders with happiness / fear and
    anger), every row of the set tagged with its register and one of the eight SEV themes."""
    rows = [r for r in _rows() if r.get("set") == "instruct"]
    assert {r["source"] for r in rows} == {"written"} and {r["register"] for r in rows} <= INSTRUCT_REGISTERS
    per = Counter(r["label"] for r in rows)
    assert all(per[e] >= 90 for e in EMOTIONS) and per[NEUTRAL] >= 120, per
    assert per["surprise"] >= 250 and per["disgust"] >= 180, per
    for e in EMOTIONS:
        assert len({r["register"] for r in rows if r["label"] == e}) == len(INSTRUCT_REGISTERS), e
    assert len({r["theme"] for r in rows}) == 8
    assert {r["set"] for r in _rows()} == {"core", "smollm2", "instruct"}


def test_the_split_is_the_hash_split_and_covers_every_label():
    rows = _rows()
    assert all(r["split"] == split_of(r["text"]) for r in rows)
    per = Counter((r["label"], r["split"]) for r in rows)
    assert all(per[(lab, "final")] >= 40 and per[(lab, "dev")] >= 90 for lab in LABELS), per
    share = sum(r["split"] == "final" for r in rows) / len(rows)
    assert 0.28 < share < 0.42


def _words(text):
    return re.findall(r"[a-z']+", text.lower())


def test_no_text_comes_from_the_toy_corpus_or_the_186_sentences():
    from circuits.toy.templates import EMOTION_TEMPLATES, NEUTRAL_TEMPLATES

    rows = _rows()
    joined = [" ".join(_words(r["text"])) for r in rows]
    fragments = set()
    for templates in [*EMOTION_TEMPLATES.values(), NEUTRAL_TEMPLATES]:
        for t in templates:
            for piece in t.split("{event}"):
                w = _words(piece)
                fragments |= {" ".join(w[i : i + 7]) for i in range(len(w) - 6)}
    hits = [f for f in fragments if any(f in j for j in joined)]
    assert not hits, hits[:5]
    sentences = [json.loads(line)["text"] for line in data_path("va_texts").read_text().splitlines() if line.strip()]
    plain = {" ".join(_words(s)) for s in sentences}
    assert not [j for j in joined if j in plain or any(p in j for p in plain if len(p) > 30)]


@pytest.mark.parametrize("folder, features", [("judge_head", "lm+style"), ("judge_head_minilm", "layers+style")])
def test_the_shipped_heads_record_the_file_and_split_they_were_trained_on(folder, features):
    cfg = json.loads((data_dir(folder) / "cfg.json").read_text())
    digest = hashlib.sha256(data_path("judge_replies").read_bytes()).hexdigest()[:16]
    assert cfg["trained_on"]["sha256"] == digest and cfg["trained_on"]["split"] == "dev"
    dev = Counter(r["label"] for r in _rows() if r["split"] == "dev")
    assert cfg["trained_on"]["per_label"] == {lab: dev[lab] for lab in LABELS}
    assert cfg["features"] == features and 0 < cfg["match_threshold"] < 1
    assert set(EMOTIONS) | {NEUTRAL} == set(cfg["labels"])


@pytest.mark.real_model  # the heads read through SmolLM2 and MiniLM
@pytest.mark.parametrize("spec", ["learned", "learned-minilm"])
def test_the_shipped_judges_meet_the_targets_on_the_final_split(spec):
    """The issue's bar, on the split the heads never saw (measured once, then pinned): >= 0.90 of the
    emotional replies judged as their emotion, every emotion >= 0.80, >= 0.90 of the calm ones judged
    neutral; and the match mode's balanced accuracy >= 0.9 at the dev-chosen threshold."""
    from circuits.judges.base import make_judge
    from circuits.judges.calibrate import judge_outputs, label_metrics, match_metrics, match_pairs

    rows = read_labelled(data_path("judge_replies"), split="final")
    judge = make_judge(spec)
    verdicts, probs = judge_outputs(judge, rows)  # one pass: the verdicts are the probabilities' argmax
    m = label_metrics([r.label for r in rows], verdicts)
    assert m["emotion_accuracy"] >= 0.90 and m["calm_recall"] >= 0.90, m
    assert all(m["recall"][e] >= 0.8 for e in EMOTIONS), m["recall"]
    scores, truth = match_pairs(rows, probs)
    assert match_metrics(scores, truth, judge.match_threshold)["balanced_accuracy"] >= 0.9
