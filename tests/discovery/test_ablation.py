"""Ablation and enhancement sweeps: records, top beats random, the prefix cache equals full passes, judged generations."""

from __future__ import annotations

import pytest

from circuits.core.hooks import Intervention, run_forward
from circuits.core.sev import load_sev
from circuits.discovery import ablation, components, influence
from circuits.discovery.directions import emotion_directions
from circuits.discovery.store import StoreConfig, build_store


def test_sweep_records_and_top_beats_random(run):
    model, store, dirs = run
    nc = components.neuron_contributions(model, store, dirs)
    cfg = ablation.SweepConfig(ks=(1, 4), modes=("zero", "add"), seeds=2, layers=(model.arch.n_layers - 1,))
    recs = ablation.sweep(model, store, dirs, nc, "neurons", cfg, emotions=["anger", "fear"], progress=False)
    assert len(recs) == 2 * 1 * 2 * 2 * 2
    # zero-ablating the top pro-emotion neurons of the last layer lowers s more than random ones
    top = [r["delta_s"] for r in recs if r["mode"] == "zero" and r["selection"] == "top"]
    rnd = [r["delta_s"] for r in recs if r["mode"] == "zero" and r["selection"] == "random"]
    assert sum(top) < sum(rnd)


def _full_forward_score(model, prompts, v, interventions):
    """Slow reference for the sweep: one full forward pass of every prompt, no KV cache."""
    ids, mask = model.pad_left(prompts)
    got = run_forward(model, ids, mask, interventions, influence.FINAL_STATE, logits_to_keep=0)
    return influence.final_state(got) @ v


@pytest.mark.parametrize("kind", ["neurons", "heads"])
def test_sweep_prefix_cache_equals_full_forward(run, kind):
    """The sweep runs the shared prefix once and only the last token per intervention; every
    record's delta_s must equal the one from full forward passes, for every mode."""
    model, store, dirs = run
    scores = (
        components.neuron_contributions(model, store, dirs)
        if kind == "neurons"
        else components.head_scores_one_pass(model, store, dirs)
    )
    cfg = ablation.SweepConfig(ks=(1, 2), modes=ablation.MODES, seeds=1, batch_size=5)
    emotions = ["sadness", "surprise"]
    recs = ablation.sweep(model, store, dirs, scores, kind, cfg, emotions=emotions, progress=False)
    name = "mlp_post" if kind == "neurons" else "z"
    dmu = ablation.delta_mu(store, name, dirs.emotions)
    mean_act = store.tensor(name)[store.index("emotion")].mean(0)
    v_ref = influence.reference_directions(dirs)
    checked = 0
    for r in recs:
        if r["selection"] != "top":
            continue
        e = dirs.emotions.index(r["emotion"])
        prompts = store.prompts(model, store.index("emotion", r["emotion"]))
        L, u = r["layer"], tuple(r["units"])
        iv = {
            "zero": Intervention(kind, L, "set", u, positions="last"),
            "mean": Intervention(kind, L, "set", u, vector=mean_act[L, list(u)], positions="last"),
            "scale": Intervention(kind, L, "scale", u, factor=cfg.scale_factor, positions="last"),
            "add": Intervention(kind, L, "add", u, vector=dmu[e, L, list(u)], positions="last"),
        }[r["mode"]]
        want = (
            _full_forward_score(model, prompts, v_ref[e], [iv]) - _full_forward_score(model, prompts, v_ref[e], [])
        ).mean()
        assert abs(r["delta_s"] - float(want)) < 1e-4 * max(1.0, abs(float(want))), r
        checked += 1
    assert checked == len(emotions) * model.arch.n_layers * len(ablation.MODES) * 2


@pytest.fixture(scope="module")
def qwen_run(tmp_path_factory, qwen_tiny):
    # the tiny Gemma2 model emits only special tokens under greedy decoding: generations are tested on Qwen2
    store = build_store(qwen_tiny, load_sev(), tmp_path_factory.mktemp("gen"), StoreConfig(limit=4), progress=False)
    dirs = emotion_directions(store)
    return (
        qwen_tiny,
        store,
        components.neuron_contributions(qwen_tiny, store, dirs),
        components.head_scores_one_pass(qwen_tiny, store, dirs),
    )


def _always_anger(texts):
    return [type("Verdict", (), {"label": "anger"})() for _ in texts]


def test_generation_effect_ablation_and_enhancement(qwen_run):
    model, store, nc, hs = qwen_run
    kw = dict(
        k_neurons=8,
        k_heads=1,
        rows_per_emotion=3,
        seeds=2,
        max_new_tokens=6,
        progress=False,
        judge=_always_anger,
        return_replies=True,
    )
    res = ablation.generation_effect(model, store, ["anger", "fear"], nc, hs, enhance="add", fluency=None, **kw)
    keys = {"baseline", "top", "random", "enhance_baseline", "enhanced_top", "enhanced_random"}
    assert set(res) == {"anger", "fear", "mean", "broken_share", "config"} and set(res["mean"]) == keys
    assert set(res["broken_share"]) <= keys and set(res["broken_share"].values()) == {0.0}  # no check
    from circuits.judges.fluency import FluencyCheck, FluencyRule

    every = FluencyCheck(FluencyRule(min_words=0, min_function_share=2.0))  # flags every reply as broken
    broken = ablation.generation_effect(model, store, ["anger"], nc, hs, enhance="add", fluency=every, **kw)
    assert set(broken["anger"][k] for k in keys) == {0.0} and set(broken["broken_share"].values()) == {1.0}
    # known answer with a judge that calls everything anger: accuracy 1 for anger, 0 for fear
    assert {k: res["anger"][k] for k in keys} == dict.fromkeys(keys, 1.0)
    assert {k: res["fear"][k] for k in keys} == dict.fromkeys(keys, 0.0)
    assert res["mean"] == dict.fromkeys(keys, 0.5)
    assert res["config"]["enhance"] == "add" and res["config"]["enhance_factor"] == 1.0
    for emotion in ("anger", "fear"):
        rep = res[emotion]["replies"]
        assert set(rep) == keys
        assert all(len(rep[k]) == 3 for k in ("baseline", "top", "enhance_baseline", "enhanced_top"))
        assert len(rep["random"]) == len(rep["enhanced_random"]) == 2 and all(len(r) == 3 for r in rep["random"])
        # the neutral prompt is used for enhancement, the emotion prompt for ablation
        assert rep["enhance_baseline"] != rep["baseline"]
        # zeroing the top units changes the emotional replies
        assert rep["top"] != rep["baseline"]
    # adding (a strong multiple of) Delta-mu to the top units changes the calm replies
    strong = ablation.generation_effect(
        model, store, ["anger", "fear"], nc, hs, enhance="add", enhance_factor=20.0, **kw
    )
    for emotion in ("anger", "fear"):
        rep = strong[emotion]["replies"]
        assert rep["enhanced_top"] != rep["enhance_baseline"]
    # controls: a zero-strength enhancement leaves every reply as it was
    for mode, factor in (("add", 0.0), ("scale", 1.0)):
        ctl = ablation.generation_effect(model, store, ["fear"], nc, hs, enhance=mode, enhance_factor=factor, **kw)
        rep = ctl["fear"]["replies"]
        assert rep["enhanced_top"] == rep["enhance_baseline"]
        assert rep["enhanced_random"] == [rep["enhance_baseline"]] * 2
    scaled = ablation.generation_effect(
        model, store, ["fear"], nc, hs, enhance="scale", enhance_factor=4.0, enhance_prompt="emotion", **kw
    )
    rep = scaled["fear"]["replies"]
    assert rep["enhance_baseline"] == rep["baseline"] and rep["enhanced_top"] != rep["baseline"]
    old = ablation.generation_effect(model, store, ["fear"], nc, hs, enhance=None, **kw)
    assert set(old["mean"]) == {"baseline", "top", "random"}  # the zero-ablation keys alone, as before
    assert old["fear"]["replies"]["top"] == res["fear"]["replies"]["top"]
    with pytest.raises(ValueError, match="enhance must be"):
        ablation.generation_effect(model, store, ["fear"], nc, hs, enhance="double", **kw)


@pytest.mark.parametrize("kind", ["neurons", "heads"])
def test_stacked_sweep_equals_one_pass_per_pick(run, kind):
    """The top and random picks stacked as rows of one pass per batch give every record of the loop with
    one pass per pick (same units, delta_s to float rounding), in every mode, with a last batch shorter
    than the others."""
    model, store, dirs = run
    scores = (
        components.neuron_contributions(model, store, dirs)
        if kind == "neurons"
        else components.head_scores_one_pass(model, store, dirs)
    )
    cfg = ablation.SweepConfig(ks=(1, 2), modes=ablation.MODES, seeds=2, batch_size=5)
    emotions = ["happiness", "disgust"]
    assert len(store.index("emotion", "happiness")) % 5 != 0  # a short last batch is stacked too
    fast = ablation.sweep(model, store, dirs, scores, kind, cfg, emotions=emotions, progress=False, stacked=True)
    ref = ablation.sweep(model, store, dirs, scores, kind, cfg, emotions=emotions, progress=False, stacked=False)
    assert len(fast) == len(ref) == 2 * model.arch.n_layers * 4 * 2 * 2
    for a, b in zip(fast, ref):
        assert {k: v for k, v in a.items() if not k.startswith("delta_s")} == {
            k: v for k, v in b.items() if not k.startswith("delta_s")
        }
        assert a["delta_s"] == pytest.approx(b["delta_s"], rel=1e-4, abs=1e-5)
        assert a.get("delta_s_seeds", [0, 0]) == pytest.approx(b.get("delta_s_seeds", [0, 0]), rel=1e-4, abs=1e-5)
    assert max(abs(r["delta_s"]) for r in ref) > 1e-3  # the edits move the score: not zeros compared
