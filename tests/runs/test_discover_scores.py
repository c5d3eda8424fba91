"""discover writes its score files atomically."""

from __future__ import annotations

import pytest
import torch

from circuits.core.sev import load_sev


def test_discover_writes_scores_atomically(tmp_path, qwen_tiny, monkeypatch):
    """A failure while writing scores.safetensors leaves the previous file intact and no temp file."""
    from safetensors.torch import load_file, save_file

    from circuits.runs import discover as discover_mod

    out = tmp_path / "run"
    out.mkdir()
    save_file({"neurons": torch.arange(3.0)}, str(out / "scores.safetensors"))
    before = (out / "scores.safetensors").read_bytes()

    def failing_save(tensors, path):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(discover_mod, "save_file", failing_save)
    cfg = discover_mod.DiscoverConfig(limit=2, reference_head_rows=1, figures=False)
    with pytest.raises(OSError, match="disk full"):
        discover_mod.discover(qwen_tiny, load_sev(), out, cfg, progress=False)
    assert (out / "directions.safetensors").exists()  # the run got as far as the scores
    assert (out / "scores.safetensors").read_bytes() == before
    torch.testing.assert_close(load_file(str(out / "scores.safetensors"))["neurons"], torch.arange(3.0))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
