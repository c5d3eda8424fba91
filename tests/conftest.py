"""Shared fixtures: tiny random-init models of every supported architecture, booted offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from circuits.toy.tiny import ARCHITECTURES, build_tiny_model

torch.set_num_threads(1)


REAL_MODEL_FIXTURES = {"smollm2", "shipped_check"}
"""Fixtures that load a real model's weights (SmolLM2-135M-Instruct): their tests are marked ``real_model``."""


def pytest_collection_modifyitems(config, items):
    """Mark the tests that load a real model (a fixture of :data:`REAL_MODEL_FIXTURES`, or a module
    marked ``real_model``), so that ``pytest -m "not real_model"`` is the quick loop (``make test`` runs
    them all)."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_model)


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
def smollm2():
    """The packaged real model, SmolLM2-135M-Instruct (GGUF, converted once into the user cache)."""
    from circuits.core.model import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def qwen_coder():
    """The second packaged real model, Qwen2.5-Coder-0.5B-Instruct (six chunk wheels, joined and
    converted once into the user cache)."""
    from circuits.core.model import load_model

    return load_model("qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def qwen_tiny(tiny_models):
    return tiny_models["qwen2"]
