"""Dose-response: the interpolated strength that matches prompting (hand-built curves), random controls
of equal norm, and the command end to end on the toy run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from circuits.steer.dose import control_band, strength_to_match


def _pts(*rows):
    return [{"strength": s, "accuracy": a, "perplexity": p} for s, a, p in rows]


def test_strength_to_match_interpolates_accuracy_and_log_perplexity():
    pts = _pts((2.0, 0.6, 40.0), (0.0, 0.0, 5.0), (1.0, 0.2, 10.0))  # unsorted on purpose
    m = strength_to_match(pts, 0.4)
    assert m["reached"] and m["strength"] == pytest.approx(1.5)
    assert m["perplexity"] == pytest.approx(math.sqrt(10.0 * 40.0))  # half way in log space
    assert strength_to_match(pts, 0.0)["strength"] == 0.0  # the first point already reaches it
    miss = strength_to_match(pts, 0.9)
    assert not miss["reached"] and miss["strength"] is None


def test_control_band_summarises_the_seeds():
    seeds = [
        {"strength": 2.0, "n": 6, "accuracy": a, "emotion_score": e, "perplexity": p}
        for a, e, p in ((0.0, None, 10.0), (0.5, None, 1000.0), (0.25, None, 100.0))
    ]
    b = control_band(seeds)
    assert b["strength"] == 2.0 and b["n"] == 6 and b["seeds"] == seeds
    assert b["accuracy"] == pytest.approx(0.25) and (b["lo"]["accuracy"], b["hi"]["accuracy"]) == (0.0, 0.5)
    assert b["perplexity"] == pytest.approx(100.0)  # geometric mean
    assert (b["lo"]["perplexity"], b["hi"]["perplexity"]) == (10.0, 1000.0)
    assert b["emotion_score"] is None and b["lo"]["emotion_score"] is None  # no judge probabilities


def test_random_controls_keep_the_norm_and_size_of_each_method(toy, toy_run):
    from circuits.runs.evaluate import method_factories
    from circuits.steer.metrics import EvalConfig

    out, _ = toy_run
    cfg = EvalConfig(positions="last")
    real, _ = method_factories(toy, out, cfg, ["anger"])
    ctrl, _ = method_factories(toy, out, cfg, ["anger"], null_seed=3)
    again, _ = method_factories(toy, out, cfg, ["anger"], null_seed=3)
    for method in ("direction", "emotion_vector", "circuit"):
        a, b, c = real[method]("anger", 2.0), ctrl[method]("anger", 2.0), again[method]("anger", 2.0)
        assert [(iv.site, iv.layer, iv.factor) for iv in a] == [(iv.site, iv.layer, iv.factor) for iv in b]
        for x, y, z in zip(a, b, c):
            assert torch.equal(y.vector, z.vector) and y.index == z.index  # seeded
            assert float(x.vector.norm()) == pytest.approx(float(y.vector.norm()), rel=1e-5)  # equal norm
            if x.index:
                assert len(x.index) == len(y.index)  # equal size per layer
        assert any(not torch.equal(x.vector, y.vector) or x.index != y.index for x, y in zip(a, b))


def test_dose_response_command_on_the_toy_run(toy_run, tmp_path, capsys):
    from circuits.cli import main

    out, _ = toy_run
    dest = tmp_path / "dose"
    assert (
        main(
            [
                "dose-response",
                "--model",
                "toy",
                "--run",
                str(out),
                "--methods",
                "circuit",
                "direction",
                "--emotions",
                "anger",
                "happiness",
                "--sweep-limit",
                "1",
                "--positions",
                "last",
                "--circuit-lambdas",
                "0.5",
                "2",
                "--direction-alphas",
                "2",
                "--null-seeds",
                "4",
                "5",
                "--out",
                str(dest),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "random control" in printed and "prompting" in printed
    res = json.loads((dest / "dose_response.json").read_text())
    assert set(res["methods"]) == {"circuit", "direction"}
    assert [p["strength"] for p in res["methods"]["circuit"]["points"]] == [0.5, 2.0]
    assert res["null_seeds"] == [4, 5] and res["n_control_seeds"] == 2
    spread = []
    for t in res["methods"].values():
        assert len(t["points"]) == len(t["control"])
        for c in t["control"]:
            assert len(c["seeds"]) == 2 and c == control_band(c["seeds"])
            for key in ("accuracy", "emotion_score", "perplexity"):
                assert c["lo"][key] <= c[key] <= c["hi"][key]
            spread.append(c["hi"]["perplexity"] - c["lo"]["perplexity"])
        for p in t["points"] + [s for c in t["control"] for s in c["seeds"]]:
            assert 0 <= p["accuracy"] <= 1 and 0 <= p["emotion_score"] <= 1 and p["perplexity"] > 1
            assert p["n"] == res["dev"]["items_per_point"] == 6
    assert max(spread) > 0  # two seeds draw two different controls
    assert res["judge"] == "lexicon" and set(res["reference"]) == {"prompting", "neutral"}
    html = (dest / "dose_response.html").read_text()
    assert "min-max over seeds" in html and "toself" in html  # the band is drawn


def test_concepts_command_and_the_concept_direction_source(toy, toy_run, tmp_path, capsys):
    import shutil

    from circuits.cli import main
    from circuits.runs.evaluate import method_factories
    from circuits.steer.metrics import EvalConfig

    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    with pytest.raises(Exception, match="emocircuits concepts"):  # asked for before it exists: says how
        method_factories(toy, run, EvalConfig(direction_source="concept"), ["anger"])
    assert main(["concepts", "--model", "toy", "--run", str(run)]) == 0
    assert "highest at layer" in capsys.readouterr().out
    cmp = json.loads((run / "concept_directions_comparison.json").read_text())
    assert len(cmp["vs_sev"]["mlp"]["mean_by_layer"]) == toy.arch.n_layers
    sev, _ = method_factories(toy, run, EvalConfig(), ["anger"])
    con, _ = method_factories(toy, run, EvalConfig(direction_source="concept"), ["anger"])
    a, b = sev["direction"]("anger", 2.0), con["direction"]("anger", 2.0)
    assert [iv.layer for iv in a] == [iv.layer for iv in b]
    assert not torch.equal(a[0].vector, b[0].vector)
