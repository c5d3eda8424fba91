"""End to end: the discovery pipeline on the shipped toy model, and the agreements it reports."""

from __future__ import annotations

import json
import re

import pytest
import torch
from scipy.stats import spearmanr

from circuits.circuit import Circuit, load_circuits
from circuits.core.artifacts import ModelMismatch
from circuits.core.sev import load_sev
from circuits.discovery import components, influence
from circuits.discovery.directions import emotion_directions
from circuits.discovery.store import StoreConfig, build_store
from circuits.runs.discover import DiscoverConfig, discover


def test_run_directory_and_circuits_load_back(toy, toy_run, tiny_models):
    out, summary = toy_run
    for name in (
        "summary.json",
        "directions.safetensors",
        "dla.csv",
        "logit_lens.csv",
        "neurons.csv",
        "heads.csv",
        "sweeps.csv",
        "influence.csv",
        "scores.safetensors",
        "store/meta.json",
        "figures/influence_heatmap.html",
        "figures/pca_by_layer.html",
    ):
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
        f"a{L}.h{h}" for L, hs in circuits["fear"].head_index().items() for h in hs
    }
    with pytest.raises(ModelMismatch):
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
    from circuits.core.sev import DEFAULT_TEST
    from circuits.steer.methods import circuit_modulation
    from circuits.steer.metrics import EvalConfig, evaluate_methods

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
    assert (
        main(
            [
                "evaluate",
                "--model",
                "toy",
                "--run",
                str(out),
                "--methods",
                "prompting",
                "neutral",
                "circuit",
                "--emotions",
                "anger",
                "fear",
                "--limit",
                "1",
                "--positions",
                "last",
                "--out",
                str(rep),
            ]
        )
        == 0
    )
    assert "circuit" in capsys.readouterr().out
    res = json.loads((rep / "evaluation.json").read_text())
    assert res["judge"] == "lexicon" and res["config"]["positions"] == "last"
    assert set(res["methods"]) == {"prompting", "neutral", "circuit"}
    for m in res["methods"].values():
        assert 0.0 <= m["accuracy"] <= 1.0 and m["n"] == 6 and m["perplexity"] > 1.0
        assert set(m["per_emotion"]) == {"anger", "fear"} and set(m["per_valence"]) == {
            "positive",
            "neutral",
            "negative",
        }
        assert m["accuracy"] == pytest.approx(sum(m["per_emotion"].values()) / 2)
        # fluent accuracy: broken replies are misses, so it never exceeds the judge's raw accuracy
        assert m["accuracy"] <= m["raw_accuracy"] and 0.0 <= m["broken_share"] <= 1.0
    assert res["fluency"] is not None and "reference" not in res["fluency"]  # the toy's check: text signals only
    csv_lines = (rep / "evaluation.csv").read_text().splitlines()
    assert csv_lines[0] == "method,emotion,accuracy,raw_accuracy,broken_share,perplexity,distinct_2"
    assert len(csv_lines) == 1 + 3 * 3
    report = (rep / "report.md").read_text()
    assert "judge `lexicon`" in report and "### circuit" in report
    assert (rep / "accuracy.html").stat().st_size > 1000
    assert not (out / "evaluation.json").exists()  # --out, not the run directory
    replies = [json.loads(line) for line in (rep / "replies.jsonl").read_text().splitlines()]
    assert len(replies) == 3 * 6 and {r["method"] for r in replies} == set(res["methods"])
    for name, m in res["methods"].items():
        mine = [r for r in replies if r["method"] == name]
        assert sum(r["verdict"] == r["label"] for r in mine) / len(mine) == pytest.approx(m["accuracy"])
        assert sum(r["raw_verdict"] == r["label"] for r in mine) / len(mine) == pytest.approx(m["raw_accuracy"])
        assert sum(r["broken"] for r in mine) / len(mine) == pytest.approx(m["broken_share"])
        assert all((r["verdict"] == "broken") == r["broken"] for r in mine)


def test_strength_sweep_picks_on_dev_and_uses_it_on_test(toy_run, tmp_path, capsys):
    """`evaluate --circuit-lambdas 0 1`: on the toy model lambda 0 does nothing and lambda 1 steers, so the
    sweep (on the train split) picks 1, and the test split is evaluated at 1; the run's prompts are used."""
    from circuits.cli import main
    from circuits.core.sev import DEFAULT_TRAIN, PromptSettings

    out, _ = toy_run
    rep = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "toy",
                "--run",
                str(out),
                "--methods",
                "neutral",
                "circuit",
                "--emotions",
                "anger",
                "fear",
                "--limit",
                "1",
                "--positions",
                "last",
                "--circuit-lambdas",
                "0",
                "1",
                "--sweep-limit",
                "1",
                "--out",
                str(rep),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "strength sweep on 1 dev scenarios" in printed
    res = json.loads((rep / "evaluation.json").read_text())
    sweep = res["strength_sweep"]
    assert sweep["dev"]["path"] == str(DEFAULT_TRAIN)
    points = {p["strength"]: p for p in sweep["methods"]["circuit"]["points"]}
    assert points[0.0]["accuracy"] <= 0.2 < 0.8 <= points[1.0]["accuracy"] and points[1.0]["fluent"]
    assert sweep["methods"]["circuit"]["chosen"] == 1.0 and res["config"]["circuit_lambda"] == 1.0
    assert res["methods"]["circuit"]["accuracy"] >= 0.8
    assert res["prompts"] == PromptSettings().to_dict()
    assert "Strengths were chosen on the dev items" in (rep / "report.md").read_text()


def test_evaluation_reads_the_run_prompts(tmp_path):
    from circuits.core.sev import PromptSettings
    from circuits.runs.rundir import Run

    assert Run(tmp_path, check=False).prompts == PromptSettings()  # nothing recorded: the paper's
    (tmp_path / "store").mkdir()
    user = PromptSettings(placement="user", user_instruction="Show {emotion}.")
    (tmp_path / "store" / "meta.json").write_text(json.dumps({"prompts": user.to_dict()}))
    assert Run(tmp_path, check=False).prompts == user


def test_reference_layers_limit_the_slow_measures(qwen_tiny, tmp_path):
    from circuits.runs.discover import DiscoverInputError

    cfg = DiscoverConfig(
        limit=2,
        reference_layers=(1,),
        sweep_ks=(1,),
        sweep_seeds=1,
        sweep_rows=1,
        reference_head_rows=2,
        influence_rows=4,
        alphas=(1.0,),
        generation_rows=0,
        figures=False,
    )
    s = discover(qwen_tiny, load_sev(), tmp_path / "run", cfg, progress=False)
    assert s["agreement"]["reference_layers"] == [1] and s["influence_method"] == "gradient"
    rows = [line.split(",") for line in (tmp_path / "run" / "influence.csv").read_text().splitlines()[1:]]
    intervention = {int(r[1]): float(r[3]) for r in rows}
    assert intervention[0] == 0.0 and intervention[1] != 0.0  # layer 0 was not measured by intervention
    with pytest.raises(DiscoverInputError, match=r"reference_layers .*layer\(s\) \[5\] out of range"):
        discover(qwen_tiny, load_sev(), tmp_path / "bad", DiscoverConfig(limit=2, reference_layers=(5,)))
    assert not (tmp_path / "bad").exists()


def test_demo_command_on_the_toy_model(tmp_path, capsys):
    """`emocircuits demo --model toy` with every size given on the command line: discovery, the sweep,
    the method table and steered replies."""
    from circuits.cli import main

    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--model",
                "toy",
                "--out",
                str(out),
                "--limit",
                "2",
                "--eval-limit",
                "1",
                "--emotions",
                "anger",
                "fear",
                "--reference-rows",
                "1",
                "--sweep-ks",
                "1",
                "--sweep-seeds",
                "1",
                "--sweep-rows",
                "1",
                "--generation-rows",
                "0",
                "--influence-rows",
                "2",
                "--influence-alphas",
                "1",
                "--no-figures",
                "--circuit-lambdas",
                "1",
                "--sweep-limit",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "strength sweep" in printed and "emotion_vector" in printed and "[circuit -> " in printed
    res = json.loads((out / "evaluation" / "evaluation.json").read_text())  # the run's evaluation folder
    assert not (out / "evaluation.json").exists()
    assert f"{out / 'evaluation' / 'report.md'}" in printed
    assert set(res["methods"]) == {"prompting", "neutral", "direction", "emotion_vector", "circuit"}
    assert res["config"]["positions"] == "last"  # the toy preset
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["limit"] == 2 and summary["config"]["generation_rows"] == 0


def test_demo_presets_fill_what_is_not_given():
    from circuits.runs.demo import PRESETS, preset_for

    assert preset_for("toy") is PRESETS["toy"] and preset_for("smollm2-135m") is PRESETS["real"]
    from circuits.runs.demo import resolve_layer_counts
    from circuits.runs.discover import spread_layers

    assert spread_layers(30, 4) == (3, 11, 18, 26) and spread_layers(2, 4) == (0, 1)
    DiscoverConfig(**resolve_layer_counts(PRESETS["real"]["discover"], 30))  # every preset value is valid
    from circuits.steer.metrics import EvalConfig

    EvalConfig(**PRESETS["real"]["evaluate"])


def test_evaluate_in_match_mode_asks_the_binary_question(toy_run, tmp_path):
    """`--judge-mode match`: a hit is P(target) >= the judge's threshold, recomputed here from the
    judge's probabilities on the written replies (echoes removed), reply by reply."""
    from circuits.cli import main
    from circuits.judges.echo import strip_echoes
    from circuits.judges.lexicon import lexicon_judge

    out, _ = toy_run
    rep = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                "toy",
                "--run",
                str(out),
                "--methods",
                "prompting",
                "neutral",
                "--emotions",
                "anger",
                "fear",
                "--limit",
                "1",
                "--judge",
                "lexicon",
                "--judge-mode",
                "match",
                "--out",
                str(rep),
            ]
        )
        == 0
    )
    res = json.loads((rep / "evaluation.json").read_text())
    assert res["judge"] == "lexicon (match: P >= 0.50)"
    replies = [json.loads(line) for line in (rep / "replies.jsonl").read_text().splitlines()]
    judge = lexicon_judge()
    probs = judge.probabilities(strip_echoes([r["text"] for r in replies], [r["instruction"] for r in replies]))
    for r, p in zip(replies, probs):
        assert r["verdict"] == (r["label"] if p[r["label"]] >= judge.match_threshold else "no match")
    for name, m in res["methods"].items():
        mine = [r for r in replies if r["method"] == name]
        assert m["accuracy"] == pytest.approx(sum(r["verdict"] == r["label"] for r in mine) / len(mine))
    assert res["methods"]["prompting"]["accuracy"] > res["methods"]["neutral"]["accuracy"]


def test_reference_budget_sizes_or_skips_the_slow_measures(qwen_tiny, tmp_path):
    """No --reference-layers: one layer is timed and as many spread layers as the budget allows are measured;
    a budget of 0 skips the references and says so."""
    from circuits.runs.discover import agreement_line

    small = dict(
        limit=2,
        sweep_ks=(1,),
        sweep_seeds=1,
        sweep_rows=1,
        reference_head_rows=2,
        influence_rows=4,
        alphas=(1.0,),
        generation_rows=0,
        figures=False,
    )
    tight = discover(
        qwen_tiny, load_sev(), tmp_path / "tight", DiscoverConfig(reference_budget_s=1e-6, **small), progress=False
    )
    ag = tight["agreement"]
    assert ag["reference_layers"] == [1] and ag["seconds_per_layer"] > 0  # the timed middle layer only
    assert tight["influence_method"] == "gradient" and ag["heads_spearman"] is not None
    roomy = discover(
        qwen_tiny, load_sev(), tmp_path / "roomy", DiscoverConfig(reference_budget_s=600, **small), progress=False
    )
    assert roomy["agreement"]["reference_layers"] == [0, 1] and roomy["influence_method"] == "intervention"
    skipped = discover(
        qwen_tiny, load_sev(), tmp_path / "skip", DiscoverConfig(reference_budget_s=0, **small), progress=False
    )
    ag = skipped["agreement"]
    assert ag["reference_layers"] == [] and ag["heads_spearman"] is None and skipped["influence_method"] == "gradient"
    assert "skipped" in agreement_line(ag) and "not checked" in ag["note"]
    assert "2 layer(s) [0, 1]" in agreement_line(roomy["agreement"])


def test_sweeps_default_to_spread_layers():
    from circuits.runs.discover import spread_layers, sweep_layers

    assert sweep_layers(DiscoverConfig(), 30) == spread_layers(30, 4) == (3, 11, 18, 26)
    assert sweep_layers(DiscoverConfig(), 4) == (0, 1, 2, 3)  # a shallow model: every layer
    assert sweep_layers(DiscoverConfig(sweep_layer_count=0), 30) == tuple(range(30))
    assert sweep_layers(DiscoverConfig(sweep_layers=(3, 7)), 30) == (3, 7)


def test_faithfulness_is_in_the_circuit_files_and_the_summary(toy, toy_run):
    from circuits.circuit import load_circuits

    out, summary = toy_run
    circuits = load_circuits(out / "circuits", model=toy)
    assert set(summary["faithfulness"]) == set(circuits)
    for e, c in circuits.items():
        assert c.faithfulness["faithfulness"] == summary["faithfulness"][e]["faithfulness"]
        assert c.faithfulness["rows"] == summary["faithfulness"][e]["rows"] > 0
        assert set(c.faithfulness["judged"]["accuracy"]) == {"full", "empty", "circuit", "ablated"}
    assert json.loads((out / "circuits" / "anger.json").read_text())["schema_version"] == 2


def test_faithfulness_command_rewrites_the_run_circuits(toy, toy_run, tmp_path):
    import shutil

    from circuits.circuit import Circuit
    from circuits.cli import main

    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    before = Circuit.load(run / "circuits" / "fear.json")
    assert (
        main(
            ["faithfulness", "--model", "toy", "--run", str(run), "--rows", "3", "--seeds", "2", "--emotions", "anger"]
        )
        == 0
    )
    anger = Circuit.load(run / "circuits" / "anger.json", model=toy)
    assert anger.faithfulness["rows"] == 3 and anger.faithfulness["random"]["n_seeds"] == 2
    assert "judged" not in anger.faithfulness
    assert Circuit.load(run / "circuits" / "fear.json") == before  # other emotions untouched
    saved = json.loads((run / "faithfulness.json").read_text())
    assert set(saved["summary"]) == {"anger"}


def test_faithfulness_command_refuses_bad_input_naming_the_field(toy_run, tmp_path, capsys):
    """Out-of-range numbers name the config field and its flag, --sev with --split train is refused, and a
    held-out file without items of an emotion names the emotion and the file; the run is left as it was."""
    import shutil

    from circuits.cli import main

    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    before = (run / "circuits" / "anger.json").read_bytes()
    assert main(["faithfulness", "--model", "toy", "--run", str(run), "--rows", "0"]) == 2
    assert "FaithfulnessConfig.rows (--rows): expected a value >= 1" in capsys.readouterr().err
    assert main(["faithfulness", "--model", "toy", "--run", str(run), "--split", "train", "--sev", "x.jsonl"]) == 2
    assert "--sev" in capsys.readouterr().err
    train = json.loads((run / "summary.json").read_text())["dataset"]["path"]
    assert main(["faithfulness", "--model", "toy", "--run", str(run), "--sev", train]) == 2
    assert "the store was built from" in capsys.readouterr().err
    assert (run / "circuits" / "anger.json").read_bytes() == before  # refusals write nothing
    one = tmp_path / "one.jsonl"
    from circuits.core.sev import DEFAULT_TEST

    one.write_text(json.dumps(load_sev(DEFAULT_TEST).scenarios[0].to_dict()) + "\n")
    assert (
        main(
            [
                "faithfulness",
                "--model",
                "toy",
                "--run",
                str(run),
                "--sev",
                str(one),
                "--emotions",
                "anger",
                "--rows",
                "4",
            ]
        )
        == 0
    )  # 3 items (one scenario x 3 valences): fewer than --rows, recorded
    assert json.loads((run / "faithfulness.json").read_text())["summary"]["anger"]["rows"] == 3
    assert (
        main(
            [
                "faithfulness",
                "--model",
                "toy",
                "--run",
                str(run),
                "--sev",
                str(one),
                "--emotions",
                "anger",
                "--rows",
                "1",
            ]
        )
        == 0
    )
    assert (run / "circuits" / "anger.json").read_bytes() != before  # rewritten with the new block


def test_direction_nulls_are_in_the_evidence_and_the_figure(toy_run):
    out, summary = toy_run
    ev = json.loads((out / "directions_evidence.json").read_text())
    null = ev["null"]
    assert null["seeds"] == 2 and len(null["probe_accuracy"]["mlp"]["seeds"]) == 2
    assert summary["directions"]["null_probe_accuracy_mlp"] == null["probe_accuracy"]["mlp"]["mean"]
    assert "permuted labels" in (out / "figures" / "probe_accuracy.html").read_text()


def test_nulls_command_adds_the_null_block_and_keeps_the_rest(toy, toy_run, tmp_path, capsys):
    import shutil

    from circuits.cli import main

    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    before = json.loads((run / "directions_evidence.json").read_text())
    assert main(["nulls", "--model", "toy", "--run", str(run), "--seeds", "3", "--seed", "5"]) == 0
    assert "null probe" in capsys.readouterr().out
    after = json.loads((run / "directions_evidence.json").read_text())
    assert after["probe_accuracy"] == before["probe_accuracy"] and after["null"]["seeds"] == 3
    assert after["null"] != before["null"]  # other seeds, other permutations


class _OneMissingPerGroup:
    """A label judge for elicitation that rejects, in every (scenario, valence) group, one of the first five
    emotions (another one from group to group) and disgust everywhere but in the last group, so no group
    is complete and disgust is rare; later calls go to the lexicon judge."""

    def __init__(self, emotions):
        from circuits.judges.base import make_judge

        self.emotions, self.lexicon, self.calls = list(emotions), make_judge("lexicon"), 0

    def __call__(self, texts):
        from circuits.judges.base import Judgement

        self.calls += 1
        if self.calls > 1:
            return self.lexicon(texts)
        E = len(self.emotions)  # elicitation: rows are group-major, emotions in order within a group
        n_groups = len(texts) // E

        def rejected(i: int) -> bool:
            g, e = divmod(i, E)
            return e == g % (E - 1) or (e == E - 1 and g != n_groups - 1)

        return [Judgement("neutral" if rejected(i) else self.emotions[i % E], {}, ()) for i in range(len(texts))]


def test_row_subsets_of_a_complete_store_keep_the_group_structure(toy_run, toy):
    from circuits.discovery.store import ActivationStore
    from circuits.runs.discover import _subset_rows

    store = ActivationStore.load(toy_run[0] / "store", toy)
    sub = _subset_rows(store, "emotion", 3, store.emotions, 5)
    groups = {store.rows[int(i)].group for i in sub}
    assert len(groups) == 3 and len(sub) == 3 * len(store.emotions)  # every emotion of the same 3 groups
    assert torch.equal(sub, _subset_rows(store, "emotion", 3, store.emotions, 5))  # seeded
    assert not torch.equal(sub, _subset_rows(store, "emotion", 3, store.emotions, 6))


def test_elicitation_without_complete_groups_runs_and_reports_what_it_kept(toy, tmp_path, capsys):
    """Elicitation that leaves no (scenario, valence) group complete still gives directions, PCA and
    circuits from the kept rows (each centred by its group's prompted rows), and says what it kept; an
    emotion with no kept row is refused with a message that names it, and only the judged store is left
    (resumable), no results."""
    from circuits.discovery.directions import pca_by_layer
    from circuits.discovery.store import ActivationStore
    from circuits.runs.discover import DiscoverInputError, _subset_rows, kept_line

    emotions = ("anger", "sadness", "happiness", "fear", "surprise", "disgust")
    cfg = DiscoverConfig(
        limit=4,
        elicitation=True,
        sweep_ks=(1,),
        sweep_seeds=1,
        sweep_rows=2,
        reference_budget_s=0,
        influence_rows=6,
        alphas=(0.5,),
        generation_rows=0,
        faithfulness_rows=2,
        faithfulness_judge_rows=0,
        null_seeds=1,
        figures=False,
    )
    out = tmp_path / "run"
    summary = discover(toy, load_sev(), out, cfg, judge=_OneMissingPerGroup(emotions), progress=False)
    kept = summary["rows"]["kept"]
    assert kept["groups"] == 12 and kept["complete_groups"] == 0 and kept["prompted"] == 72
    assert kept["accepted"] == 49 == summary["rows"]["accepted"]
    assert kept["by_emotion"] == {"anger": 9, "sadness": 9, "happiness": 10, "fear": 10, "surprise": 10, "disgust": 1}
    assert "kept 49 of 72 emotion rows" in kept_line(kept) and "in 0 of 12" in kept_line(kept)
    store = ActivationStore.load(out / "store", toy)
    pca = pca_by_layer(store)
    assert len(pca["labels"]) == 49 and pca["coords"].shape[1] == 49
    # the sweeps' row subset reaches down the group order for a rare emotion instead of leaving it empty
    sub = _subset_rows(store, "emotion", 2, emotions, 1)
    got = {e: sum(store.rows[int(i)].emotion == e for i in sub) for e in emotions}
    assert got == {**{e: 2 for e in emotions[:5]}, "disgust": 1} and all(store.rows[int(i)].accepted for i in sub)
    # the PCA centres each kept row by all prompted rows of its group: a loop reference at one layer
    rows = [i for i, r in enumerate(store.rows) if r.kind == "emotion"]
    L = toy.arch.n_layers - 1
    x = store.resid("mlp")[:, L].float()
    centred = torch.stack(
        [
            x[i] - x[[j for j in rows if store.rows[j].group == store.rows[i].group]].mean(0)
            for i in rows
            if store.rows[i].accepted
        ]
    )
    c = centred - centred.mean(0)
    var = torch.linalg.svdvals(c) ** 2
    assert pca["explained"][L] == pytest.approx((var[:2] / var.sum()).numpy(), rel=1e-4, abs=1e-6)
    assert set(load_circuits(out / "circuits", model=toy)) == set(emotions)

    class _NoFear(_OneMissingPerGroup):
        def __call__(self, texts):
            from circuits.judges.base import Judgement

            return [
                Judgement("neutral" if self.emotions[i % 6] == "fear" else self.emotions[i % 6], {}, ())
                for i in range(len(texts))
            ]

    with pytest.raises(DiscoverInputError, match=r"kept no row of fear \(kept 60 of 72"):
        discover(toy, load_sev(), tmp_path / "nofear", cfg, judge=_NoFear(emotions), progress=False)
    assert sorted(p.name for p in (tmp_path / "nofear").iterdir()) == ["store"]


def test_discover_writes_the_run_page_and_its_provenance(toy_run):
    """discover ends with the run's report.html (offline: no script or link over the network) and records
    the package versions; a run started from Python records no command line, and the page says so."""
    import importlib.metadata as md

    out, summary = toy_run
    page = (out / "report.html").read_text()
    assert summary["model"]["name"] in page
    at = page.find("command line")
    assert "not recorded" in page, page[max(0, at - 300) : at + 600] if at >= 0 else page[:3000]
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=[\"']?https?:|<link[^>]*\shref=[\"']?https?:", page)
    assert summary["command"] is None
    assert summary["versions"]["torch"] == md.version("torch")
    assert summary["versions"]["emotion-circuits"] == md.version("emotion-circuits")
    assert json.loads((out / "summary.json").read_text())["versions"] == summary["versions"]


def test_report_command_writes_markdown_with_its_title_and_records_its_command(toy_run, tmp_path, capsys):
    """`emocircuits report --format md`: the title and the command that made the run head the page, the
    probe table holds the run's own numbers; the CLI records its command line while it runs and forgets
    it when it returns, so work started from Python afterwards records none (it recorded the stale one)."""
    from circuits.cli import main
    from circuits.core import provenance

    out, summary = toy_run
    target = tmp_path / "findings.md"
    argv = ["report", "--run", str(out), "--format", "md", "--out", str(target), "--title", "Toy findings"]
    seen = []
    real = provenance.set_command
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(provenance, "set_command", lambda a: seen.append(a) or real(a))
        assert main([*argv, "--made-by", "make demo-toy"]) == 0
    assert seen == [["emocircuits", *argv, "--made-by", "make demo-toy"], None]
    assert provenance.command() is None
    assert f"wrote {target}" in capsys.readouterr().out
    text = target.read_text()
    assert text.startswith("# Toy findings\n") and "`make demo-toy`" in text
    acc = json.loads((out / "directions_evidence.json").read_text())["probe_accuracy"]["mlp"]
    assert f"{acc[-1]:.3f}" in text
    assert main(["report", "--run", str(tmp_path / "absent")]) == 2


def test_discover_runs_in_bfloat16_with_a_bfloat16_store(tmp_path):
    """The bfloat16 path end to end on the toy model (it once failed in the influence gradient, which
    mixed a float32 final state with a bfloat16 direction): every stage runs and the circuits load."""
    from circuits.circuit import load_circuits
    from circuits.core.model import load_model

    m = load_model("toy", dtype="bfloat16")
    cfg = DiscoverConfig(
        limit=2,
        store_dtype="bfloat16",
        sweep_ks=(1,),
        sweep_seeds=1,
        sweep_rows=1,
        reference_head_rows=1,
        influence_rows=2,
        alphas=(1.0,),
        reference_layers=(0, 1, 2, 3),  # every layer, whatever the time budget would fit on a busy machine
        generation_rows=0,
        figures=False,
        null_seeds=1,
        faithfulness_rows=2,
        faithfulness_seeds=1,
        faithfulness_judge_rows=0,
    )
    summary = discover(m, load_sev(), tmp_path / "run", cfg, progress=False)
    assert summary["influence_method"] == "intervention" and summary["agreement"]["reference_layers"]
    assert len(load_circuits(tmp_path / "run" / "circuits", model=m)) == len(summary["circuits"])
