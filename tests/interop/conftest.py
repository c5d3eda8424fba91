"""A small store and its directions on the tiny Qwen2 model."""

from __future__ import annotations

import pytest

from circuits.core.sev import load_sev
from circuits.discovery.directions import emotion_directions
from circuits.discovery.store import StoreConfig, build_store


@pytest.fixture(scope="module")
def run_store(tmp_path_factory, qwen_tiny):
    store = build_store(qwen_tiny, load_sev(), tmp_path_factory.mktemp("st"), StoreConfig(limit=2), progress=False)
    return store, emotion_directions(store)
