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


def _store(folder, meta):
    write_text_atomic(folder / "store" / "shard0", "0")
    write_text_atomic(folder / "store" / "meta.json", meta)


@pytest.mark.parametrize("can_link", [True, False])
def test_kept_entries_are_shared_not_moved_so_the_old_folder_stays_whole(tmp_path, monkeypatch, can_link):
    """While a rerun is in flight the old folder keeps its store: the staging folder gets hard links (copies
    where linking fails), and the store's atomic writes replace names, never the old folder's files."""
    import os

    if not can_link:

        def no_link(*a, **k):
            raise OSError("links not supported")

        monkeypatch.setattr(os, "link", no_link)
    out = tmp_path / "run"
    _store(out, "old meta")
    write_text_atomic(out / "summary.json", "old")
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out, keep=("store",)) as d:
            assert os.path.samefile(d / "store" / "shard0", out / "store" / "shard0") is can_link
            write_text_atomic(d / "store" / "shard1", "1")  # the rerun resumes the store ...
            write_text_atomic(d / "store" / "meta.json", "new meta")  # ... and lists the new shard
            assert (out / "store" / "meta.json").read_text() == "old meta"  # the old run, untouched
            assert sorted(p.name for p in (out / "store").iterdir()) == ["meta.json", "shard0"]
            raise KeyboardInterrupt
    # the failed run's new store work is merged back (new shard, then the meta that lists it)
    assert {p.name: p.read_text() for p in (out / "store").iterdir()} == {
        "shard0": "0",
        "shard1": "1",
        "meta.json": "new meta",
    }
    assert (out / "summary.json").read_text() == "old" and _names(tmp_path) == ["run"]


def test_a_killed_rerun_leaves_the_old_store_as_it_was(tmp_path):
    """SIGKILL while a rerun reuses a complete store: the stale staging folder holds links of the same
    files; the next run's tidying merges nothing and the old store keeps its very files."""
    import os

    from circuits.core.ownership import OWNER_FILE

    out = tmp_path / "run"
    _store(out, "complete")
    inodes = {p.name: p.stat().st_ino for p in (out / "store").iterdir()}
    stale = tmp_path / ".run.dead0000.partial"  # what the killed rerun left: its owner record names a dead pid
    stale.mkdir()
    (stale / OWNER_FILE).write_text('{"pid": 999999999, "host": ""}')
    (stale / "store").mkdir()
    for name in inodes:
        os.link(out / "store" / name, stale / "store" / name)
    write_text_atomic(stale / "summary.json", "half-written new run")
    with staged_dir(out, keep=("store",)) as d:
        assert not stale.exists()
        assert {p.name: p.stat().st_ino for p in (out / "store").iterdir()} == inodes
        assert (d / "store" / "meta.json").read_text() == "complete"
    assert (out / "store" / "meta.json").read_text() == "complete" and not (out / "summary.json").exists()


def test_an_interrupt_between_the_two_renames_brings_the_old_folder_back(tmp_path, monkeypatch):
    import os

    out = tmp_path / "run"
    write_text_atomic(out / "a.txt", "old")
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append((str(src), str(dst)))
        if str(dst) == str(out) and str(src).endswith(".partial"):  # new -> path: the second rename
            raise KeyboardInterrupt  # as a SIGTERM handler would, right after the old was set aside
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with staged_dir(out) as d:
            write_text_atomic(d / "a.txt", "new")
    monkeypatch.setattr(os, "replace", real)
    assert any(dst.endswith(".old") for _, dst in calls)  # the old folder had been set aside
    assert (out / "a.txt").read_text() == "old" and _names(tmp_path) == ["run"]


def test_a_group_of_files_is_replaced_together_or_not_at_all(tmp_path):
    """write_atomic_group: every file is written before any is renamed, so a writer that fails leaves
    every old file as it was and no temporary file behind; when all succeed each holds its new text."""
    from circuits.core.artifacts import write_atomic_group

    a, b = tmp_path / "a.json", tmp_path / "b.html"
    a.write_text("old a")
    b.write_text("old b")

    def fail(p):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic_group({a: lambda p: p.write_text("new a"), b: fail})
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.html"]
    assert write_atomic_group({a: lambda p: p.write_text("new a"), b: lambda p: p.write_text("new b")}) == [a, b]
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.html"]
