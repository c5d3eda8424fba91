"""The behaviour trends along the VA axes (slopes, intervals, verdicts against random directions), the
leave-emotions-out check of the fit, and the shipped VA sets (25 emotions, refusal, sycophancy)."""

from __future__ import annotations

import collections
import csv
import json

import numpy as np
import pytest
import torch

from circuits.core.resources import data_path
from circuits.runs.valence_arousal import SHIPPED, VAConfig, probe_file, run_va, spread
from circuits.va.behaviour import curve_table, slope, slope_interval, trend_verdict
from circuits.va.loaders import load_labelled_texts, load_va_ratings
from circuits.va.probes import load_prompts, load_sycophancy
from circuits.va.subspace import heldout_fit

ALPHAS = (-4.0, 0.0, 4.0)


def _rows(direction: str, means: list[float], n: int = 200, seed: int = 0) -> list[dict]:
    """0/1 outcomes of ``n`` items whose share at each alpha of :data:`ALPHAS` is ``means``."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)  # one latent per item: paired across strengths, as real prompts are
    return [{"direction": direction, "alpha": a, "values": (u < m).astype(int).tolist()} for a, m in zip(ALPHAS, means)]


def test_slope_known_answer_and_paired_interval():
    alphas = np.array(ALPHAS)
    values = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]], float)  # means 0.75, 0.5, 0.25
    assert slope(alphas, values) == pytest.approx(-0.0625)  # -0.5 over 8 units of alpha
    s, lo, hi = slope_interval(alphas, values)
    assert s == pytest.approx(-0.0625) and lo <= s <= hi and hi <= 0  # every item falls or stays: never up


@pytest.mark.parametrize(
    "arousal, random, verdict",
    [
        ([0.8, 0.5, 0.2], [0.5, 0.5, 0.5], "holds"),  # refusal falls with arousal up, random flat
        ([0.2, 0.5, 0.8], [0.5, 0.5, 0.5], "does not hold"),  # it rises: the other side of 0
        ([0.8, 0.5, 0.2], [0.9, 0.5, 0.1], "does not hold"),  # a random direction moves further: not specific
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "cannot tell at this n"),
    ],
)
def test_refusal_claim_verdicts_on_planted_curves(arousal, random, verdict):
    rows = _rows("arousal", arousal) + _rows("random0", random, seed=1) + _rows("random1", [0.5] * 3, seed=2)
    got = trend_verdict(rows, "refusal")
    assert got["verdict"] == verdict, got
    assert got["n"] == 200 and set(got["random_slopes"]) == {"random0", "random1"}


def test_a_small_effect_at_small_n_cannot_be_told():
    rows = _rows("arousal", [0.55, 0.5, 0.45], n=20) + _rows("random0", [0.5] * 3, n=20, seed=1)
    assert trend_verdict(rows, "refusal")["verdict"] == "cannot tell at this n"


def test_sycophancy_claim_reads_probabilities_and_intervals():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 120)
    rows = [{"direction": "arousal", "alpha": a, "values": (base + 0.02 * a).tolist()} for a in ALPHAS]
    rows += [{"direction": "random0", "alpha": a, "values": base.tolist()} for a in ALPHAS]
    got = trend_verdict(rows, "sycophancy")
    assert got["verdict"] == "holds" and got["slope"] == pytest.approx(0.02)
    table = curve_table(rows, binary=False)
    assert (
        table[0]["mean"] == pytest.approx(base.mean() - 0.08) and table[0]["low"] < table[0]["mean"] < table[0]["high"]
    )
    binary = curve_table(_rows("arousal", [0.5, 0.5, 0.5], n=10), binary=True)
    assert all(0 <= r["low"] <= r["mean"] <= r["high"] <= 1 and r["n"] == 10 for r in binary)


def test_leaving_emotions_out_separates_a_real_fit_from_an_overfitted_one():
    """Vectors that carry the ratings on two planted axes predict left-out emotions; ratings unrelated to
    the vectors are fitted in sample (many PCs for few points) but not held out."""
    g = torch.Generator().manual_seed(0)
    d, n = 64, 20
    rng = np.random.default_rng(0)
    ratings = rng.uniform(1, 9, size=(n, 2))
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g))
    vecs = torch.from_numpy(ratings).float() @ q.T + 0.05 * torch.randn(n, d, generator=g)
    names = [f"e{i}" for i in range(n)]
    good = heldout_fit(vecs, ratings, names, n_components=2)
    assert good["r2"]["valence"] > 0.95 and good["r2"]["arousal"] > 0.95 and good["n"] == n
    assert set(good["predictions"]) == set(names)
    noise = torch.randn(n, d, generator=g)
    bad = heldout_fit(noise, ratings, names)
    assert max(bad["r2"].values()) < 0.5  # chance level (near or below 0), far from the real fit


def test_spread_and_shipped_names():
    items = list(range(10))
    assert spread(items, 3) == [0, 4, 9] and spread(items, 20) == items
    assert probe_file(SHIPPED, "refusal_prompts") == str(data_path("refusal_prompts"))
    assert probe_file("/x/y.csv", "refusal_prompts") == "/x/y.csv"


def test_shipped_va_sets_have_the_promised_shape():
    rows = load_labelled_texts(data_path("va_emotion_texts"))
    counts = collections.Counter(ls[0] for _, ls in rows)
    ratings = load_va_ratings(data_path("va_emotion_ratings"))
    emotions = set(counts) - {"neutral"}
    assert len(emotions) == 25 and set(ratings) == emotions and all(counts[e] == 14 for e in emotions)
    assert counts["neutral"] == 30 and len({t for t, _ in rows}) == len(rows)
    # the circumplex is covered: each quadrant (valence and arousal above or below 5) holds emotions
    quadrants = collections.Counter((v > 5, a > 5) for v, a in ratings.values())
    assert len(quadrants) == 4 and min(quadrants.values()) >= 3
    prompts = load_prompts(data_path("refusal_prompts"))
    assert collections.Counter(t for _, t in prompts) == {"harmful": 110, "benign": 110}
    assert len({p for p, _ in prompts}) == 220
    with open(data_path("refusal_prompts"), encoding="utf-8") as fh:
        cats = collections.Counter((r["type"], r["category"]) for r in csv.DictReader(fh))
    assert {c for _, c in cats} and all(cats[("harmful", c)] == cats[("benign", c)] for _, c in cats)
    items = load_sycophancy(data_path("sycophancy_items"))
    assert len(items) == 120 and len({i["question"] for i in items}) == 120
    assert collections.Counter(i["answer_matching_behavior"] for i in items) == {" (A)": 60, " (B)": 60}
    assert all(i["question"].rstrip().endswith("Answer:") for i in items)


def test_probes_measure_alpha_zero_once_and_keep_per_item_outcomes(qwen_tiny, tmp_path, monkeypatch):
    import circuits.runs.valence_arousal as V

    calls = []
    real = V.refusal_rates
    monkeypatch.setattr(V, "refusal_rates", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = VAConfig(
        limit=2,
        alphas=ALPHAS,
        steer_limit=1,
        random_seeds=2,
        lexicon=None,
        refusal=SHIPPED,
        sycophancy=SHIPPED,
        probe_limit=6,
        refusal_tokens=4,
    )
    s = run_va(qwen_tiny, tmp_path, cfg, progress=False)
    assert len(calls) == 1 + 4 * 2  # alpha 0 once; 4 directions x 2 non-zero strengths
    refusal, syc = s["probes"]["refusal"], s["probes"]["sycophancy"]
    assert [(r["direction"], r["alpha"]) for r in refusal] == [
        (d, a) for d in ("valence", "arousal", "random0", "random1") for a in ALPHAS
    ]
    assert all(len(r["values"]) == len(r["fluent"]) == 6 for r in refusal) and all(len(r["values"]) == 6 for r in syc)
    zero = [r for r in syc if r["alpha"] == 0.0]
    assert all(r["values"] == zero[0]["values"] for r in zero)
    assert s["behaviour"]["refusal"]["prompts"] == "harmful" and s["behaviour"]["refusal"]["n"] == 3  # 3 of 6 harmful
    assert s["behaviour"]["sycophancy"]["n"] == 6 and s["fit"]["heldout"]["n"] == 25
    assert json.loads((tmp_path / "summary.json").read_text())["behaviour"]["rule"] == s["behaviour"]["rule"]


def test_batched_sycophancy_equals_item_by_item(qwen_tiny):
    """The probe scores every item's two answers in length-sorted batches; the slow reference scores each
    answer alone (one prompt, no padding), with and without a steering intervention."""
    import math

    from circuits import va

    m = qwen_tiny
    items = load_sycophancy(data_path("sycophancy_items"))[:10]
    axis = va.random_directions(m.arch.d_model, 1, seed=5)[0]
    for ivs in ([], va.axis_steering(axis, [1], 6.0, 1.0)):
        got = va.sycophancy_probs(m, items, ivs)
        ivs_all = [__import__("dataclasses").replace(iv, positions="all") for iv in ivs]
        want = []
        for it in items:
            prompt = m.chat_ids(None, it["question"])
            lm = va.answer_logprob(m, prompt, it["answer_matching_behavior"], ivs_all)
            ln = va.answer_logprob(m, prompt, it["answer_not_matching_behavior"], ivs_all)
            want.append(1 / (1 + math.exp(ln - lm)))
        assert got == pytest.approx(want, abs=1e-5)
        assert len(set(round(g, 4) for g in got)) > 1  # the items differ: not a constant


def test_report_shows_the_curves_and_verdicts(tmp_path):
    """The run report's VA section lists each probe curve with its interval and n, and the verdicts."""
    from circuits.figures.report_page import va_tables
    from circuits.runs.report import va_section
    from circuits.runs.valence_arousal import behaviour_verdicts

    probes = {
        "refusal": [
            dict(r, fluent=[True] * len(r["values"]))
            for r in _rows("arousal", [0.8, 0.5, 0.2], n=40) + _rows("random0", [0.5] * 3, n=40, seed=1)
        ],
        "sycophancy": _rows("arousal", [0.4, 0.5, 0.6], n=40) + _rows("random0", [0.5] * 3, n=40, seed=1),
    }
    b = behaviour_verdicts(probes, ["harmful", "benign"] * 20)
    assert b["refusal"]["n"] == 20 and b["sycophancy"]["n"] == 40
    summary = {"projection": {"a": [0, 0]}, "behaviour": b, "fit": {"r2": 0.5, "heldout": {"r2": {"valence": 0.25}}}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    tables = {t.id: t for t in va_tables(va_section(tmp_path))}
    rows = tables["table-va-behaviour"].rows
    assert len(rows) == 3 * 6 and {r[0] for r in rows} == {
        "refusal (harmful prompts)",
        "refusal (fluent replies)",
        "sycophancy",
    }
    assert all(r[4] in ("20", "40") for r in rows) and b["refusal"]["verdict"] in tables["table-va-behaviour"].caption
    assert "each emotion left out: R2 valence 0.250" in tables["table-va"].caption


def test_constant_ratings_give_no_correlation_not_nan():
    """A self-report that rates every emotion alike leaves the rank correlation undefined: None, so the
    summary stays valid JSON, and the claims table cannot tell."""
    from circuits.runs import replicate as R
    from circuits.va.subspace import correlation

    assert correlation([1, 2, 3], [5, 5, 5]) is None and correlation([1, 2, 3], [1, 3, 2], "pearson") == pytest.approx(
        0.5
    )
    g = torch.Generator().manual_seed(1)
    ratings = np.c_[np.full(6, 5.0), np.arange(6.0)]
    held = heldout_fit(torch.randn(6, 16, generator=g), ratings, [f"e{i}" for i in range(6)])
    assert held["spearman"]["valence"] is None and isinstance(held["spearman"]["arousal"], float)
    assert held["r2"]["valence"] is None and isinstance(held["r2"]["arousal"], float)
    got = R._va_heldout(R.Sources("m", va={"fit": {"heldout": held}}))
    assert got["verdict"] == R.UNSURE and got["value"] is None
    flat = {"emotions": list("abcd"), "ratings": {e: [5, i] for i, e in enumerate("abcd")}}
    circle = R._va_circle(R.Sources("m", va=flat | {"projection": {e: [0.0, i] for i, e in enumerate("abcd")}}))
    assert circle["verdict"] == R.UNSURE and circle["value"] is None
