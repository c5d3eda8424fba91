"""A folder has one writer: the writer lock (another process refused, naming the holder; a dead holder
blocks nobody), staging folders that record their owner (a live owner's is never touched, a dead owner's
is recovered), derived names that fit the file-name limit, and ``toy train`` leaving its siblings alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from circuits import cli
from circuits.core.artifacts import InputError, staged_dir, write_text_atomic
from circuits.core.ownership import OWNER_FILE, derived_name, owned, staging_folders
from circuits.core.provenance import set_command

HOLD = textwrap.dedent(
    """
    import sys
    from circuits.core.ownership import owned
    from circuits.core.provenance import set_command

    set_command(["emocircuits", "discover", "--out", sys.argv[1]])
    with owned(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()  # holds the lock until the test closes stdin
    """
)


@pytest.fixture(autouse=True)
def _forget_the_command():
    """``cli.main`` records its command line for the whole process; later runs made from Python must not
    inherit it."""
    yield
    set_command(None)


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _staging(folder: Path, token: str, suffix: str, pid: int | None) -> Path:
    """A staging folder of ``folder`` as a run would leave it, owned by ``pid`` (None: no owner record)."""
    path = folder.parent / derived_name(folder, f".{token}{suffix}")
    path.mkdir()
    if pid is not None:
        (path / OWNER_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    return path


def test_a_second_writer_in_another_process_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "runs" / "x"
    proc = _holder(out)
    try:
        with pytest.raises(InputError) as err:
            with owned(out):
                pass
        msg = str(err.value)
        assert f"{out} is being written by pid {proc.pid} (emocircuits discover --out {out}) since " in msg
        assert msg.endswith("wait for it or choose another --out") and "\n" not in msg
        with pytest.raises(InputError, match=f"pid {proc.pid}"):  # staged_dir takes the same lock
            with staged_dir(out):
                pass
        assert not out.exists() and not staging_folders(out, ".partial")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    with owned(out):  # free again once the holder is gone
        pass


def test_a_lock_left_by_a_dead_process_blocks_nobody(tmp_path):
    out = tmp_path / "x"
    pid = _dead_pid()
    (tmp_path / ".x.lock").write_text("")
    (tmp_path / ".x.lock.json").write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    with staged_dir(out) as d:
        (d / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    out = tmp_path / "x"
    with owned(out):
        with staged_dir(out) as d:  # discover: the lock is held around the staged folder and the report
            (d / "a.txt").write_text("a")
        with owned(out):
            write_text_atomic(out / "report.html", "r")
    proc = _holder(out)  # released at the end: another process takes it
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_a_live_owners_staging_folder_is_left_alone_and_a_dead_owners_recovered(tmp_path):
    out = tmp_path / "run"
    write_text_atomic(out / "summary.json", "{}")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _staging(out, "live0000", ".partial", sleeper.pid)
        (live / "store").mkdir()
        live_old = _staging(out, "live0001", ".old", sleeper.pid)
        dead = _staging(out, "dead0000", ".partial", _dead_pid())
        write_text_atomic(dead / "store" / "shard0", "0")  # a killed run's store: resumed
        legacy = _staging(out, "abc_1234", ".partial", None)  # an older version's, no owner record
        other = _staging(tmp_path / "run.b", "dead0001", ".partial", _dead_pid())  # run.b's, not run's
        with staged_dir(out, keep=("store",)) as d:
            assert (d / "store" / "shard0").read_text() == "0"
            assert live.is_dir() and live_old.is_dir() and (live / "store").is_dir()
            assert not dead.exists() and not legacy.exists() and other.is_dir()
        assert live.is_dir() and live_old.is_dir() and other.is_dir()
        assert (out / "store" / "shard0").read_text() == "0" and not (out / OWNER_FILE).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_dead_owners_old_folder_comes_back(tmp_path):
    out = tmp_path / "run"
    old = _staging(out, "dead0000", ".old", _dead_pid())  # killed between its two renames
    (old / "summary.json").write_text("{}")
    with pytest.raises(RuntimeError):
        with staged_dir(out):
            raise RuntimeError("fail")
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_a_250_character_folder_name_works(tmp_path):
    out = tmp_path / ("r" * 250)
    for text in ("first", "second"):  # the second run also sets the first aside
        with staged_dir(out) as d:
            assert len(d.name) < 255
            write_text_atomic(d / "a.txt", text)
    assert (out / "a.txt").read_text() == "second"
    assert all(len(p.name) < 255 for p in tmp_path.iterdir())
    assert derived_name(out, ".lock") != derived_name(tmp_path / ("r" * 249 + "s"), ".lock")


def test_out_naming_a_file_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("keep")
    with pytest.raises(InputError, match="--out .*f: exists and is not a folder"):
        with staged_dir(f):
            pass
    assert f.read_text() == "keep"


class _Saves:
    """A model or tokenizer stand-in: ``save_pretrained`` writes one file."""

    def __init__(self, name: str) -> None:
        self.name = name

    def save_pretrained(self, folder, **_) -> None:
        Path(folder, self.name).write_text(self.name)


def test_toy_train_leaves_old_and_tmp_siblings_alone(tmp_path):
    from circuits.toy.train import save_model_dir

    out = tmp_path / "model"
    for sibling in ("model.old", "model.tmp"):
        write_text_atomic(tmp_path / sibling / "mine.txt", "the user's")
    write_text_atomic(out / "config.json", "old model")
    save_model_dir(_Saves("model.safetensors"), _Saves("tokenizer.json"), {"steps": 1}, out)
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "tokenizer.json", "train_log.json"]
    for sibling in ("model.old", "model.tmp"):
        assert (tmp_path / sibling / "mine.txt").read_text() == "the user's"


def test_toy_train_refuses_a_file_before_training(capsys, tmp_path, monkeypatch):
    from circuits.toy import train as train_mod

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(train_mod, "_train_toy", no_training)
    f = tmp_path / "model"
    f.write_text("keep")
    assert cli.main(["toy", "train", "--out", str(f), "--limit", "2", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emocircuits: error: --out ") and str(f) in err and len(err.splitlines()) == 1
    assert f.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.fixture
def no_model(monkeypatch):
    """``load_model`` fails the test: the command must refuse before the model loads."""
    from circuits.core import model

    def fail(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(model, "load_model", fail)


def _fake_run(folder: Path) -> Path:
    (folder / "circuits").mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"model": {"name": "toy"}, "config": {}}))
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["discover", "--model", "toy", "--limit", "2", "--no-figures", "--out", "{f}"],
        ["va", "--model", "toy", "--out", "{f}"],
        ["evaluate", "--model", "toy", "--run", "{run}", "--out", "{f}"],
        ["dose-response", "--model", "toy", "--run", "{run}", "--methods", "circuit", "--out", "{f}"],
    ],
)
def test_out_naming_an_existing_file_exits_2_before_the_model_loads(capsys, tmp_path, no_model, argv):
    f = tmp_path / "a_file"
    f.write_text("keep me")
    run = _fake_run(tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    status = cli.main([a.format(f=f, run=run) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert err == f"emocircuits: error: --out {f}: exists and is not a folder; give a folder to write"
    assert f.read_text() == "keep me" and sorted(p.name for p in run.iterdir()) == before


def test_lock_is_released_when_the_block_fails(tmp_path):
    out = tmp_path / "x"
    with pytest.raises(RuntimeError):
        with owned(out):
            raise RuntimeError("fail")
    assert not (tmp_path / ".x.lock.json").exists()
    proc = _holder(out)
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert os.path.exists(tmp_path / ".x.lock")  # kept: waiters must share one file
