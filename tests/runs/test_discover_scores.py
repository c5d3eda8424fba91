"""discover writes its score files atomically, into a staged folder that replaces the run folder only
when the run completes."""

from __future__ import annotations

import pytest
import torch

from circuits.core.sev import load_sev


def test_discover_writes_scores_atomically(tmp_path, qwen_tiny, monkeypatch):
    """A failure while writing scores.safetensors leaves the previous folder exactly as it was: the old
    file intact, none of the new run's files (directions were already written, to the staged folder),
    no temporary file or staged folder."""
    from safetensors.torch import load_file, save_file

    from circuits.runs import discover as discover_mod

    out = tmp_path / "run"
    out.mkdir()
    save_file({"neurons": torch.arange(3.0)}, str(out / "scores.safetensors"))
    before = (out / "scores.safetensors").read_bytes()

    calls = []

    def failing_save(tensors, path):
        calls.append(path)
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(discover_mod, "save_file", failing_save)
    cfg = discover_mod.DiscoverConfig(limit=2, reference_head_rows=1, figures=False)
    with pytest.raises(OSError, match="disk full"):
        discover_mod.discover(qwen_tiny, load_sev(), out, cfg, progress=False)
    assert calls  # the run got as far as the scores
    # nothing new but the store, which is kept so that the next run resumes it (directions were staged)
    assert sorted(p.name for p in out.iterdir()) == ["scores.safetensors", "store"]
    assert not [
        p.name for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")
    ]  # staged folder removed
    assert (out / "scores.safetensors").read_bytes() == before
    torch.testing.assert_close(load_file(str(out / "scores.safetensors"))["neurons"], torch.arange(3.0))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_interrupted_rerun_leaves_the_finished_run_as_it_was(tmp_path, qwen_tiny, monkeypatch):
    """A finished run folder, then a rerun with other sweep modes interrupted after its sweeps: the
    folder is byte-identical to the finished run (no new sweeps.csv beside the old summary)."""
    from circuits.discovery import influence
    from circuits.runs import discover as discover_mod

    out = tmp_path / "run"
    cfg = discover_mod.DiscoverConfig(
        limit=2,
        reference_head_rows=1,
        influence_rows=2,
        sweep_rows=1,
        sweep_ks=(1,),
        sweep_seeds=1,
        generation_rows=0,
        figures=False,
    )
    discover_mod.discover(qwen_tiny, load_sev(), out, cfg, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(influence, "influence_intervention", interrupted)
    rerun = discover_mod.DiscoverConfig(**{**cfg.to_dict(), "sweep_modes": ("zero",), "allocation": cfg.allocation})
    with pytest.raises(KeyboardInterrupt):
        discover_mod.discover(qwen_tiny, load_sev(), out, rerun, progress=False)
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
