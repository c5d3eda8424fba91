"""Two ``discover`` runs into one ``--out``: the second is refused at once (exit 2, naming the first's
pid), and the first completes with every part of its run in place."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from circuits import cli
from circuits.core.ownership import derived_name
from circuits.core.provenance import set_command
from circuits.runs import layout

TINY = (
    ["--limit", "2", "--emotions", "anger", "happiness", "--reference-budget", "0", "--sweep-ks", "1"]
    + ["--sweep-seeds", "1", "--sweep-rows", "2", "--sweep-layer-count", "1", "--generation-rows", "0"]
    + ["--null-seeds", "1", "--faithfulness-rows", "0", "--no-figures"]
)


@pytest.fixture(autouse=True)
def _forget_the_command():
    """``cli.main`` records its command line for the whole process; later runs made from Python must not
    inherit it."""
    yield
    set_command(None)


def test_a_second_discover_into_the_same_out_is_refused_and_the_first_completes(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["discover", "--model", "toy", "--out", str(out), *TINY]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "circuits", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        holder = tmp_path / derived_name(out, ".lock.json")
        deadline = time.monotonic() + 120
        while not holder.exists():  # the first run holds the lock from before its model loads
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        t0 = time.monotonic()
        status = cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert status == 2, err
        assert time.monotonic() - t0 < 10  # refused at once, not after loading the model
        assert err.startswith(f"emocircuits: error: {out} is being written by pid {first.pid} (emocircuits discover")
        assert err.endswith("wait for it or choose another --out") and len(err.splitlines()) == 1
        log, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, log
    assert f"wrote {out}" in log
    names = {p.name for p in out.iterdir()}
    for name in (layout.SUMMARY_JSON, layout.STORE_DIR, layout.CIRCUITS_DIR, layout.DLA_CSV, layout.SCORES):
        assert name in names, (name, sorted(names))
    assert any(n.startswith(layout.DIRECTIONS) for n in names), sorted(names)
    assert (out / layout.STORE_DIR / "meta.json").is_file() and list((out / layout.CIRCUITS_DIR).glob("*.json"))
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".partial", ".old"))]
