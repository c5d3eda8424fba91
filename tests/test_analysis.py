"""Directions, neuron/head scores, DLA, influence and sweeps: exact invariants and agreements."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from circuits import ablate, components, dla, influence
from circuits.directions import (centred_directions, cross_context_cosine, emotion_directions, pca_by_layer,
                                 probe_accuracy)
from circuits.intervene import Intervention, make_hooks
from circuits.sev import load_sev
from circuits.store import StoreConfig, build_store, last_token_activations


@pytest.fixture(scope="module", params=["qwen2", "gemma2"])
def run(request, tmp_path_factory, tiny_models):
    model = tiny_models[request.param]
    store = build_store(model, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=4), progress=False)
    return model, store, emotion_directions(store)


def test_centred_directions_known_answer():
    # 2 groups x 3 emotions in 2-d: group offsets cancel, emotion offsets survive
    emo = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -2.0]])
    groups = torch.tensor([[10.0, 5.0], [-3.0, 7.0]])
    h = groups[:, None] + emo[None]  # [G, E, d]
    unit, diff = centred_directions(h)
    torch.testing.assert_close(diff, emo)
    torch.testing.assert_close(unit, emo / emo.norm(dim=-1, keepdim=True))


def test_directions_shapes_and_evidence(run):
    model, store, dirs = run
    assert dirs.unit.shape == (2, model.arch.n_layers, 6, model.arch.d_model)
    torch.testing.assert_close(dirs.unit.norm(dim=-1), torch.ones(2, model.arch.n_layers, 6))
    cos = cross_context_cosine(store, "valence")
    assert cos["cosine"].shape == (3, 2, model.arch.n_layers, 6) and len(cos["pairs"]) == 3
    assert probe_accuracy(store, "mlp", folds=2).shape == (model.arch.n_layers,)
    pca = pca_by_layer(store)
    assert pca["coords"].shape[:2] == (model.arch.n_layers, dirs.n_groups * 6)


def test_neuron_contributions_sum_to_mlp_projection(run):
    """Sum over neurons of a * beta + b_out.v equals the MLP output's projection (exactly)."""
    model, store, dirs = run
    nc = components.neuron_contributions(model, store, dirs)
    for layer in range(model.arch.n_layers):
        for e, emotion in enumerate(dirs.emotions):
            idx = store.index("emotion", emotion)
            v = dirs.at("mlp")[layer, e]
            mlp_out = store.tensor("resid_post")[idx, layer] - store.tensor("resid_mid")[idx, layer]
            bias = model.b_out(layer).detach().float()
            if model.arch.post_norms:
                bias = bias * model.post_norm_gain(layer, "mlp").detach().float() / store.tensor(
                    "mlp_post_scale")[idx, layer, None]
            expected = ((mlp_out - bias) @ v).mean()
            torch.testing.assert_close(nc[layer, e].sum(), expected, atol=1e-4, rtol=1e-4)


def test_head_one_pass_equals_ablation_reference(run):
    model, store, dirs = run
    fast = components.head_scores_one_pass(model, store, dirs)
    ref = components.head_scores_reference(model, store, dirs, progress=False)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-3)
    assert spearmanr(fast.flatten(), ref.flatten())[0] >= 0.95
    direct = components.head_direct_projection(model, store, dirs)
    assert spearmanr(direct.flatten(), ref.flatten())[0] > 0.5  # first-order version is only close


def test_dla_shares_sum_to_score_and_logits(run):
    model, store, dirs = run
    out = dla.direct_logit_attribution(model, store, dirs)
    v_ref = influence.reference_directions(dirs)
    ldirs, lbias = dla.logit_directions(model, dirs.emotions)
    for e, emotion in enumerate(dirs.emotions):
        idx = store.index("emotion", emotion)
        s = (store.final_state(idx) @ v_ref[e]).mean()
        torch.testing.assert_close(out["score"][:, e].sum(), s, atol=1e-4, rtol=1e-4)
        # the logit target from the model's own logits (no soft-cap on these models' raw logits path)
        got = {}
        prompts = store.prompts(model, idx)
        ids, mask = model.pad_left(prompts)
        with torch.no_grad():
            logits = model.hf_model(input_ids=ids, attention_mask=mask).logits[:, -1].float()
        if model.logit_softcap:
            cap = model.logit_softcap
            logits = torch.atanh(logits / cap) * cap
        toks = dla.emotion_token_ids(model, dirs.emotions)
        every = sorted({t for ids_ in toks.values() for t in ids_})
        target = (logits[:, toks[emotion]].mean(1) - logits[:, every].mean(1)).mean()
        torch.testing.assert_close(out["logit"][:, e].sum(), target, atol=2e-3, rtol=1e-3)
    assert dla.logit_lens(model, store, dirs.emotions).shape == (model.arch.n_layers, 6)


def test_influence_gradient_agrees_with_intervention(run):
    model, store, dirs = run
    ref = influence.influence_intervention(model, store, dirs, progress=False)
    grad = influence.influence_gradient(model, store, dirs, progress=False)
    assert spearmanr(ref.flatten(), grad.flatten())[0] >= 0.9
    norm = influence.normalise(ref)
    torch.testing.assert_close(norm.sum(dim=(0, 1)), torch.ones(6))


def test_interventions_change_outputs_as_specified(qwen_tiny):
    m = qwen_tiny
    prompt = [m.chat_ids("Always reply in fear.", "I took the bus.")]
    base = last_token_activations(m, prompt)
    zero = Intervention("neurons", 1, "set", (3, 5), positions="last")
    got = last_token_activations(m, prompt, make_hooks(m, [zero]))
    assert got["mlp_post"][0, 1, [3, 5]].abs().max() == 0
    assert not torch.allclose(got["resid_post"][0, 1], base["resid_post"][0, 1])
    torch.testing.assert_close(got["resid_post"][0, 0], base["resid_post"][0, 0])  # earlier layer untouched
    vec = torch.randn(m.arch.d_model)
    add = Intervention("resid_mid", 0, "add", vector=vec, factor=2.0, positions="last")
    got = last_token_activations(m, prompt, make_hooks(m, [add]))
    torch.testing.assert_close(got["resid_mid"][0, 0], base["resid_mid"][0, 0] + 2 * vec, atol=1e-5, rtol=1e-5)
    heads = Intervention("heads", 0, "scale", (1,), factor=0.0, positions="all")
    got = last_token_activations(m, prompt, make_hooks(m, [heads]))
    assert got["z"][0, 0, 1].abs().max() == 0
    again = Intervention.from_dict(add.to_dict())
    assert again == add and torch.equal(again.vector, vec)
    with pytest.raises(ValueError, match="out of range"):
        make_hooks(m, [Intervention("heads", 0, "set", (99,))])


def test_sweep_records_and_top_beats_random(run):
    model, store, dirs = run
    nc = components.neuron_contributions(model, store, dirs)
    cfg = ablate.SweepConfig(ks=(1, 4), modes=("zero", "add"), seeds=2, layers=(model.arch.n_layers - 1,))
    recs = ablate.sweep(model, store, dirs, nc, "neurons", cfg, emotions=["anger", "fear"], progress=False)
    assert len(recs) == 2 * 1 * 2 * 2 * 2
    # zero-ablating the top pro-emotion neurons of the last layer lowers s more than random ones
    top = [r["delta_s"] for r in recs if r["mode"] == "zero" and r["selection"] == "top"]
    rnd = [r["delta_s"] for r in recs if r["mode"] == "zero" and r["selection"] == "random"]
    assert sum(top) < sum(rnd)


def _full_forward_score(model, prompts, v, interventions):
    """Slow reference for the sweep: one full forward pass of every prompt, no KV cache."""
    ids, mask = model.pad_left(prompts)
    got: dict = {}
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=make_hooks(model, interventions)
                                             + influence.final_state_hooks(model, got)):
        model.hf_model(input_ids=ids, attention_mask=mask, use_cache=False)
    return (got["resid"] / got["scale"]).float() @ v


@pytest.mark.parametrize("kind", ["neurons", "heads"])
def test_sweep_prefix_cache_equals_full_forward(run, kind):
    """The sweep runs the shared prefix once and only the last token per intervention; every
    record's delta_s must equal the one from full forward passes, for every mode."""
    model, store, dirs = run
    scores = (components.neuron_contributions(model, store, dirs) if kind == "neurons"
              else components.head_scores_one_pass(model, store, dirs))
    cfg = ablate.SweepConfig(ks=(1, 2), modes=ablate.MODES, seeds=1, batch_size=5)
    emotions = ["sadness", "surprise"]
    recs = ablate.sweep(model, store, dirs, scores, kind, cfg, emotions=emotions, progress=False)
    name = "mlp_post" if kind == "neurons" else "z"
    dmu = ablate.delta_mu(store, name, dirs.emotions)
    mean_act = store.tensor(name)[store.index("emotion")].mean(0)
    v_ref = influence.reference_directions(dirs)
    checked = 0
    for r in recs:
        if r["selection"] != "top":
            continue
        e = dirs.emotions.index(r["emotion"])
        prompts = store.prompts(model, store.index("emotion", r["emotion"]))
        L, u = r["layer"], tuple(r["units"])
        iv = {"zero": Intervention(kind, L, "set", u, positions="last"),
              "mean": Intervention(kind, L, "set", u, vector=mean_act[L, list(u)], positions="last"),
              "scale": Intervention(kind, L, "scale", u, factor=cfg.scale_factor, positions="last"),
              "add": Intervention(kind, L, "add", u, vector=dmu[e, L, list(u)], positions="last")}[r["mode"]]
        want = (_full_forward_score(model, prompts, v_ref[e], [iv])
                - _full_forward_score(model, prompts, v_ref[e], [])).mean()
        assert abs(r["delta_s"] - float(want)) < 1e-4 * max(1.0, abs(float(want))), r
        checked += 1
    assert checked == len(emotions) * model.arch.n_layers * len(ablate.MODES) * 2


def test_neuron_attribution_sums_to_the_dla_mlp_share(run):
    """Neuron shares of one MLP + its b_out share == that MLP's DLA share (score and logit targets),
    for every layer and emotion; with top_k, the kept neurons + the rest + the bias do too."""
    model, store, dirs = run
    out = dla.direct_logit_attribution(model, store, dirs)
    for layer in range(model.arch.n_layers):
        row = out["labels"].index(f"m{layer}")
        full = dla.neuron_attribution(model, store, dirs, layer)
        assert full["score"].shape == full["logit"].shape == (6, model.arch.d_mlp)
        assert torch.equal(full["neurons"], torch.arange(model.arch.d_mlp).expand(6, -1))
        assert torch.equal(full["rest_score"], torch.zeros(6))
        torch.testing.assert_close(full["score"].sum(1) + full["bias_score"], out["score"][row], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(full["logit"].sum(1) + full["bias_logit"], out["logit"][row], atol=1e-4, rtol=1e-4)
        top = dla.neuron_attribution(model, store, dirs, layer, top_k=5)
        assert top["score"].shape == top["neurons"].shape == (6, 5)
        torch.testing.assert_close(top["score"], full["score"].topk(5, dim=1).values)
        torch.testing.assert_close(top["score"].sum(1) + top["rest_score"] + top["bias_score"], out["score"][row],
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(top["logit"].sum(1) + top["rest_logit"] + top["bias_logit"], out["logit"][row],
                                   atol=1e-4, rtol=1e-4)
        by_logit = dla.neuron_attribution(model, store, dirs, layer, top_k=3, rank_by="logit", absolute=True)
        torch.testing.assert_close(by_logit["logit"].abs(), full["logit"].abs().topk(3, dim=1).values)
    with pytest.raises(ValueError, match="out of range"):
        dla.neuron_attribution(model, store, dirs, model.arch.n_layers)


def test_neuron_attribution_matches_slow_reference(run):
    """Against an explicit loop over rows and neurons, on activations from fresh unpadded forward
    passes (not the store): a_n * W_out[n] (post-norm: * gain / scale), / final scale, . target."""
    model, store, dirs = run
    layer, emotion = model.arch.n_layers - 1, "fear"
    e = dirs.emotions.index(emotion)
    got = dla.neuron_attribution(model, store, dirs, layer, emotions=[emotion])
    v = influence.reference_directions(dirs)[e]
    u = dla.logit_directions(model, [emotion])[0][0]
    W = model.W_out(layer).detach().float()
    gain = model.post_norm_gain(layer, "mlp").detach().float() if model.arch.post_norms else torch.ones(W.shape[1])
    idx = store.index("emotion", emotion)
    score = torch.zeros(model.arch.d_mlp, dtype=torch.float64)
    logit = torch.zeros(model.arch.d_mlp, dtype=torch.float64)
    for i in idx.tolist():
        acts = last_token_activations(model, store.prompts(model, [i]))
        denom = acts["final_scale"][0, 0]
        if model.arch.post_norms:
            denom = denom * acts["mlp_post_scale"][0, layer]
        for n in range(model.arch.d_mlp):
            write = acts["mlp_post"][0, layer, n] * W[n] * gain / denom
            score[n] += float(write @ v) / len(idx)
            logit[n] += float(write @ u) / len(idx)
    torch.testing.assert_close(got["score"][0], score.float(), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(got["logit"][0], logit.float(), atol=2e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def qwen_run(tmp_path_factory, qwen_tiny):
    # the tiny Gemma2 model emits only special tokens under greedy decoding: generations are tested on Qwen2
    store = build_store(qwen_tiny, load_sev(), tmp_path_factory.mktemp("gen"), StoreConfig(limit=4), progress=False)
    dirs = emotion_directions(store)
    return qwen_tiny, store, components.neuron_contributions(qwen_tiny, store, dirs), \
        components.head_scores_one_pass(qwen_tiny, store, dirs)


def _always_anger(texts):
    return [type("Verdict", (), {"label": "anger"})() for _ in texts]


def test_generation_effect_ablation_and_enhancement(qwen_run):
    model, store, nc, hs = qwen_run
    kw = dict(k_neurons=8, k_heads=1, rows_per_emotion=3, seeds=2, max_new_tokens=6, progress=False,
              judge=_always_anger, return_replies=True)
    res = ablate.generation_effect(model, store, ["anger", "fear"], nc, hs, enhance="add", **kw)
    keys = {"baseline", "top", "random", "enhance_baseline", "enhanced_top", "enhanced_random"}
    assert set(res) == {"anger", "fear", "mean", "config"} and set(res["mean"]) == keys
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
    strong = ablate.generation_effect(model, store, ["anger", "fear"], nc, hs, enhance="add", enhance_factor=20.0,
                                      **kw)
    for emotion in ("anger", "fear"):
        rep = strong[emotion]["replies"]
        assert rep["enhanced_top"] != rep["enhance_baseline"]
    # controls: a zero-strength enhancement leaves every reply as it was
    for mode, factor in (("add", 0.0), ("scale", 1.0)):
        ctl = ablate.generation_effect(model, store, ["fear"], nc, hs, enhance=mode, enhance_factor=factor, **kw)
        rep = ctl["fear"]["replies"]
        assert rep["enhanced_top"] == rep["enhance_baseline"]
        assert rep["enhanced_random"] == [rep["enhance_baseline"]] * 2
    scaled = ablate.generation_effect(model, store, ["fear"], nc, hs, enhance="scale", enhance_factor=4.0,
                                      enhance_prompt="emotion", **kw)
    rep = scaled["fear"]["replies"]
    assert rep["enhance_baseline"] == rep["baseline"] and rep["enhanced_top"] != rep["baseline"]
    old = ablate.generation_effect(model, store, ["fear"], nc, hs, enhance=None, **kw)
    assert set(old["mean"]) == {"baseline", "top", "random"}  # the zero-ablation keys alone, as before
    assert old["fear"]["replies"]["top"] == res["fear"]["replies"]["top"]
    with pytest.raises(ValueError, match="enhance must be"):
        ablate.generation_effect(model, store, ["fear"], nc, hs, enhance="double", **kw)


def test_discover_writes_scores_atomically(tmp_path, qwen_tiny, monkeypatch):
    """A failure while writing scores.safetensors leaves the previous file intact and no temp file."""
    from safetensors.torch import load_file, save_file

    from circuits import discover as discover_mod

    out = tmp_path / "run"
    out.mkdir()
    save_file({"neurons": torch.arange(3.0)}, str(out / "scores.safetensors"))
    before = (out / "scores.safetensors").read_bytes()

    def failing_save(tensors, path):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(discover_mod, "save_file", failing_save)
    cfg = discover_mod.DiscoverConfig(limit=2, reference_head_rows=1, figures=False)
    with pytest.raises(OSError, match="disk full"):
        discover_mod.discover(qwen_tiny, load_sev(), out, cfg, progress=False)
    assert (out / "directions.safetensors").exists()  # the run got as far as the scores
    assert (out / "scores.safetensors").read_bytes() == before
    torch.testing.assert_close(load_file(str(out / "scores.safetensors"))["neurons"], torch.arange(3.0))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
