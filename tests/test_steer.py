"""Steering: intervention positions during generation, circuit modulation, baselines, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.circuit import assemble_circuit
from circuits.evaluate import EvalConfig, distinct_n, evaluate_methods, reply_perplexity
from circuits.generate import GenerationSettings, generate
from circuits.intervene import Intervention, make_hooks
from circuits.sev import DEFAULT_TEST, load_sev
from circuits.steer import (FingerprintMismatch, circuit_modulation, direction_steering, emotion_vector_steering,
                            emotion_vectors)
from circuits.store import StoreConfig, build_store
from circuits.directions import emotion_directions


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
        m.hf_model.generate(**dict(zip(("input_ids", "attention_mask"), m.pad_left(_prompts(m)))), max_new_tokens=4,
                            min_new_tokens=4, do_sample=False, pad_token_id=m.pad_id)
    assert seen[0] > 1 and seen[1:] == [1, 1, 1]
    for positions, expect in [("last", [True, False, False, False]), ("generated", [False, True, True, True]),
                              ("last+generated", [True, True, True, True]), ("prompt", [True, False, False, False])]:
        iv = Intervention("resid_post", 0, "set", vector=torch.zeros(m.arch.d_model), positions=positions)
        touched = []
        hooks = make_hooks(m, [iv])

        def check(x, hook):
            touched.append(bool((x[:, -1] == 0).all()))
            return x

        with m.bridge.hooks(fwd_hooks=hooks + [(m.hooks.resid_post(0), check)]):
            m.hf_model.generate(**dict(zip(("input_ids", "attention_mask"), m.pad_left(_prompts(m)))),
                                max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=m.pad_id)
        assert touched == expect, positions


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, qwen_tiny):
    store = build_store(qwen_tiny, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=3), progress=False)
    dirs = emotion_directions(store)
    L, E = qwen_tiny.arch.n_layers, 6
    a = qwen_tiny.arch
    g = torch.Generator().manual_seed(0)
    circuit = assemble_circuit(
        "anger", influence_attn=torch.ones(L), influence_mlp=torch.ones(L),
        neuron_scores=torch.randn(L, a.d_mlp, generator=g), head_scores=torch.randn(L, a.n_heads, generator=g),
        delta_mu_mlp=torch.randn(L, a.d_mlp, generator=g), delta_mu_heads=torch.randn(L, a.n_heads, a.d_head, generator=g),
        model_info={"name": qwen_tiny.name, "fingerprint": qwen_tiny.fingerprint, "arch": a})
    return store, dirs, circuit


def test_circuit_modulation_interventions_and_effect(qwen_tiny, tiny_models, tiny_run, tmp_path):
    store, dirs, circuit = tiny_run
    ivs = circuit_modulation(circuit, qwen_tiny, lam=3.0)
    assert {iv.site for iv in ivs} == {"neurons", "heads"}
    assert all(iv.positions == ("last+generated" if iv.site == "neurons" else "all") for iv in ivs)
    assert sum(len(iv.index) for iv in ivs if iv.site == "neurons") == circuit.n_neurons
    gen = GenerationSettings(max_new_tokens=6)
    base = generate(qwen_tiny, _prompts(qwen_tiny), gen, progress=False)
    steered = generate(qwen_tiny, _prompts(qwen_tiny), gen, hooks=lambda idx: make_hooks(qwen_tiny, ivs), progress=False)
    assert steered != base
    assert generate(qwen_tiny, _prompts(qwen_tiny), gen, progress=False) == base  # hooks were removed
    path = tmp_path / "anger.json"
    circuit.save(path)
    assert len(circuit_modulation(str(path), qwen_tiny)) == len(ivs)  # from the exported file
    with pytest.raises((FingerprintMismatch, ValueError), match="fingerprint"):
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
    assert {iv.positions for iv in emotion_vector_steering(ev, store.emotions, {"fear": 2.0}, positions="last")} == {"last"}
    with pytest.raises(ValueError, match="positions must be one of"):
        circuit_modulation(circuit, qwen_tiny, positions="everywhere")
    # acting on the last prompt token only changes the reply, and differs from acting on every step
    gen = GenerationSettings(max_new_tokens=6)
    base = generate(qwen_tiny, _prompts(qwen_tiny), gen, progress=False)
    at_last = generate(qwen_tiny, _prompts(qwen_tiny), gen, hooks=lambda idx: make_hooks(qwen_tiny, last), progress=False)
    everywhere = generate(qwen_tiny, _prompts(qwen_tiny), gen, hooks=lambda idx: make_hooks(qwen_tiny, paper),
                          progress=False)
    assert at_last != base and at_last != everywhere


def test_direction_and_emotion_vector_steering(qwen_tiny, tiny_run):
    store, dirs, _ = tiny_run
    ivs = direction_steering(dirs, "fear", [0, 1], alpha=8.0, model=qwen_tiny)
    assert [iv.layer for iv in ivs] == [0, 1] and ivs[0].op == "add_rms"
    ev = emotion_vectors(qwen_tiny, store, progress=False)
    assert ev.shape == (6, qwen_tiny.arch.n_layers, qwen_tiny.arch.d_model)
    one = emotion_vector_steering(ev, store.emotions, {"fear": 2.0})
    torch.testing.assert_close(one[1].vector, 2.0 * ev[store.emotions.index("fear"), 1])
    mix = emotion_vector_steering(ev, store.emotions, {"fear": 1.0, "anger": -1.0})
    torch.testing.assert_close(mix[0].vector, ev[3, 0] - ev[0, 0])
    base = emotion_vector_steering(ev, store.emotions, {}, base=1.0)
    torch.testing.assert_close(base[0].vector, ev[:, 0].mean(0))
    assert len(one) == qwen_tiny.arch.n_layers and all(iv.site == "attn_out" for iv in one)


def test_distinct_and_perplexity(qwen_tiny):
    assert distinct_n(["a b a b", "a b"]) == pytest.approx(2 / 4)
    assert distinct_n(["one"]) == 0.0
    m = qwen_tiny
    prompt = m.chat_ids("Be brief.", "Hello.")
    reply = "I took the bus"
    ppl = reply_perplexity(m, [prompt, m.chat_ids("x", "a much longer user message here")], [reply, reply])
    ids = prompt + m.tokenizer(reply, add_special_tokens=False)["input_ids"] + [m.tokenizer.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(m.hf_model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    n = len(ids) - len(prompt)
    manual = math.exp(-logp[len(prompt) - 1:-1].gather(-1, torch.tensor(ids[len(prompt):])[:, None]).mean().item())
    assert ppl[0] == pytest.approx(manual, rel=1e-4)


def test_evaluate_methods_schema(qwen_tiny, tiny_run):
    store, dirs, circuit = tiny_run
    cfg = EvalConfig(methods=("prompting", "neutral", "direction", "circuit"), emotions=("anger",), limit=1,
                     max_new_tokens=5, min_new_tokens=2)
    ivs = {"direction": lambda e: direction_steering(dirs, e, [1], 4.0),
           "circuit": lambda e: circuit_modulation(circuit, qwen_tiny)}
    res = evaluate_methods(qwen_tiny, load_sev(DEFAULT_TEST), ivs, cfg, progress=False)
    assert set(res["methods"]) == set(cfg.methods)
    for m in res["methods"].values():
        assert m["n"] == 3 and 0 <= m["accuracy"] <= 1 and set(m["per_valence"]) == {"positive", "neutral", "negative"}
        assert m["perplexity"] > 1 and set(m["per_emotion"]) == {"anger"}
