"""End to end: the discovery pipeline on the shipped toy model, and the agreements it reports."""

from __future__ import annotations

import json

import pytest
import torch
from scipy.stats import spearmanr

from circuits.discovery import components, influence
from circuits.circuit import Circuit, CircuitModelMismatch, load_circuits
from circuits.runs.discover import DiscoverConfig, discover
from circuits.discovery.directions import emotion_directions
from circuits.core.sev import load_sev
from circuits.discovery.store import StoreConfig, build_store


@pytest.fixture(scope="module")
def toy():
    from circuits.core.model import load_model

    return load_model("toy")


@pytest.fixture(scope="module")
def toy_run(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = DiscoverConfig(limit=4, sweep_ks=(1, 4), sweep_seeds=1, sweep_rows=3, reference_head_rows=3,
                         influence_rows=12, alphas=(0.1, 0.5), generation_rows=2)
    return out, discover(toy, load_sev(), out, cfg, progress=False)


def test_run_directory_and_circuits_load_back(toy, toy_run, tiny_models):
    out, summary = toy_run
    for name in ("summary.json", "directions.safetensors", "dla.csv", "logit_lens.csv", "neurons.csv", "heads.csv",
                 "sweeps.csv", "influence.csv", "scores.safetensors", "store/meta.json",
                 "figures/influence_heatmap.html", "figures/pca_by_layer.html"):
        assert (out / name).exists(), name
    assert json.loads((out / "summary.json").read_text())["circuits"] == summary["circuits"]
    gen = json.loads((out / "ablation_generations.json").read_text())
    assert set(gen["mean"]) == {"baseline", "top", "random", "enhance_baseline", "enhanced_top", "enhanced_random"}
    assert all(0 <= v <= 1 for v in gen["mean"].values()) and gen["config"]["enhance"] == "add"
    circuits = load_circuits(out / "circuits", model=toy)
    assert set(circuits) == {"anger", "sadness", "happiness", "fear", "surprise", "disgust"}
    budget = circuits["fear"].budget()
    assert circuits["fear"].n_neurons == budget["neurons"] and circuits["fear"].n_heads == budget["heads"]
    graph = json.loads((out / "circuits" / "fear.graph.json").read_text())
    assert {n for n, d in graph["nodes"].items() if d["in_graph"] and n.startswith("a")} == {
        f"a{L}.h{h}" for L, hs in circuits["fear"].head_index().items() for h in hs}
    with pytest.raises(CircuitModelMismatch):
        Circuit.load(out / "circuits" / "fear.json", model=tiny_models["qwen2"])


def test_reported_agreements(toy_run):
    _, summary = toy_run
    assert summary["agreement"]["heads_spearman"] >= 0.95
    assert summary["agreement"]["influence_spearman"] >= 0.9


def test_toy_head_and_influence_agreement(toy, tmp_path):
    """On the toy model: one-pass head scores vs per-head ablation (Spearman >= 0.95) and gradient
    influence vs the intervention measure (Spearman >= 0.9), on the same rows."""
    store = build_store(toy, load_sev(), tmp_path, StoreConfig(limit=2), progress=False)
    dirs = emotion_directions(store)
    fast = components.head_scores_one_pass(toy, store, dirs)
    ref = components.head_scores_reference(toy, store, dirs, progress=False)
    assert spearmanr(fast.flatten(), ref.flatten())[0] >= 0.95
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-3)
    i_ref = influence.influence_intervention(toy, store, dirs, progress=False)
    i_grad = influence.influence_gradient(toy, store, dirs, progress=False)
    assert spearmanr(i_ref.flatten(), i_grad.flatten())[0] >= 0.9


def test_circuit_modulation_steers_the_toy_model_under_the_neutral_prompt(toy, toy_run):
    """The circuits found on 4 scenarios turn calm replies into the target emotion on held-out items
    (the README reports the full evaluation): Delta-mu at the last prompt token, lambda 1."""
    from circuits.steer.evaluate import EvalConfig, evaluate_methods
    from circuits.core.sev import DEFAULT_TEST
    from circuits.steer.methods import circuit_modulation

    out, _ = toy_run
    circuits = load_circuits(out / "circuits", model=toy)
    cfg = EvalConfig(methods=("neutral", "circuit"), limit=2)
    ivs = {"circuit": lambda e: circuit_modulation(circuits[e], toy, lam=1.0, positions="last")}
    res = evaluate_methods(toy, load_sev(DEFAULT_TEST), ivs, cfg, progress=False)["methods"]
    assert res["neutral"]["n"] == res["circuit"]["n"] == 2 * 3 * 6
    assert res["neutral"]["accuracy"] <= 0.2
    assert res["circuit"]["accuracy"] >= 0.9, res["circuit"]["per_emotion"]
    assert res["circuit"]["perplexity"] <= 3.0


def test_evaluate_command_writes_every_output(toy_run, tmp_path, capsys):
    """`emocircuits evaluate` on a run: evaluation.json (the documented schema), CSV, chart, report."""
    from circuits.cli import main

    out, _ = toy_run
    rep = tmp_path / "eval"
    assert main(["evaluate", "--model", "toy", "--run", str(out), "--methods", "prompting", "neutral", "circuit",
                 "--emotions", "anger", "fear", "--limit", "1", "--positions", "last", "--out", str(rep)]) == 0
    assert "circuit" in capsys.readouterr().out
    res = json.loads((rep / "evaluation.json").read_text())
    assert res["judge"] == "lexicon" and res["config"]["positions"] == "last"
    assert set(res["methods"]) == {"prompting", "neutral", "circuit"}
    for m in res["methods"].values():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["n"] == 6 and m["perplexity"] > 1.0
        assert set(m["per_emotion"]) == {"anger", "fear"} and set(m["per_valence"]) == {"positive", "neutral",
                                                                                       "negative"}
        assert m["accuracy"] == pytest.approx(sum(m["per_emotion"].values()) / 2)
    csv_lines = (rep / "evaluation.csv").read_text().splitlines()
    assert csv_lines[0] == "method,emotion,accuracy,perplexity,distinct_2" and len(csv_lines) == 1 + 3 * 3
    report = (rep / "report.md").read_text()
    assert "judge `lexicon`" in report and "### circuit" in report
    assert (rep / "accuracy.html").stat().st_size > 1000
    assert not (out / "evaluation.json").exists()  # --out, not the run directory
