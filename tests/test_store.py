"""Activation store: values match a direct forward pass, resume, reuse, refusal."""

from __future__ import annotations

import json

import pytest
import torch

from circuits.sev import load_sev
from circuits.store import ActivationStore, StoreConfig, StoreMismatchError, build_store, last_token_activations


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, qwen_tiny):
    out = tmp_path_factory.mktemp("store")
    return build_store(qwen_tiny, load_sev(), out, StoreConfig(limit=3, shard_rows=20, batch_size=7), progress=False)


def test_rows_and_shapes(small_store, qwen_tiny):
    a = qwen_tiny.arch
    n = 3 * 3 * 6 + 3 * 3
    assert len(small_store.rows) == n and small_store.complete
    assert small_store.tensor("resid_mid").shape == (n, a.n_layers, a.d_model)
    assert small_store.tensor("z").shape == (n, a.n_layers, a.n_heads, a.d_head)
    assert small_store.tensor("mlp_post").shape == (n, a.n_layers, a.d_mlp)
    assert len(small_store.index("neutral")) == 9 and len(small_store.index("emotion", "fear")) == 9


def test_values_match_unpadded_single_forward(small_store, qwen_tiny):
    """Batched, left-padded, sharded capture equals one unpadded forward pass per prompt."""
    for i in (0, 17, 40, len(small_store.rows) - 1):
        prompt = small_store.prompts(qwen_tiny, [i])
        direct = last_token_activations(qwen_tiny, prompt)
        for name in ("resid_mid", "resid_post", "z", "mlp_post", "final_scale"):
            torch.testing.assert_close(small_store.tensor(name)[i], direct[name][0], atol=2e-5, rtol=1e-4)


def test_resume_after_interruption(tmp_path, qwen_tiny, small_store):
    cfg = StoreConfig(limit=3, shard_rows=20, batch_size=7)
    out = tmp_path / "s"
    build_store(qwen_tiny, load_sev(), out, cfg, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    # simulate a crash after the second shard: drop later shards from meta and disk
    for shard in meta["shards"][2:]:
        (out / shard["file"]).unlink()
    meta["shards"], meta["complete"] = meta["shards"][:2], False
    (out / "meta.json").write_text(json.dumps(meta))
    resumed = build_store(qwen_tiny, load_sev(), out, cfg, progress=False)
    assert resumed.complete
    torch.testing.assert_close(resumed.tensor("z"), small_store.tensor("z"))


def test_reuse_and_refusal(tmp_path, tiny_models):
    q, l = tiny_models["qwen2"], tiny_models["llama"]
    out = tmp_path / "s"
    cfg = StoreConfig(limit=2, emotions=("anger", "fear"), neutral=False)
    first = build_store(q, load_sev(), out, cfg, progress=False)
    mtime = (out / first.meta["shards"][0]["file"]).stat().st_mtime_ns
    again = build_store(q, load_sev(), out, cfg, progress=False)
    assert (out / again.meta["shards"][0]["file"]).stat().st_mtime_ns == mtime  # reused, not rewritten
    with pytest.raises(StoreMismatchError, match="model fingerprint"):
        build_store(l, load_sev(), out, cfg, progress=False)
    with pytest.raises(StoreMismatchError, match="store config"):
        build_store(q, load_sev(), out, StoreConfig(limit=3, emotions=("anger", "fear"), neutral=False), progress=False)
    with pytest.raises(StoreMismatchError, match="not for"):
        ActivationStore.load(out, l)
    assert ActivationStore.load(out, q).fingerprint == q.fingerprint  # nothing was damaged
