"""Hooks during generation: prefill sees the whole prompt, then one position per step; positions select what changes."""

from __future__ import annotations

import torch

from circuits.core.generate import GenerationSettings
from circuits.core.hooks import Intervention, make_hooks


def _prompts(m):
    return [m.chat_ids("Keep the reply short.", "I took the bus."), m.chat_ids("Be brief.", "My order arrived today.")]


def test_hook_positions_during_generation(qwen_tiny):
    """Prefill sees the whole prompt, then one position per step; positions select what changes."""
    m = qwen_tiny
    seen = []

    def spy(x, hook):
        seen.append(x.shape[1])
        return x

    gen = GenerationSettings(max_new_tokens=4, batch_size=2)
    with m.bridge.hooks(fwd_hooks=[(m.hooks.resid_post(0), spy)]):
        m.hf_model.generate(
            **dict(zip(("input_ids", "attention_mask"), m.pad_left(_prompts(m)))),
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=m.pad_id,
        )
    assert seen[0] > 1 and seen[1:] == [1, 1, 1]
    for positions, expect in [
        ("last", [True, False, False, False]),
        ("generated", [False, True, True, True]),
        ("last+generated", [True, True, True, True]),
        ("prompt", [True, False, False, False]),
    ]:
        iv = Intervention("resid_post", 0, "set", vector=torch.zeros(m.arch.d_model), positions=positions)
        touched = []
        hooks = make_hooks(m, [iv])

        def check(x, hook):
            touched.append(bool((x[:, -1] == 0).all()))
            return x

        with m.bridge.hooks(fwd_hooks=hooks + [(m.hooks.resid_post(0), check)]):
            m.hf_model.generate(
                **dict(zip(("input_ids", "attention_mask"), m.pad_left(_prompts(m)))),
                max_new_tokens=4,
                min_new_tokens=4,
                do_sample=False,
                pad_token_id=m.pad_id,
            )
        assert touched == expect, positions
