"""Shared fixtures of the steering tests: a small store, its directions and a random circuit on tiny Qwen2."""

from __future__ import annotations

import pytest
import torch

from circuits.circuit import assemble_circuit
from circuits.core.sev import load_sev
from circuits.discovery.directions import emotion_directions
from circuits.discovery.store import StoreConfig, build_store


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, qwen_tiny):
    store = build_store(qwen_tiny, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=3), progress=False)
    dirs = emotion_directions(store)
    L, E = qwen_tiny.arch.n_layers, 6
    a = qwen_tiny.arch
    g = torch.Generator().manual_seed(0)
    circuit = assemble_circuit(
        "anger",
        influence_attn=torch.ones(L),
        influence_mlp=torch.ones(L),
        neuron_scores=torch.randn(L, a.d_mlp, generator=g),
        head_scores=torch.randn(L, a.n_heads, generator=g),
        delta_mu_mlp=torch.randn(L, a.d_mlp, generator=g),
        delta_mu_heads=torch.randn(L, a.n_heads, a.d_head, generator=g),
        model_info={"name": qwen_tiny.name, "fingerprint": qwen_tiny.fingerprint, "arch": a},
    )
    return store, dirs, circuit
