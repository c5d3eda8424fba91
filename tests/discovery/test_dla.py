"""Direct logit attribution: shares sum to the score and the logits; neuron attribution against the DLA and a slow loop."""

from __future__ import annotations

import pytest
import torch

from circuits.discovery import dla, influence
from circuits.discovery.store import last_token_activations


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
        torch.testing.assert_close(
            top["score"].sum(1) + top["rest_score"] + top["bias_score"], out["score"][row], atol=1e-4, rtol=1e-4
        )
        torch.testing.assert_close(
            top["logit"].sum(1) + top["rest_logit"] + top["bias_logit"], out["logit"][row], atol=1e-4, rtol=1e-4
        )
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
