"""Emotion directions: the centred estimate on a known answer, shapes and the evidence."""

from __future__ import annotations

import torch

from circuits.discovery.directions import (centred_directions, cross_context_cosine, pca_by_layer, probe_accuracy)


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
