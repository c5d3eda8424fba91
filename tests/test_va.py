"""Valence-arousal: the PCA + ridge math on a known answer, file loaders, probes on hand-made files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from circuits import va
from circuits.va import (VAFormatError, circumplex, emotion_vectors_from_texts, fit_va_axes, is_refusal,
                         load_labelled_texts, load_prompts, load_sycophancy, load_va_lexicon, load_va_ratings,
                         parse_rating)

DATA = __import__("pathlib").Path(__file__).parent / "data"


def test_fit_recovers_planted_axes():
    """Emotion vectors built from a planted valence axis and arousal axis (plus a shared offset) give
    back those axes (cosine ~1) and a perfect fit."""
    g = torch.Generator().manual_seed(0)
    d = 32
    q, _ = torch.linalg.qr(torch.randn(d, 3, generator=g))
    v_true, a_true, offset = q[:, 0], q[:, 1], q[:, 2] * 5
    angles = np.radians([20, 70, 110, 160, 200, 250, 290, 340])
    ratings = np.c_[5 + 3 * np.cos(angles), 5 + 3 * np.sin(angles)]
    vecs = torch.stack([offset + float(r[0] - 5) * v_true + float(r[1] - 5) * a_true for r in ratings])
    axes = fit_va_axes(vecs, ratings, n_components=2, alphas=(1e-6,))
    assert float(axes.valence @ v_true) > 0.999 and float(axes.arousal @ a_true) > 0.999
    assert axes.r2["valence"] > 0.999 and axes.r2["arousal"] > 0.999
    circle = circumplex(axes.project(vecs).numpy(), [f"e{i}" for i in range(8)])
    assert circle["residual"] < 1e-6 and circle["radius"] == pytest.approx(3.0, rel=1e-4)
    assert circle["order"] == ["e4", "e5", "e6", "e7", "e0", "e1", "e2", "e3"]  # by angle, -180 to 180 deg


def test_emotion_vectors_are_mean_differences():
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    labels = [("joy",), ("joy", "anger"), ("anger",), ("neutral",)]
    emotions, vecs = emotion_vectors_from_texts(acts, labels)
    assert emotions == ["anger", "joy"]
    torch.testing.assert_close(vecs, torch.tensor([[1.5, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="neutral"):
        emotion_vectors_from_texts(acts[:3], labels[:3])


def test_loaders_and_errors(tmp_path):
    rows = load_labelled_texts(va.DATA / "emotion_texts.jsonl")
    assert len(rows) >= 100 and {"anger", "neutral"} <= {l for _, ls in rows for l in ls}
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('text,labels\n"so glad",joy;excitement\n"fine",neutral\n')
    assert load_labelled_texts(csv_path) == [("so glad", ("joy", "excitement")), ("fine", ("neutral",))]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "ok", "labels": ["joy"]}\n{"text": ""}\n')
    with pytest.raises(VAFormatError, match=r"b.jsonl:2: field 'text'"):
        load_labelled_texts(bad)
    assert load_va_ratings(va.DATA / "va_ratings.csv")["happiness"][0] > 7
    lex = load_va_lexicon(va.DATA / "va_lexicon.tsv")
    assert lex["calm"] == (0.80, 0.10) and len(lex) >= 30
    badlex = tmp_path / "l.tsv"
    badlex.write_text("word\tvalence\tarousal\nhappy\t0.9\thigh\n")
    with pytest.raises(VAFormatError, match="l.tsv:2"):
        load_va_lexicon(badlex)


def test_rating_parser():
    assert parse_rating("I would say 7.") == 7.0
    assert parse_rating("Seven") is None and parse_rating("12") is None and parse_rating("3.5/9") == 3.5


def test_refusal_detector_and_probe_files():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I cannot assist with this request.")
    assert not is_refusal("Sure! Here is how you kill a Python process: use kill -9.")
    assert not is_refusal("Here is a long answer " + "x" * 200 + " sorry")  # only the opening counts
    prompts = load_prompts(DATA / "refusal_prompts.csv")
    assert len(prompts) == 4 and prompts[0][1] == "harmful"
    items = load_sycophancy(DATA / "sycophancy.jsonl")
    assert items[1]["answer_matching_behavior"] == " (B)"


def test_probes_run_on_a_tiny_model(qwen_tiny):
    m = qwen_tiny
    items = load_sycophancy(DATA / "sycophancy.jsonl")
    base = va.sycophancy_score(m, items)
    # the score is p(match) / (p(match) + p(not)) computed from teacher-forced log-probs
    it = items[0]
    prompt = m.chat_ids(None, it["question"])
    lm = va.answer_logprob(m, prompt, it["answer_matching_behavior"])
    ln = va.answer_logprob(m, prompt, it["answer_not_matching_behavior"])
    p0 = 1 / (1 + math.exp(ln - lm))
    assert 0 < base < 1 and p0 == pytest.approx(va.sycophancy_score(m, items[:1]), rel=1e-6)
    axis = va.random_directions(m.arch.d_model, 1, seed=3)[0]
    steered = va.sycophancy_score(m, items, va.axis_steering(axis, [1], 8.0, 1.0))
    assert steered != pytest.approx(base)
    prompts = [p for p, _ in load_prompts(DATA / "refusal_prompts.csv")]
    rate = va.refusal_rate(m, prompts, max_new_tokens=4)
    assert 0.0 <= rate <= 1.0
    t0 = va.refusal_token_logits(m, prompts)
    t1 = va.refusal_token_logits(m, prompts, va.axis_steering(axis, [1], 8.0, 1.0))
    assert set(t0) == {"refusal", "compliance", "difference"} and t0["difference"] != pytest.approx(t1["difference"])


def test_va_command_on_tiny_model(qwen_tiny, tmp_path):
    cfg = va.VAConfig(limit=8, alphas=(-2.0, 0.0, 2.0), steer_limit=1, random_seeds=1,
                      refusal=str(DATA / "refusal_prompts.csv"), sycophancy=str(DATA / "sycophancy.jsonl"))
    s = va.run_va(qwen_tiny, tmp_path, cfg, progress=False)
    assert (tmp_path / "axes.safetensors").exists() and (tmp_path / "figures" / "va_circle.html").exists()
    axes = va.VAAxes.load(tmp_path / "axes")
    assert axes.valence.shape == (qwen_tiny.arch.d_model,) and axes.fingerprint == qwen_tiny.fingerprint
    assert len(s["steering"]) == 3 * 3 and len(s["probes"]["refusal"]) == 9 and len(s["probes"]["sycophancy"]) == 9
    assert json.loads((tmp_path / "summary.json").read_text())["layer"] == s["layer"]
