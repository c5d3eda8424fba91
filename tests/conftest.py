"""Shared fixtures: tiny random-init models of every supported architecture, booted offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from circuits.toy.tiny import ARCHITECTURES, build_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """arch -> directory of a saved tiny random model (2 layers, d_model 64, 4 heads / 2 KV heads)."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, root / arch, seed=1) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def tiny_models(tiny_dirs):
    from circuits.core.model import load_model

    return {arch: load_model(d) for arch, d in tiny_dirs.items()}


@pytest.fixture(params=ARCHITECTURES)
def tiny_model(request, tiny_models):
    return tiny_models[request.param]


@pytest.fixture(scope="session")
def qwen_tiny(tiny_models):
    return tiny_models["qwen2"]


def small_circuit(emotion: str = "anger", seed: int = 0):
    """A hand-built circuit of a 2-layer architecture (d_mlp 32, 4 heads of 4), random Delta-mu."""
    from circuits.circuit import assemble_circuit
    from circuits.core.arch import ArchInfo

    arch = ArchInfo("Qwen2ForCausalLM", 2, 4, 2, 16, 4, 32, 50, True, False)
    g = torch.Generator().manual_seed(seed)
    return assemble_circuit(emotion, influence_attn=torch.ones(2), influence_mlp=torch.ones(2),
                            neuron_scores=torch.randn(2, 32, generator=g), head_scores=torch.randn(2, 4, generator=g),
                            delta_mu_mlp=torch.randn(2, 32, generator=g),
                            delta_mu_heads=torch.randn(2, 4, 4, generator=g),
                            model_info={"name": "m", "fingerprint": "f", "arch": arch})
