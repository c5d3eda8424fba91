"""The learned judge: logistic regression against its optimality conditions, the on-disk head
format, the packaged encoder, the match mode."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.core.emotions import EMOTIONS, LABELS, NEUTRAL
from circuits.judges.base import JudgeSpecError, ThresholdMatch, judge_matches, judge_name, make_judge
from circuits.judges.learned import (
    HEAD_CONFIG,
    HEAD_WEIGHTS,
    HeadConfig,
    LearnedJudge,
    features,
    fit_logistic,
    predict_proba,
    save_head,
    style_features,
)


def _objective(head, x, y, l2, balanced=True):
    z = (x.double() - head["mean"].double()) / head["scale"].double()
    w, b = head["weight"].double().clone().requires_grad_(), head["bias"].double().clone().requires_grad_()
    c = w.shape[0]
    counts = torch.bincount(y, minlength=c).double()
    cw = counts.sum() / (c * counts.clamp(min=1)) if balanced else torch.ones(c, dtype=torch.float64)
    sw = cw[y]
    loss = (torch.nn.functional.cross_entropy(z @ w.T + b, y, reduction="none") * sw).sum() / sw.sum()
    loss = loss + 0.5 * l2 * (w**2).sum()
    loss.backward()
    return loss.item(), w.grad, b.grad


def test_fit_logistic_reaches_the_optimum():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(90, 5, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(90, generator=g) > 0).long() + (x[:, 1] > 1).long()
    head = fit_logistic(x, y, 3, l2=0.1)
    loss, gw, gb = _objective(head, x, y, 0.1)
    assert gw.abs().max() < 1e-4 and gb.abs().max() < 1e-4  # the gradient vanishes at the solution
    for _ in range(5):  # and no nearby point is better (the objective is convex)
        bumped = dict(head, weight=head["weight"] + 0.01 * torch.randn(head["weight"].shape, generator=g))
        assert _objective(bumped, x, y, 0.1)[0] >= loss - 1e-7
    p = predict_proba(head, x)
    assert torch.allclose(p.sum(-1), torch.ones(90)) and (p.argmax(-1) == y).float().mean() > 0.7


def test_fit_logistic_is_deterministic_and_balanced_weights_help_the_rare_class():
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(95, 2, generator=g), torch.randn(5, 2, generator=g) + 1.5])
    y = torch.tensor([0] * 95 + [1] * 5)
    a, b = fit_logistic(x, y, 2, l2=0.01), fit_logistic(x, y, 2, l2=0.01)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = fit_logistic(x, y, 2, l2=0.01, balanced=False)
    rare_bal = (predict_proba(a, x)[95:].argmax(-1) == 1).sum()
    rare_plain = (predict_proba(plain, x)[95:].argmax(-1) == 1).sum()
    assert rare_bal >= rare_plain and rare_bal >= 3


def test_style_features_are_log_scores_of_the_style_lexicon():
    from circuits.judges.learned import style_judge

    f = style_features(["Ugh, how trite.", "Plain text."])
    j = style_judge()(["Ugh, how trite."])[0]
    assert f.shape == (2, len(EMOTIONS) + 1)
    assert f[0, EMOTIONS.index("disgust")].item() == pytest.approx(
        torch.log1p(torch.tensor(j.scores["disgust"])).item()
    )
    assert f[1].abs().sum() == 0


def _style_head(tmp_path, threshold=0.4):
    texts = [
        "How dare they!",
        "Ugh, gross and vile.",
        "Oh no, what if it breaks?",
        "Alas, it is gone.",
        "Yay! Wonderful news!",
        "Wait, what? No way!",
        "The form is on the website.",
    ] * 3
    labels = [*LABELS[:0], "anger", "disgust", "fear", "sadness", "happiness", "surprise", NEUTRAL] * 3
    x = features(texts, "style")
    y = torch.tensor([LABELS.index(lab) for lab in labels])
    head = fit_logistic(x, y, len(LABELS), l2=0.01)
    save_head(tmp_path / "judge", head, HeadConfig(features="style", match_threshold=threshold))
    return tmp_path / "judge", texts, labels


def test_head_folder_round_trip_and_judge(tmp_path):
    folder, texts, labels = _style_head(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([HEAD_CONFIG, HEAD_WEIGHTS])
    j = make_judge(f"learned:{folder}")
    assert isinstance(j, LearnedJudge) and judge_name(j) == f"learned:{folder}"
    assert j.label(texts[:7]) == labels[:7]
    p = j.probabilities(texts[:2])
    assert abs(sum(p[0].values()) - 1) < 1e-5 and set(p[0]) == set(LABELS)
    verdict = j(texts[:1])[0]
    assert verdict.scores["anger"] == pytest.approx(p[0]["anger"])


def test_a_bad_head_folder_says_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="cfg.json and head.safetensors"):
        LearnedJudge(tmp_path)
    folder, _, _ = _style_head(tmp_path)
    cfg = json.loads((folder / HEAD_CONFIG).read_text())
    (folder / HEAD_CONFIG).write_text(json.dumps({**cfg, "features": "words"}))
    with pytest.raises(ValueError, match="cfg.json: features must be one of"):
        LearnedJudge(folder)


def test_match_mode_uses_the_threshold(tmp_path):
    folder, texts, _ = _style_head(tmp_path, threshold=0.4)
    judge = LearnedJudge(folder)
    m = make_judge(f"learned:{folder}", mode="match")
    assert isinstance(m, ThresholdMatch) and m.threshold == 0.4
    targets = ["anger", "anger", "fear", "fear"]
    sample = texts[:4]
    probs = judge.probabilities(sample)
    hits, verdicts = judge_matches(m, sample, targets)
    assert hits == [p[t] >= 0.4 for p, t in zip(probs, targets)]
    assert verdicts == [t if h else "no match" for h, t in zip(hits, targets)]
    assert hits[0] and not hits[1]
    strict = ThresholdMatch(judge, threshold=0.999)
    assert judge_matches(strict, sample, targets)[0] == [p[t] >= 0.999 for p, t in zip(probs, targets)]


def test_match_mode_needs_probabilities():
    class Plain:
        def __call__(self, texts):
            return []

    with pytest.raises(JudgeSpecError, match="gives no probabilities"):
        ThresholdMatch(Plain())
    with pytest.raises(JudgeSpecError, match="judge mode must be one of"):
        make_judge("lexicon", mode="maybe")
    assert isinstance(make_judge("style", mode="match"), ThresholdMatch)


def test_packaged_encoder_gives_unit_vectors_that_see_meaning():
    from circuits.judges.encoder import packaged_encoder

    enc = packaged_encoder()
    v = enc(["I am so happy for you!", "This makes me really happy.", "The invoice is attached.", ""])
    assert v.shape == (4, 384)
    assert torch.allclose(v.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert (v[0] @ v[1]) > (v[0] @ v[2]) + 0.2
    # batching does not change the vectors
    assert torch.allclose(enc(["The invoice is attached."]), v[2:3], atol=1e-5)


def test_the_shipped_judge_loads_and_reads_style():
    j = make_judge("learned")
    assert judge_name(j) == "learned" and 0 < j.match_threshold < 1
    out = j.label(["Ugh, how tacky and gross.", "You can pick up the parcel at the post office on Monday."])
    assert out == ["disgust", NEUTRAL]


def _resave(folder, **tensors):
    from safetensors.torch import load_file, save_file

    head = load_file(str(folder / HEAD_WEIGHTS))
    head.update(tensors)
    save_file({k: v.contiguous() for k, v in head.items()}, str(folder / HEAD_WEIGHTS))
    return head


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("tensor", ["weight", "bias", "mean", "scale"])
def test_a_head_with_non_finite_weights_is_refused_at_load(tmp_path, bad, tensor):
    from circuits.core.artifacts import InputError

    folder, _, _ = _style_head(tmp_path)
    head = _resave(folder)
    t = head[tensor].clone()
    t.view(-1)[0] = bad
    _resave(folder, **{tensor: t})
    with pytest.raises(InputError, match=rf"head.safetensors: tensor '{tensor}': holds NaN or infinite values"):
        make_judge(f"learned:{folder}")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda h: {"weight": torch.zeros(7, 9)}, r"tensor 'weight': expected shape \(7, 7\), got \(7, 9\)"),
        (lambda h: {"bias": torch.zeros(6)}, r"tensor 'bias': expected shape \(7\), got \(6,\)"),
        (lambda h: {"mean": h["mean"].double()}, "tensor 'mean': expected dtype float32, got float64"),
        (lambda h: {"scale": torch.zeros(7)}, "tensor 'scale': every value must be > 0"),
    ],
)
def test_a_mis_shaped_head_is_refused_at_load(tmp_path, edit, expected):
    from circuits.core.artifacts import InputError

    folder, _, _ = _style_head(tmp_path)
    _resave(folder, **edit(_resave(folder)))
    with pytest.raises(InputError, match=expected):
        LearnedJudge(folder)


def test_a_truncated_head_or_a_non_finite_threshold_is_refused(tmp_path):
    from circuits.core.artifacts import InputError

    folder, _, _ = _style_head(tmp_path)
    weights = folder / HEAD_WEIGHTS
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=r"head.safetensors: not a readable safetensors file"):
        LearnedJudge(folder)
    weights.write_bytes(good)
    cfg_path = folder / HEAD_CONFIG
    cfg = json.loads(cfg_path.read_text())
    for threshold, expected in (
        ("NaN", "cfg.json: NaN is not allowed"),
        ("Infinity", "cfg.json: Infinity is not allowed"),
        ("1.5", r"cfg.json: HeadConfig.match_threshold: expected a finite number in \[0, 1\], got 1.5"),
        ('"0.5"', "HeadConfig.match_threshold: expected a finite number"),
    ):
        cfg_path.write_text(
            json.dumps(cfg).replace(f'"match_threshold": {cfg["match_threshold"]}', f'"match_threshold": {threshold}')
        )
        with pytest.raises(InputError, match=expected):
            LearnedJudge(folder)
    with pytest.raises(InputError, match="HeadConfig.l2"):
        HeadConfig(l2=float("nan"))
    cfg_path.write_text("[" * 100_000)
    with pytest.raises(InputError, match="cfg.json: nested too deep"):
        LearnedJudge(folder)


def test_lm_encoder_refuses_a_missing_folder_and_a_layer_beyond_the_model(tmp_path, tiny_dirs):
    import shutil

    from circuits.core.artifacts import InputError
    from circuits.judges.encoder import LMEncoder

    with pytest.raises(InputError, match=r"judge encoder '.*nope': no such model folder"):
        LMEncoder(str(tmp_path / "nope"), 1)
    with pytest.raises(InputError, match=r"judge encoder layer must be in 1\.\.2 for .*, got 999"):
        LMEncoder(str(tiny_dirs["qwen2"]), 999)
    with pytest.raises(InputError, match="judge encoder layer: expected a whole number, got '3'"):
        LMEncoder(str(tiny_dirs["qwen2"]), "3")
    notok = tmp_path / "notok"
    shutil.copytree(tiny_dirs["qwen2"], notok)
    (notok / "tokenizer.json").unlink()
    with pytest.raises(InputError, match="judge encoder folder .*notok' has no tokenizer file"):
        LMEncoder(str(notok), 1)


def test_judge_outputs_reads_a_head_once_and_agrees_with_its_verdicts(tmp_path):
    """``judge_outputs`` gives a learned head's verdicts from one pass of probabilities: the same labels
    as calling the judge, the same probabilities, and the judge's texts are read once."""
    from circuits.judges.calibrate import LabelledReply, judge_labels, judge_outputs

    folder, texts, labels = _style_head(tmp_path)
    judge = LearnedJudge(folder)
    rows = [LabelledReply(text=t, label=lab) for t, lab in zip(texts, labels)]
    calls = []
    inner = judge.probabilities
    judge.probabilities = lambda ts: calls.append(len(ts)) or inner(ts)
    verdicts, probs = judge_outputs(judge, rows)
    assert calls == [len(rows)]
    assert verdicts == judge_labels(judge, rows) and probs == inner(texts)
    lexicon = make_judge("lexicon")  # a judge whose verdicts do not follow from its probabilities
    lab, p = judge_outputs(lexicon, rows)
    assert lab == judge_labels(lexicon, rows) and p == lexicon.probabilities(texts)
