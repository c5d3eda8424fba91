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
