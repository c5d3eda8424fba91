"""Artifacts: atomic writes and staged output folders, including what a killed run leaves behind."""

from __future__ import annotations

import pytest

from circuits.core.artifacts import InputError, staged_dir, write_text_atomic


def _names(folder):
    """The entries of ``folder`` but the writer locks kept beside output folders (``.NAME.lock``)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_staged_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "run"
    write_text_atomic(out / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with staged_dir(out) as d:
            write_text_atomic(d / "a.txt", "new")
            raise RuntimeError("fail")
    assert (out / "a.txt").read_text() == "old" and _names(tmp_path) == ["run"]
    with staged_dir(out) as d:
        write_text_atomic(d / "b.txt", "new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"] and _names(tmp_path) == ["run"]


def test_kept_entries_survive_a_failure_and_a_kill(tmp_path):
    out = tmp_path / "run"
    write_text_atomic(out / "store" / "shard0", "0")
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out, keep=("store",)) as d:
            write_text_atomic(d / "store" / "shard1", "1")  # the run added to the store, then stopped
            raise KeyboardInterrupt
    assert sorted(p.name for p in (out / "store").iterdir()) == ["shard0", "shard1"]
    # a killed run: its staged folder (holding the moved store) and an old folder set aside remain
    stale = tmp_path / ".run.abcdefgh.partial"
    stale.mkdir()
    (out / "store").rename(stale / "store")
    aside = tmp_path / ".other.xyz12345.old"
    write_text_atomic(aside / "summary.json", "{}")
    with staged_dir(out, keep=("store",)) as d:
        assert sorted(p.name for p in (d / "store").iterdir()) == ["shard0", "shard1"]  # recovered, resumable
    with staged_dir(tmp_path / "other") as d:
        pass
    assert _names(tmp_path) == ["other", "run"]
    assert not (tmp_path / "other" / "summary.json").exists()  # the recovered old folder was then replaced


def test_staged_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        with staged_dir(tmp_path / "f"):
            pass
