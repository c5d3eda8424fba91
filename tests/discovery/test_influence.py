"""Sublayer influence: the one-pass gradient estimate agrees with the intervention measure."""

from __future__ import annotations

import torch
from scipy.stats import spearmanr

from circuits.discovery import influence


def test_influence_gradient_agrees_with_intervention(run):
    model, store, dirs = run
    ref = influence.influence_intervention(model, store, dirs, progress=False)
    grad = influence.influence_gradient(model, store, dirs, progress=False)
    assert spearmanr(ref.flatten(), grad.flatten())[0] >= 0.9
    norm = influence.normalise(ref)
    torch.testing.assert_close(norm.sum(dim=(0, 1)), torch.ones(6))
