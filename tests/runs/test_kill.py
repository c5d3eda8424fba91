"""SIGKILL and SIGTERM of ``discover``, ``evaluate``, ``va`` and ``trace`` while they rewrite existing
outputs: every file of the old outputs is the same, byte for byte, afterwards; SIGTERM unwinds like
Ctrl-C (exit 143, ``emocircuits: terminated``, no staging folder left).

Each command runs as a subprocess on the toy model and is killed once it is in flight: after it took
its output's writer lock or made its staging folder, while it is still running (checked). The SIGKILL
and SIGTERM runs of one command go side by side, each on its own copy of the old outputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from circuits.core.ownership import derived_name, staging_folders
from circuits.runs import layout
from circuits.runs.layout import EVALUATION_DIR, EVALUATION_FILES, HOUSEKEEPING

SIGNALS = (signal.SIGKILL, signal.SIGTERM)
FAST = (
    ["--limit", "4", "--reference-budget", "0", "--sweep-ks", "1", "--sweep-seeds", "1", "--sweep-rows", "2"]
    + ["--sweep-layer-count", "1", "--generation-rows", "0", "--null-seeds", "1", "--faithfulness-rows", "0"]
    + ["--no-figures"]
)
"""Discover flags that reuse the store of the session's toy run (same limit and emotions) and run fast."""


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest), locks and atomic-write leftovers
    aside."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not HOUSEKEEPING.fullmatch(p.name)
    }


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "circuits", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


class _Proc:
    """A command run as a subprocess, its stderr gathered as it comes (``err()``)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = _start(argv)
        self._err: list[str] = []
        self._reader = threading.Thread(target=lambda: self._err.extend(iter(self.proc.stderr.readline, "")))
        self._reader.start()

    def err(self) -> str:
        return "".join(self._err)

    def end(self) -> tuple[int, str]:
        status = self.proc.wait(timeout=120)
        self._reader.join(timeout=30)
        return status, self.err()


def _kill_in_flight(
    argvs: dict[signal.Signals, list[str]],
    in_flight: dict[signal.Signals, Callable[[_Proc], bool]],
    settle: float = 0.0,
) -> dict[signal.Signals, tuple[int, str]]:
    """Start one process per signal, send it that signal once ``in_flight(proc)`` holds (plus ``settle``
    seconds) while it still runs; returns each one's exit status and stderr."""
    procs = {sig: _Proc(argv) for sig, argv in argvs.items()}
    try:
        pending = dict(procs)
        seen: dict[signal.Signals, float] = {}
        deadline = time.monotonic() + 180
        while pending:
            for sig, p in list(pending.items()):
                assert p.proc.poll() is None, f"{argvs[sig]} ended before it was killed: {p.err()[-2000:]}"
                if sig not in seen and in_flight[sig](p):
                    seen[sig] = time.monotonic()
                if sig in seen and time.monotonic() - seen[sig] >= settle:
                    p.proc.send_signal(sig)
                    del pending[sig]
            assert time.monotonic() < deadline, "never in flight"
            time.sleep(0.02)
        return {sig: p.end() for sig, p in procs.items()}
    finally:
        for p in procs.values():
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


def _check_ends(ends: dict[signal.Signals, tuple[int, str]]) -> None:
    status, err = ends[signal.SIGKILL]
    assert status == -signal.SIGKILL, err
    status, err = ends[signal.SIGTERM]
    assert status == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == "emocircuits: terminated"


def discover_copy(src: Path, dst: Path) -> Path:
    """A private copy of what discover wrote into the run ``src`` (the session's toy run is shared, and
    other tests add their outputs to it)."""
    from circuits.runs.discover import DISCOVER_OUTPUTS

    shutil.copytree(
        src, dst, ignore=lambda folder, names: [n for n in names if folder == str(src) and n not in DISCOVER_OUTPUTS]
    )
    return dst


def _copies(src: Path, root: Path) -> dict[signal.Signals, Path]:
    return {sig: discover_copy(src, root / sig.name.lower() / src.name) for sig in SIGNALS}


def _holder(folder: Path) -> Callable[[_Proc], bool]:
    """Whether a process holds the writer lock of ``folder`` (its holder record exists)."""
    record = folder.parent / derived_name(folder, ".lock.json")
    return lambda p: record.exists()


def test_discover_rerun_killed_leaves_the_old_run_whole(toy_run, tmp_path):
    runs = _copies(toy_run[0], tmp_path)
    before = {sig: digests(run) for sig, run in runs.items()}
    assert any(k.startswith(f"{layout.STORE_DIR}/") for k in before[signal.SIGKILL])

    def staging_with_store(run: Path) -> Callable[[], bool]:
        return lambda proc: any(
            (p / layout.STORE_DIR / "meta.json").is_file() for p in staging_folders(run, ".partial")
        )

    ends = _kill_in_flight(
        {sig: ["discover", "--model", "toy", "--out", str(run), *FAST] for sig, run in runs.items()},
        {sig: staging_with_store(run) for sig, run in runs.items()},
    )
    _check_ends(ends)
    for sig, run in runs.items():
        assert digests(run) == before[sig], sig  # store included
    # SIGTERM unwound: nothing left beside the run; SIGKILL left its staging folder for the next run to tidy
    assert staging_folders(runs[signal.SIGTERM], ".partial") == []
    assert len(staging_folders(runs[signal.SIGKILL], ".partial")) == 1


def test_evaluate_killed_leaves_the_old_evaluation_whole(toy_run, tmp_path):
    runs = _copies(toy_run[0], tmp_path)
    for run in runs.values():  # an earlier evaluation in the run's evaluation folder
        (run / EVALUATION_DIR).mkdir()
        for name in EVALUATION_FILES:
            (run / EVALUATION_DIR / name).write_text(json.dumps({"old": name}) + "\n")
    before = {sig: digests(run) for sig, run in runs.items()}
    argv = ["evaluate", "--model", "toy", "--methods", "prompting", "neutral", "circuit", "--limit", "40"]
    ends = _kill_in_flight(
        {sig: [*argv, "--run", str(run)] for sig, run in runs.items()},
        {sig: _holder(run) for sig, run in runs.items()},
        settle=1.0,
    )
    _check_ends(ends)
    for sig, run in runs.items():
        assert digests(run) == before[sig], sig
        assert staging_folders(run / EVALUATION_DIR, ".partial") == []


def test_va_killed_leaves_the_old_va_run_whole(tmp_path):
    old = tmp_path / "va"
    old.mkdir()
    for name in ("summary.json", "texts.json", "axes.json"):
        (old / name).write_text(json.dumps({"old": name}) + "\n")
    (old / "figures").mkdir()
    (old / "figures" / "va_circle.html").write_text("<html>old</html>")
    runs = _copies(old, tmp_path)
    before = {sig: digests(run) for sig, run in runs.items()}
    ends = _kill_in_flight(
        {sig: ["va", "--model", "toy", "--out", str(run)] for sig, run in runs.items()},
        {sig: _holder(run) for sig, run in runs.items()},
        settle=1.0,
    )
    _check_ends(ends)
    for sig, run in runs.items():
        assert digests(run) == before[sig], sig
    assert staging_folders(runs[signal.SIGTERM], ".partial") == []


def test_trace_killed_leaves_the_old_trace_whole(toy_run, tmp_path):
    old = tmp_path / "tr"
    old.mkdir()
    scores = {k: [] for k in ("tokens", "scores", "emotions")}
    scores.update(n_prompt=0, method="none", direction_source="sev")
    (old / "trace.json").write_text(json.dumps(scores))
    (old / "trace.html").write_text("<html>old</html>")
    runs = _copies(old, tmp_path)
    before = {sig: digests(run) for sig, run in runs.items()}
    argv = ["trace", "--model", "toy", "--run", str(toy_run[0]), "--prompt", "My flight was cancelled."]
    argv += ["--method", "circuit", "--emotion", "anger", "--max-new-tokens", "200"]
    ends = _kill_in_flight(
        {sig: [*argv, "--out", str(run / "trace.html")] for sig, run in runs.items()},
        {sig: (lambda p: "Loading weights" in p.err()) for sig in runs},  # the model is loaded: tracing
    )
    _check_ends(ends)
    for sig, run in runs.items():
        assert digests(run) == before[sig], sig


def test_sigterm_unwinds_like_ctrl_c(monkeypatch, capsys, tmp_path):
    """In-process: SIGTERM during a command raises through its staged folder (the old file stays, the
    staging folder goes), the CLI prints one line and returns 143, and the previous handler comes back."""
    import argparse

    from circuits import cli
    from circuits.core.artifacts import staged_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")

    def command(args: argparse.Namespace) -> int:
        with staged_dir(out) as d:
            (d / "a.txt").write_text("new")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # interrupted by the handler
        return 0

    parser = argparse.ArgumentParser(prog="emocircuits")
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    previous = signal.getsignal(signal.SIGTERM)
    t0 = time.monotonic()
    assert cli.main([]) == 143
    assert time.monotonic() - t0 < 10
    assert capsys.readouterr().err == "\nemocircuits: terminated\n"
    assert (out / "a.txt").read_text() == "old" and staging_folders(out, ".partial") == []
    assert signal.getsignal(signal.SIGTERM) is previous
