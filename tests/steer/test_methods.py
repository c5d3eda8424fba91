"""Steering methods: circuit modulation, positions, direction and Emotion-Vector steering."""

from __future__ import annotations

import pytest
import torch

from circuits.core.artifacts import ModelMismatch
from circuits.core.generate import GenerationSettings, generate
from circuits.steer.methods import (
    circuit_modulation,
    direction_steering,
    emotion_vector_steering,
    emotion_vectors,
    emotion_vectors_by_pass,
)


def _prompts(m):
    return [m.chat_ids("Keep the reply short.", "I took the bus."), m.chat_ids("Be brief.", "My order arrived today.")]


def test_circuit_modulation_interventions_and_effect(qwen_tiny, tiny_models, tiny_run, tmp_path):
    store, dirs, circuit = tiny_run
    ivs = circuit_modulation(circuit, qwen_tiny, lam=3.0)
    assert {iv.site for iv in ivs} == {"neurons", "heads"}
    assert all(iv.positions == ("last+generated" if iv.site == "neurons" else "all") for iv in ivs)
    assert sum(len(iv.index) for iv in ivs if iv.site == "neurons") == circuit.n_neurons
    gen = GenerationSettings(max_new_tokens=6)
    base = generate(qwen_tiny, _prompts(qwen_tiny), gen, progress=False)
    steered = generate(qwen_tiny, _prompts(qwen_tiny), gen, interventions=ivs, progress=False)
    assert steered != base
    assert generate(qwen_tiny, _prompts(qwen_tiny), gen, progress=False) == base  # hooks were removed
    path = tmp_path / "anger.json"
    circuit.save(path)
    assert len(circuit_modulation(str(path), qwen_tiny)) == len(ivs)  # from the exported file
    with pytest.raises((ModelMismatch, ValueError), match="fingerprint"):
        circuit_modulation(circuit, tiny_models["llama"])
    scaled = circuit_modulation(circuit, qwen_tiny, mode="scale", factor=2.0)
    assert all(iv.op == "scale" and iv.factor == 2.0 for iv in scaled)


def test_steering_positions_last_acts_on_the_last_prompt_token_only(qwen_tiny, tiny_run):
    store, dirs, circuit = tiny_run
    paper = circuit_modulation(circuit, qwen_tiny, lam=3.0)
    last = circuit_modulation(circuit, qwen_tiny, lam=3.0, positions="last")
    assert [(iv.site, iv.layer, iv.index) for iv in last] == [(iv.site, iv.layer, iv.index) for iv in paper]
    assert {iv.positions for iv in last} == {"last"}
    ev = torch.randn(6, qwen_tiny.arch.n_layers, qwen_tiny.arch.d_model)
    assert {iv.positions for iv in direction_steering(dirs, "fear", [0, 1], positions="last")} == {"last"}
    assert {iv.positions for iv in emotion_vector_steering(ev, store.emotions, {"fear": 2.0})} == {"last+generated"}
    assert {iv.positions for iv in emotion_vector_steering(ev, store.emotions, {"fear": 2.0}, positions="last")} == {
        "last"
    }
    with pytest.raises(ValueError, match="positions must be one of"):
        circuit_modulation(circuit, qwen_tiny, positions="everywhere")
    # acting on the last prompt token only changes the reply, and differs from acting on every step
    gen = GenerationSettings(max_new_tokens=6)
    base = generate(qwen_tiny, _prompts(qwen_tiny), gen, progress=False)
    at_last = generate(qwen_tiny, _prompts(qwen_tiny), gen, interventions=last, progress=False)
    everywhere = generate(qwen_tiny, _prompts(qwen_tiny), gen, interventions=paper, progress=False)
    assert at_last != base and at_last != everywhere


def test_direction_and_emotion_vector_steering(qwen_tiny, tiny_run):
    store, dirs, _ = tiny_run
    ivs = direction_steering(dirs, "fear", [0, 1], alpha=8.0, model=qwen_tiny)
    assert [iv.layer for iv in ivs] == [0, 1] and ivs[0].op == "add_rms"
    ev = emotion_vectors(qwen_tiny, store, progress=False)
    assert ev.shape == (6, qwen_tiny.arch.n_layers, qwen_tiny.arch.d_model)
    # read from the store's own pass, equal to a second pass over its prompts (the slow reference)
    assert "attn_mean" in store.meta["tensors"]
    torch.testing.assert_close(ev, emotion_vectors_by_pass(qwen_tiny, store, progress=False), rtol=1e-4, atol=1e-5)
    one = emotion_vector_steering(ev, store.emotions, {"fear": 2.0})
    torch.testing.assert_close(one[1].vector, 2.0 * ev[store.emotions.index("fear"), 1])
    mix = emotion_vector_steering(ev, store.emotions, {"fear": 1.0, "anger": -1.0})
    torch.testing.assert_close(mix[0].vector, ev[3, 0] - ev[0, 0])
    base = emotion_vector_steering(ev, store.emotions, {}, base=1.0)
    torch.testing.assert_close(base[0].vector, ev[:, 0].mean(0))
    assert len(one) == qwen_tiny.arch.n_layers and all(iv.site == "attn_out" for iv in one)
