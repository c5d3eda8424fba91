"""The command line: each sub-command on small inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from circuits.cli import main
from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN


def test_sev_validate_ok(capsys):
    assert main(["sev", "validate", str(DEFAULT_TRAIN), str(DEFAULT_TEST)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and out[0].startswith("OK ") and "160 scenarios, 8 themes" in out[0]


def test_sev_validate_reports_errors(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"theme": "t", "scenario": "s", "event": {}, "skeleton_id": "a"}) + "\n")
    assert main(["sev", "validate", str(bad)]) == 2  # a user error: 2, as for every command
    err = capsys.readouterr().err
    assert "bad.jsonl:1: field 'event.positive': missing" in err


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "circuits", "sev", "validate", str(DEFAULT_TRAIN)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("OK ")


def test_bad_input_is_one_clear_error_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # an unknown emotion
    assert main(["discover", "--model", "toy", "--out", str(tmp_path / "run"), "--emotions", "rage"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emocircuits: error: ") and "rage" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    # an offline model name with no local weights: names the model and how to pass a local directory
    assert main(["discover", "--model", "nobody/no-such-model", "--out", str(tmp_path / "run2"), "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert "nobody/no-such-model" in err and "--local-dir" in err and "Traceback" not in err
    # a malformed SEV file given to discover
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"theme": "t"}\n')
    assert main(["discover", "--model", "toy", "--sev", str(bad), "--out", str(tmp_path / "run3")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_requests_that_cannot_give_results_are_clear_errors(tmp_path, capsys):
    # one scenario is one theme: directions cannot be compared across themes
    assert main(["discover", "--model", "toy", "--out", str(tmp_path / "r1"), "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emocircuits: error: ") and "--limit 2" in err and "Traceback" not in err
    assert not (tmp_path / "r1").exists()
    # one emotion: nothing to centre against
    assert main(["discover", "--model", "toy", "--out", str(tmp_path / "r2"), "--emotions", "anger"]) == 2
    assert "at least 2 emotions" in capsys.readouterr().err and not (tmp_path / "r2").exists()
    # an unknown judge
    assert main(["discover", "--model", "toy", "--out", str(tmp_path / "r3"), "--judge", "vibes"]) == 2
    assert "unknown judge 'vibes'" in capsys.readouterr().err and not (tmp_path / "r3").exists()
    # VA with too few emotions
    assert main(["va", "--model", "toy", "--out", str(tmp_path / "va"), "--emotions", "anger", "fear"]) == 2
    err = capsys.readouterr().err
    assert "need >= 3 emotions" in err and "Traceback" not in err


def test_unknown_choices_are_refused_by_the_parser(tmp_path, capsys):
    for argv in (
        ["evaluate", "--run", str(tmp_path), "--methods", "telepathy"],
        ["discover", "--out", str(tmp_path), "--sweep-modes", "double"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
