"""Interventions as data turned into hooks: every site and op changes the output as specified."""

from __future__ import annotations

import pytest
import torch

from circuits.core.hooks import Intervention, make_hooks
from circuits.discovery.store import last_token_activations


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
