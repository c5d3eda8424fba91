"""Shared fixtures of the discovery tests: a small store and its directions on tiny Qwen2 and Gemma2."""

from __future__ import annotations

import pytest

from circuits.core.sev import load_sev
from circuits.discovery.directions import emotion_directions
from circuits.discovery.store import StoreConfig, build_store


@pytest.fixture(scope="module", params=["qwen2", "gemma2"])
def run(request, tmp_path_factory, tiny_models):
    model = tiny_models[request.param]
    store = build_store(model, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=4), progress=False)
    return model, store, emotion_directions(store)
