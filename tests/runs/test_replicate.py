"""``emocircuits replicate``: the claims table read from runs' artifacts (known answers for the
intervals, planted artifacts for the verdicts, the command's files and refusals)."""

from __future__ import annotations

import json
import shutil

import pytest

from circuits import cli
from circuits.core.artifacts import InputError
from circuits.runs import replicate as R


def test_newcombe_interval_known_answer():
    """Newcombe (1998), method 10: 56/70 - 48/80 = 0.2000, 95% interval 0.0524 to 0.3339."""
    d, lo, hi = R._difference({"accuracy": 56 / 70, "n": 70}, {"accuracy": 48 / 80, "n": 80})
    assert d == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)


def test_verdict_sides():
    assert R._verdict(0.01, 0.2) == R.HOLDS and R._verdict(-0.2, -0.01) == R.FAILS
    assert R._verdict(-0.1, 0.1) == R.UNSURE and R._verdict(-0.04, 0.1, -0.05) == R.HOLDS


def _planted_run(toy_run, tmp_path, circuit, prompting, direction, n=1000):
    run = tmp_path / "run"
    shutil.copytree(toy_run[0], run)
    (run / "evaluation").mkdir(exist_ok=True)
    methods = {
        m: {"accuracy": a, "n": n}
        for m, a in (("circuit", circuit), ("prompting", prompting), ("direction", direction))
    }
    (run / "evaluation" / "evaluation.json").write_text(
        json.dumps({"methods": methods, "judge": "lexicon", "command": ["x"]})
    )
    return run


def _planted_va(tmp_path, model, behaviour, self_report=False):
    va = tmp_path / ("va-self" if self_report else "va")
    va.mkdir()
    emotions = ["a", "b", "c", "d"]
    ratings = {"a": [8, 8], "b": [2, 8], "c": [2, 2], "d": [8, 2]}
    projection = {"a": [1, 1], "b": [-1, 1], "c": [-1, -1], "d": [-1, 1]}  # d lands in the wrong quadrant
    summary = {
        "model": {"name": model},
        "emotions": emotions,
        "ratings": ratings,
        "projection": projection,
        "circumplex": {"residual": 0.1},
        "fit": {
            "heldout": {"n": 25, "r2": {"valence": 0.6, "arousal": 0.4}, "spearman": {"valence": 0.8, "arousal": 0.6}}
        },
        "behaviour": behaviour,
        "command": ["emocircuits", "va"] + (["--self-report"] if self_report else []),
        "config": {"self_report": self_report},
    }
    (va / "summary.json").write_text(json.dumps(summary))
    return va


def test_table_reads_planted_artifacts(toy_run, tmp_path):
    run = _planted_run(toy_run, tmp_path, circuit=0.9, prompting=0.92, direction=0.5)
    (run / "validity").mkdir(exist_ok=True)
    (run / "validity" / "validity.json").write_text(
        json.dumps({"bands": [{"layers": [0, 3], "verdict": "instruction word"}]})
    )
    trend = {
        "slope": -0.05,
        "low": -0.08,
        "high": -0.02,
        "n": 110,
        "verdict": "holds",
        "reason": "r",
        "random_slopes": {"random0": 0.0},
    }
    va = _planted_va(tmp_path, "toy", {"refusal": trend})
    table = R.replicate([run], [va])
    assert table["models"] == ["toy"]
    got = {c["key"]: c["results"]["toy"] for c in table["claims"]}
    assert got["va_circle_self"] is None and got["va_heldout_self"] is None
    both = R.replicate([run], [va, _planted_va(tmp_path, "toy", {}, self_report=True)])
    got_both = {c["key"]: c["results"]["toy"] for c in both["claims"]}
    assert got_both["va_circle_self"] == got["va_circle"] and both["sources"]["toy"]["va_self_report"].endswith(
        "va-self"
    )
    assert got["circuit_vs_prompting"]["verdict"] == R.HOLDS  # -2 points, within the 5-point margin at n 1000
    assert got["circuit_vs_direction"]["verdict"] == R.HOLDS and got["circuit_vs_direction"]["low"] > 0.3
    assert got["va_circle"]["value"] == 0.75 and got["va_circle"]["n"] == 4
    assert got["va_heldout"]["verdict"] == R.HOLDS and got["va_heldout"]["high"] < 1
    assert got["refusal"]["verdict"] == "holds" and got["refusal"]["n"] == 110
    assert got["sycophancy"] is None and got["ev_strength"] is None  # not run: said so, not guessed
    assert got["context_agnostic"]["detail"].endswith("(validity): layers 0-3 instruction word")
    for key in ("emergence", "context_agnostic", "heads_shared", "ablation"):
        assert got[key] is not None and got[key]["verdict"] in (R.HOLDS, R.FAILS, R.UNSURE), key
    # a worse circuit flips the verdict
    worse = R.replicate([_planted_run(toy_run, tmp_path / "w", circuit=0.6, prompting=0.92, direction=0.5)], [])
    assert (
        next(c for c in worse["claims"] if c["key"] == "circuit_vs_prompting")["results"]["toy"]["verdict"] == R.FAILS
    )


def test_command_writes_json_and_markdown_and_refuses_doubles(toy_run, tmp_path, capsys):
    va = _planted_va(tmp_path, "toy", {})
    page = tmp_path / "docs" / "replicate.md"
    page.parent.mkdir()
    argv = [
        "replicate",
        "--run",
        str(toy_run[0]),
        "--va",
        str(va),
        "--out",
        str(tmp_path / "out"),
        "--markdown",
        str(page),
    ]
    assert cli.main(argv) == 0
    table = json.loads((tmp_path / "out" / R.REPLICATE_JSON).read_text())
    md = (tmp_path / "out" / R.REPLICATE_MD).read_text()
    assert page.read_text() == md and len(table["claims"]) == len(R.CLAIMS)
    assert all(c["claim"] in md for c in table["claims"]) and "not run" in md and "`emocircuits va`" in md
    with pytest.raises(InputError, match="second run of model 'toy'"):
        R.replicate([toy_run[0], toy_run[0]])
    with pytest.raises(InputError, match="not a VA run"):
        R.replicate([], [tmp_path])
    capsys.readouterr()
