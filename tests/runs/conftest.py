"""Shared fixtures of the run tests: the toy model and one small discovery run of it (read-only: a test
that changes a run copies it first)."""

from __future__ import annotations

import pytest

from circuits.core.sev import load_sev
from circuits.runs.discover import DiscoverConfig, discover


@pytest.fixture(scope="session")
def toy():
    from circuits.core.model import load_model

    return load_model("toy")


@pytest.fixture(scope="session")
def toy_run(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = DiscoverConfig(
        limit=4,
        sweep_ks=(1, 4),
        sweep_seeds=1,
        sweep_rows=3,
        reference_head_rows=3,
        influence_rows=12,
        alphas=(0.1, 0.5),
        generation_rows=2,
    )
    return out, discover(toy, load_sev(), out, cfg, progress=False)
