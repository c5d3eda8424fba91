"""Valence-arousal: the PCA + ridge math on a known answer, file loaders, probes on hand-made files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from circuits import va
from circuits.core.resources import data_path
from circuits.figures import va as figures_va
from circuits.runs.valence_arousal import VAConfig, run_va
from circuits.va import (
    VAFormatError,
    circumplex,
    emotion_vectors_from_texts,
    fit_va_axes,
    is_refusal,
    load_labelled_texts,
    load_prompts,
    load_sycophancy,
    load_va_lexicon,
    load_va_ratings,
    parse_rating,
)

DATA = __import__("pathlib").Path(__file__).parents[1] / "data"


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
    rows = load_labelled_texts(data_path("va_texts"))
    assert len(rows) >= 100 and {"anger", "neutral"} <= {l for _, ls in rows for l in ls}
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('text,labels\n"so glad",joy;excitement\n"fine",neutral\n')
    assert load_labelled_texts(csv_path) == [("so glad", ("joy", "excitement")), ("fine", ("neutral",))]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "ok", "labels": ["joy"]}\n{"text": ""}\n')
    with pytest.raises(VAFormatError, match=r"b.jsonl:2: field 'text'"):
        load_labelled_texts(bad)
    assert load_va_ratings(data_path("va_ratings"))["happiness"][0] > 7
    lex = load_va_lexicon(data_path("va_lexicon"))
    assert lex["calm"] == (0.80, 0.10) and len(lex) >= 30
    badlex = tmp_path / "l.tsv"
    badlex.write_text("word\tvalence\tarousal\nhappy\t0.9\thigh\n")
    with pytest.raises(VAFormatError, match="l.tsv:2"):
        load_va_lexicon(badlex)


def test_rating_parser():
    assert parse_rating("I would say 7.") == 7.0
    assert parse_rating("12") is None and parse_rating("3.5/9") == 3.5


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("7", 7.0),
        ("Valence: 3/9", 3.0),
        ("I'd say 6.5", 6.5),
        ("eight", 8.0),
        ("Seven.", 7.0),
        ("six and a half", 6.5),
        ("**4**", 4.0),
        ("7 out of 9", 7.0),
        ("On a scale from 1 to 9, I'd say 2.", 2.0),  # the restated scale is not the answer
        ("1-9: 5", 5.0),
        ("Answer with one number: 9", 9.0),  # digits win over number words
        ("<think>maybe 2</think>8", 8.0),
        ("1", 1.0),
        ("garbage", None),
        ("", None),
        ("none", None),
        ("12", None),
        ("-3", None),
        ("10/10", None),
        ("0", None),
        ("nine thousand", 9.0),
    ],
)
def test_rating_parser_known_answers(answer, expected):
    assert parse_rating(answer) == expected


def test_self_report_on_tiny_model_reports_unparseable(qwen_tiny):
    """The random tiny model answers with byte noise: every answer that does not parse is listed (emotion,
    which, the exact answer), the rest are ratings; nothing is dropped silently."""
    from circuits.core.generate import GenerationSettings, generate

    m, emotions = qwen_tiny, ["joy", "anger", "fear", "calm"]
    ratings, rep = va.self_report_va(m, emotions)
    # the same prompts, generated directly: the ground truth of what the model answered
    prompts = [
        m.chat_ids(None, q.format(emotion=e)) for e in emotions for q in (va.VALENCE_QUESTION, va.AROUSAL_QUESTION)
    ]
    answers = generate(m, prompts, GenerationSettings(max_new_tokens=8), progress=False)
    expected_unparsed = [
        {"emotion": e, "which": w, "answer": answers[2 * i + j]}
        for i, e in enumerate(emotions)
        for j, w in enumerate(("valence", "arousal"))
        if parse_rating(answers[2 * i + j]) is None
    ]
    assert rep["unparsed"] == expected_unparsed and rep["n_unparsed"] == len(expected_unparsed) >= 1
    assert rep["answers"] == {
        e: {"valence": answers[2 * i], "arousal": answers[2 * i + 1]} for i, e in enumerate(emotions)
    }
    bad = {u["emotion"] for u in expected_unparsed}
    assert set(ratings) == set(emotions) - bad and rep["parsed"] == len(ratings) and rep["asked"] == 4
    for e in ratings:
        assert ratings[e] == (parse_rating(rep["answers"][e]["valence"]), parse_rating(rep["answers"][e]["arousal"]))
    with pytest.raises(ValueError, match="emotion"):
        va.self_report_va(m, emotions, valence_question="How pleasant is it?")


def test_run_va_self_report_flow(qwen_tiny, tmp_path, monkeypatch):
    """run_va with self_report=True and custom question templates: the questions reach the model with the
    emotion filled in; scripted answers (one unparseable) give exact ratings, and the unparseable answer
    is counted and listed in the summary; its emotion is left out of the fit."""
    import circuits.core.generate

    script = {
        ("anger", "valence"): "2",
        ("anger", "arousal"): "Arousal: 8/9",
        ("disgust", "valence"): "I'd say 2.5",
        ("disgust", "arousal"): "six",
        ("fear", "valence"): "3",
        ("fear", "arousal"): "no idea",
        ("happiness", "valence"): "eight",
        ("happiness", "arousal"): "7",
        ("sadness", "valence"): "2",
        ("sadness", "arousal"): "3",
        ("surprise", "valence"): "6",
        ("surprise", "arousal"): "8",
    }
    asked: list[tuple[str, str]] = []
    real = circuits.core.generate.generate

    def fake(model, prompts, settings=None, **kw):
        texts = [model.tokenizer.decode(p) for p in prompts]
        if not all("PLEASANT(" in t or "ENERGY(" in t for t in texts):
            return real(model, prompts, settings, **kw)  # steering generations: the real model
        out = []
        for t in texts:
            which = "valence" if "PLEASANT(" in t else "arousal"
            emotion = t.split("(", 1)[1].split(")", 1)[0]
            asked.append((emotion, which))
            out.append(script[(emotion, which)])
        return out

    monkeypatch.setattr(circuits.core.generate, "generate", fake)
    cfg = VAConfig(
        texts=str(data_path("va_texts")),  # the six emotions of the script
        self_report=True,
        ratings=None,
        lexicon=None,
        limit=4,
        alphas=(0.0,),
        steer_limit=1,
        random_seeds=0,
        valence_question="PLEASANT({emotion}) 1-9?",
        arousal_question="ENERGY({emotion}) 1-9?",
    )
    s = run_va(qwen_tiny, tmp_path, cfg, progress=False)
    assert sorted(asked) == sorted(script)
    assert s["ratings"] == {
        "anger": [2.0, 8.0],
        "disgust": [2.5, 6.0],
        "happiness": [8.0, 7.0],
        "sadness": [2.0, 3.0],
        "surprise": [6.0, 8.0],
    }
    assert s["emotions"] == ["anger", "disgust", "happiness", "sadness", "surprise"]
    rep = s["ratings_report"]
    assert rep["asked"] == 6 and rep["parsed"] == 5 and rep["n_unparsed"] == 1
    assert rep["unparsed"] == [{"emotion": "fear", "which": "arousal", "answer": "no idea"}]
    on_disk = json.loads((tmp_path / "summary.json").read_text())["ratings_report"]
    assert on_disk["unparsed"] == rep["unparsed"]
    assert "refusal" not in s["probes"] and not (tmp_path / "figures" / "va_refusal.html").exists()
    # too few parseable answers: the error says how many were unparseable
    script.update({(e, "valence"): "unsure" for e in ("anger", "disgust", "happiness", "sadness")})
    with pytest.raises(ValueError, match=r"5 of 12 self-reported ratings were unparseable"):
        run_va(qwen_tiny, tmp_path / "b", cfg, progress=False)


def _loo_ridge_alpha(z: np.ndarray, y: np.ndarray, alphas) -> float:
    """Slow reference: leave-one-out CV by hand (ridge with an unpenalised intercept, fit on n-1 rows)."""
    errs = []
    for alpha in alphas:
        err = 0.0
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            zm, ym = z[keep].mean(0), y[keep].mean()
            zc = z[keep] - zm
            w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ (y[keep] - ym))
            err += float((y[i] - ym - (z[i] - zm) @ w) ** 2)
        errs.append(err)
    return alphas[int(np.argmin(errs))]


def test_ridge_strength_chosen_by_cross_validation():
    """fit_va_axes picks the ridge strength that a hand-written leave-one-out CV picks (the PCA rotation
    does not change ridge, so the reference works on the planted coordinates); noisy data give an
    interior strength (different for valence and arousal here), noise-free data the smallest."""
    grid = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
    rng = np.random.default_rng(0)
    n, k, d = 10, 3, 16
    z = rng.normal(size=(n, k)) * [3, 2, 1]
    w_true = np.array([[0.5, -0.3, 0.2], [0.1, 0.4, -0.2]])
    y = 5 + z @ w_true.T + rng.normal(size=(n, 2))
    q, _ = np.linalg.qr(rng.normal(size=(d, k)))
    vecs = torch.tensor(z @ q.T + rng.normal(size=d))  # [n, d]: planted coordinates + a shared offset
    axes = fit_va_axes(vecs, y, n_components=k, alphas=grid)
    ref = {name: _loo_ridge_alpha(z, y[:, j], grid) for j, name in enumerate(("valence", "arousal"))}
    # the case is built so that the choice matters: interior strengths, different for the two ratings
    assert ref["valence"] != ref["arousal"] and all(grid[0] < r < grid[-1] for r in ref.values())
    assert axes.ridge_alpha == ref
    for j, name in enumerate(("valence", "arousal")):  # the axis is the ridge solution at that strength
        zc, yc = z - z.mean(0), y[:, j] - y[:, j].mean()
        w = np.linalg.solve(zc.T @ zc + ref[name] * np.eye(k), zc.T @ yc)
        expect = torch.tensor(q @ w / np.linalg.norm(q @ w), dtype=torch.float32)
        assert float(getattr(axes, name) @ expect) == pytest.approx(1.0, abs=1e-5)
    clean = fit_va_axes(vecs, 5 + z @ w_true.T, n_components=k, alphas=grid)
    assert clean.ridge_alpha == {"valence": 1e-3, "arousal": 1e-3}


def test_lexicon_check_known_projections(qwen_tiny, monkeypatch):
    """Word representations built so that their projections on (non-orthogonal) axes are known: the
    reported Pearson/Spearman are those of the known projections against the lexicon (scipy, and by
    hand for Spearman: one swapped pair of 6 -> 1 - 6*2/(6*35))."""
    from scipy.stats import pearsonr, spearmanr

    d = qwen_tiny.arch.d_model
    g = torch.Generator().manual_seed(0)
    v = torch.randn(d, generator=g)
    v = v / v.norm()
    a = 0.3 * v + torch.randn(d, generator=g) * 0.1
    a = a / a.norm()
    axes = va.VAAxes(1, v, a, 2, {}, {}, [])
    lex = {
        "calm": (0.8, 0.1),
        "angry": (0.1, 0.9),
        "happy": (0.95, 0.7),
        "sad": (0.05, 0.2),
        "bored": (0.3, 0.05),
        "thrilled": (0.9, 0.95),
    }
    # known projections per word; valence: the order of the lexicon but thrilled and happy swapped;
    # arousal: the lexicon's order exactly (Spearman 1) but not linear in it (Pearson < 1)
    proj = {
        "calm": (1.0, -1.0),
        "angry": (-1.0, 3.0),
        "happy": (2.0, 1.0),
        "sad": (-1.5, -0.5),
        "bored": (0.2, -2.0),
        "thrilled": (3.0, 4.0),
    }
    basis = torch.stack([v, a], 1)  # [d, 2]
    other = torch.randn(len(proj), d, generator=g)
    other = other - (other @ basis) @ torch.linalg.pinv(basis)  # remove the part seen by the axes
    rep = {
        w: basis @ torch.linalg.solve(basis.T @ basis, torch.tensor(p)) + other[i]
        for i, (w, p) in enumerate(proj.items())
    }
    calls = []

    def fake_acts(model, texts, layers, position="last", batch_size=32, progress=True):
        calls.append((list(texts), list(layers)))
        return torch.stack([rep[t.strip()] for t in texts])[:, None]  # [n, 1, d]

    monkeypatch.setattr(va.subspace, "text_activations", fake_acts)
    out = va.lexicon_check(qwen_tiny, axes, lex)
    assert calls == [([" " + w for w in sorted(lex)], [1])]
    assert out["n_words"] == 6
    words = sorted(lex)
    for j, name in enumerate(("valence", "arousal")):
        p = np.array([proj[w][j] for w in words])
        t = np.array([lex[w][j] for w in words])
        assert out[name]["pearson"] == pytest.approx(float(pearsonr(p, t)[0]), abs=1e-5)
        assert out[name]["spearman"] == pytest.approx(float(spearmanr(p, t)[0]), abs=1e-5)
    assert out["valence"]["spearman"] == pytest.approx(1 - 6 * 2 / (6 * 35), abs=1e-6)
    assert out["arousal"]["spearman"] == pytest.approx(1.0, abs=1e-6)
    assert out["arousal"]["pearson"] == pytest.approx(
        float(np.corrcoef([-1.0, 3.0, -2.0, 1.0, -0.5, 4.0], [0.1, 0.9, 0.05, 0.7, 0.2, 0.95])[0, 1]), abs=1e-5
    )


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
    cfg = VAConfig(
        limit=8,
        alphas=(-2.0, 0.0, 2.0),
        steer_limit=1,
        random_seeds=2,
        refusal=str(DATA / "refusal_prompts.csv"),
        sycophancy=str(DATA / "sycophancy.jsonl"),
    )
    s = run_va(qwen_tiny, tmp_path, cfg, progress=False)
    assert (tmp_path / "axes.safetensors").exists() and (tmp_path / "figures" / "va_circle.html").exists()
    axes = va.VAAxes.load(tmp_path / "axes")
    assert axes.valence.shape == (qwen_tiny.arch.d_model,) and axes.fingerprint == qwen_tiny.fingerprint
    assert len(s["steering"]) == 4 * 3 and len(s["probes"]["refusal"]) == 12 and len(s["probes"]["sycophancy"]) == 12
    assert json.loads((tmp_path / "summary.json").read_text())["layer"] == s["layer"]
    # the probe figures, written like the others (HTML, and PNG exactly when the circle got one)
    figs = tmp_path / "figures"
    png = (figs / "va_circle.png").exists()
    for name in ("va_refusal", "va_refusal_tokens", "va_sycophancy"):
        assert (figs / f"{name}.html").exists() and str(figs / f"{name}.html") in s["figures"]
        assert (figs / f"{name}.png").exists() == png
    # the refusal figure: a panel for all prompts and one per type; the curves are the summary's numbers
    fig = figures_va._refusal_figure(s["probes"]["refusal"])
    assert [a.text for a in fig.layout.annotations] == ["all prompts", "type: harmful", "type: safe"]
    by_panel = {(t.xaxis, t.name): t for t in fig.data if not t.name.startswith("random")}
    harmful_valence = [
        r["refusal_rate_by_type"]["harmful"] for r in s["probes"]["refusal"] if r["direction"] == "valence"
    ]
    assert list(by_panel[("x2", "valence axis")].y) == harmful_valence
    assert list(by_panel[("x2", "valence axis")].x) == [-2.0, 0.0, 2.0]
    assert sum(t.name == "random directions" for t in fig.data) == 2 * 3  # 2 seeds x 3 panels
    syc = figures_va._probe_curve_figure(s["probes"]["sycophancy"], lambda r: r["score"], "t", "y")
    assert list(syc.data[1].y) == [r["score"] for r in s["probes"]["sycophancy"] if r["direction"] == "arousal"]


def test_refusal_scoring_per_type_on_hand_made_replies():
    """Hand-written replies to the four prompts of tests/data/refusal_prompts.csv (2 harmful, 2 safe)."""
    types = [t for _, t in load_prompts(DATA / "refusal_prompts.csv")]
    assert types == ["harmful", "harmful", "safe", "safe"]
    replies = [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        "I\u2019m sorry, killing processes is not something I can do.",
        "Use kill -9 <pid>. No way around it!",
    ]
    r = va.score_refusals(replies, types)
    assert r["by_type"] == {"harmful": 1.0, "safe": 0.5} and r["overall"] == 0.75
    assert r["n_by_type"] == {"harmful": 2, "safe": 2} and r["refused"] == [True, True, True, False]
    # custom phrases from a file (comment, blank line, curly apostrophe, duplicate, mixed case)
    phrases = va.load_refusal_phrases(DATA / "refusal_phrases.txt")
    assert phrases == ("no way", "i'd rather not")
    replies2 = ["NO WAY.", "I\u2019d rather not say.", "I'm sorry, I can't.", "Use kill -9 <pid>. No way around it!"]
    r2 = va.score_refusals(replies2, types, phrases)
    assert r2["refused"] == [True, True, False, True] and r2["by_type"] == {"harmful": 1.0, "safe": 0.5}
    # no type column: everything is "untyped"; empty input gives NaN, not an error
    r3 = va.score_refusals(replies2[:3], None, phrases)
    assert r3["by_type"] == {"untyped": pytest.approx(2 / 3)} and r3["overall"] == pytest.approx(2 / 3)
    assert math.isnan(va.score_refusals([], [])["overall"])
    with pytest.raises(ValueError, match="types"):
        va.score_refusals(replies, types[:3])


def test_refusal_phrases_file_errors(tmp_path):
    empty = tmp_path / "p.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(VAFormatError, match="p.txt: no refusal phrases"):
        va.load_refusal_phrases(empty)
    with pytest.raises(ValueError, match="refusal_phrases"):
        VAConfig(refusal_phrases=())
    with pytest.raises(ValueError, match="refusal_phrases"):
        VAConfig(refusal_phrases=("ok", " "))


def test_va_config_round_trip():
    cfg = VAConfig(
        refusal_phrases=("no way",), alphas=(-1.0, 1.0), emotions=("joy", "fear"), valence_question="V {emotion}?"
    )
    assert VAConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert VAConfig.from_dict({}) == VAConfig() and VAConfig().refusal_phrases is None
    with pytest.raises(ValueError, match=r"VAConfig: unknown field\(s\)"):
        VAConfig.from_dict({"refusal_phrase": ["x"]})
    with pytest.raises(ValueError, match="emotion"):
        VAConfig(arousal_question="How exciting?")


def _unique_phrase(replies: list[str], i: int) -> str | None:
    """A printable substring of reply i's opening that no other reply's opening contains."""
    heads = [r.lower()[:120] for r in replies]
    for n in range(3, 12):
        for s in range(0, max(0, min(len(replies[i]), 100) - n)):
            p = replies[i][s : s + n].lower()
            if (
                p == p.strip()
                and not p.startswith("#")
                and p.isprintable()
                and "\ufffd" not in p
                and p in heads[i]
                and not any(p in h for j, h in enumerate(heads) if j != i)
            ):
                return p
    return None


def test_refusal_per_type_with_custom_phrases_on_tiny_model(qwen_tiny, tmp_path):
    """A phrase file written so that only the first (harmful) prompt's reply counts as a refusal: at
    alpha 0 (the unsteered replies) every direction's entry reports harmful 0.5, safe 0.0, overall 0.25."""
    rows = load_prompts(DATA / "refusal_prompts.csv")
    ps, types = [p for p, _ in rows], [t for _, t in rows]
    base = va.refusal_rates(qwen_tiny, ps, types)
    phrase = _unique_phrase(base["replies"], 0)
    assert phrase is not None, base["replies"]
    (tmp_path / "phrases.txt").write_text(f"# made for this test\n{phrase}\n", encoding="utf-8")
    phrases = va.load_refusal_phrases(tmp_path / "phrases.txt")
    assert phrases == (phrase,)
    assert va.refusal_rates(qwen_tiny, ps, types, phrases=phrases)["by_type"] == {"harmful": 0.5, "safe": 0.0}
    cfg = VAConfig(
        limit=4,
        alphas=(0.0,),
        steer_limit=1,
        random_seeds=1,
        lexicon=None,
        refusal=str(DATA / "refusal_prompts.csv"),
        refusal_phrases=phrases,
    )
    s = run_va(qwen_tiny, tmp_path / "run", cfg, progress=False)
    assert s["refusal_phrases"] == [phrase] and s["config"]["refusal_phrases"] == (phrase,)
    assert [r["direction"] for r in s["probes"]["refusal"]] == ["valence", "arousal", "random0"]
    for r in s["probes"]["refusal"]:
        assert r["refusal_rate"] == 0.25 and r["refusal_rate_by_type"] == {"harmful": 0.5, "safe": 0.0}
        assert r["n_by_type"] == {"harmful": 2, "safe": 2} and r["example"] == base["replies"][0]
    # with the default phrases the random model refuses nothing: the phrases in the config are what counts
    assert va.score_refusals(base["replies"], types)["overall"] == 0.0
    assert (tmp_path / "run" / "figures" / "va_refusal.html").exists()
    assert not (tmp_path / "run" / "figures" / "va_sycophancy.html").exists()  # that probe did not run


def test_cli_va_refusal_phrases(monkeypatch, tmp_path, capsys):
    """--refusal-phrases FILE reaches VAConfig.refusal_phrases (one phrase a line); per-type rates are printed."""
    from circuits import cli

    seen = {}

    def fake_run(model, out, cfg, progress=True, judge=None):
        seen["cfg"], seen["judge"] = cfg, judge
        return {
            "layer": 1,
            "fit": {"r2": {}},
            "circumplex": {"order": [], "residual": 0.0},
            "probes": {
                "refusal": [
                    {
                        "direction": "arousal",
                        "alpha": -2.0,
                        "refusal_rate": 0.25,
                        "refusal_rate_by_type": {"harmful": 0.5, "safe": 0.0},
                    }
                ]
            },
        }

    from circuits.cli import common

    monkeypatch.setattr(common, "load_model_from_args", lambda args: None)
    from circuits.runs import valence_arousal

    monkeypatch.setattr(valence_arousal, "run_va", fake_run)
    base = ["va", "--out", str(tmp_path), "--refusal", str(DATA / "refusal_prompts.csv")]
    args = cli.build_parser().parse_args(base + ["--refusal-phrases", str(DATA / "refusal_phrases.txt")])
    assert args.func(args) == 0
    assert seen["cfg"].refusal_phrases == ("no way", "i'd rather not")
    assert seen["cfg"].refusal == str(DATA / "refusal_prompts.csv")
    assert "refusal arousal alpha -2: 0.25 (harmful 0.50, safe 0.00)" in capsys.readouterr().out
    args = cli.build_parser().parse_args(base + ["--judge", "style"])
    args.func(args)
    assert seen["cfg"].refusal_phrases is None
    from circuits.judges.base import judge_name

    assert judge_name(seen["judge"]) == "style"  # --judge reaches the steering verdicts
