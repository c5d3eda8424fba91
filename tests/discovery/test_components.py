"""Neuron contributions and head scores: exact sums, one pass equal to the per-head ablation reference."""

from __future__ import annotations

import torch
from scipy.stats import spearmanr

from circuits.discovery import components


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
                bias = (
                    bias
                    * model.post_norm_gain(layer, "mlp").detach().float()
                    / store.tensor("mlp_post_scale")[idx, layer, None]
                )
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
