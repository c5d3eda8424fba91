"""Bad input on the command line: exit status 2, one line naming the input, nothing written or
changed; an internal error prints its traceback and asks for a report (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuits import cli


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def fake_run(tmp_path):
    """A folder that looks like a finished run (summary + an earlier evaluation) for the checks that
    must refuse before anything loads."""
    run = tmp_path / "run"
    (run / "circuits").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"config": {}}))
    (run / "evaluation.json").write_text('{"methods": {}}\n')
    return run


def _fails(capsys, argv, *needles):
    status = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    line = err.splitlines()[-1]
    assert line.startswith("emocircuits: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--circuit-lambda", "nan"], ["--circuit-lambda", "finite"]),
        (["--direction-alpha", "inf"], ["--direction-alpha", "finite"]),
        (["--ev-alpha=-inf"], ["--ev-alpha"]),
        (["--limit", "0"], ["--limit", ">= 1"]),
        (["--dtype", "float8"], ["float8", "float32"]),
        (["--device", "cuda"] if not __import__("torch").cuda.is_available() else ["--device", "cuda:99"], ["cuda"]),
    ],
)
def test_evaluate_refuses_bad_numbers_devices_and_dtypes_untouched(capsys, fake_run, extra, needles):
    before = _snapshot(fake_run)
    _fails(capsys, ["evaluate", "--model", "toy", "--run", fake_run, *extra], *needles)
    assert _snapshot(fake_run) == before


def test_evaluate_refuses_a_missing_run_without_creating_it(capsys, tmp_path):
    typo = tmp_path / "TYPO_DIR"
    _fails(capsys, ["evaluate", "--model", "toy", "--run", typo], "TYPO_DIR", "not a discovery run")
    assert not typo.exists()


def test_evaluate_refuses_direction_layers_beyond_the_model(capsys, fake_run):
    before = _snapshot(fake_run)
    _fails(
        capsys,
        ["evaluate", "--model", "toy", "--run", fake_run, "--direction-layers", "9"],
        "--direction-layers",
        "[9]",
        "0-3",
    )
    assert _snapshot(fake_run) == before


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--limit", "0"], ["--limit"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--sweep-ks", "0"], ["--sweep-ks"]),
        (["--influence-alphas", "0"], ["--influence-alphas", "non-zero"]),
        (["--influence-alphas", "nan"], ["--influence-alphas", "finite"]),
        (["--budget-per-sublayer", "0"], ["budget_per_sublayer"]),
        (["--dtype", "int8"], ["int8"]),
    ],
)
def test_discover_refuses_bad_numbers_before_writing(capsys, tmp_path, extra, needles):
    out = tmp_path / "out"
    _fails(capsys, ["discover", "--model", "toy", "--out", out, *extra], *needles)
    assert not out.exists()


def test_discover_store_dtype_must_be_a_float_type(capsys, tmp_path):
    with pytest.raises(SystemExit) as err:  # argparse refuses a value outside the field's choices
        cli.main(["discover", "--model", "toy", "--out", str(tmp_path / "o"), "--store-dtype", "int8"])
    assert err.value.code == 2 and "int8" in capsys.readouterr().err


def test_discover_out_naming_an_existing_file(capsys, tmp_path):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    _fails(capsys, ["discover", "--model", "toy", "--out", target, "--limit", "2", "--no-figures"], "a_file")
    assert target.read_text() == "keep me"


def test_va_refuses_bad_limits(capsys, tmp_path):
    _fails(capsys, ["va", "--model", "toy", "--out", tmp_path / "va", "--limit", "0"], "--limit")
    _fails(capsys, ["va", "--model", "toy", "--out", tmp_path / "va", "--alphas", "nan"], "--alphas")
    assert not (tmp_path / "va").exists()


def test_internal_error_prints_traceback_and_asks_for_a_report(capsys, monkeypatch, tmp_path):
    def broken(args):
        raise RuntimeError("boom inside the library")

    from circuits.cli import common

    monkeypatch.setattr(common, "check_model_args", broken)
    status = cli.main(["va", "--model", "toy", "--out", str(tmp_path / "va")])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" in err and "boom inside the library" in err and "please report" in err


@pytest.mark.parametrize("raised, status, line", [("terminated", 143, "terminated"), ("interrupt", 130, "interrupted")])
def test_a_stop_mid_progress_bar_says_so_on_its_own_line(capsys, monkeypatch, tmp_path, raised, status, line):
    """A progress bar writes without a newline until it closes; the stop's line must not join it."""
    import sys

    from circuits.cli import common
    from circuits.core.signals import Terminated

    def stopped(args):
        sys.stderr.write("Loading weights: 100%|##########| 50/50")
        raise Terminated() if raised == "terminated" else KeyboardInterrupt()

    monkeypatch.setattr(common, "check_model_args", stopped)
    assert cli.main(["va", "--model", "toy", "--out", str(tmp_path / "va")]) == status
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"emocircuits: {line}"


def test_a_swallowed_sigterm_still_stops_the_command_before_it_commits(capsys, monkeypatch, tmp_path):
    """SIGTERM's exception can be swallowed (raised inside a weakref callback during garbage collection:
    "Exception ignored in ..."); the signal is noted first, so the next atomic write refuses to commit and
    the command still exits 143 with the old file whole."""
    import signal

    from circuits.cli import common
    from circuits.core import signals
    from circuits.core.artifacts import write_text_atomic

    target = tmp_path / "old.txt"
    target.write_text("old")

    def swallowed(args):
        signals.note(signal.SIGTERM)  # what the handler does before it raises (the raise went nowhere)
        write_text_atomic(target, "new")

    monkeypatch.setattr(common, "check_model_args", swallowed)
    assert cli.main(["va", "--model", "toy", "--out", str(tmp_path / "va")]) == 143
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["old.txt"]
    assert capsys.readouterr().err.strip().splitlines()[-1] == "emocircuits: terminated"
    monkeypatch.setattr(common, "check_model_args", lambda args: signals.note(signal.SIGTERM))
    assert cli.main(["va", "--model", "toy", "--out", str(tmp_path / "va")]) == 143  # no write: still 143


def test_circuit_sidecar_with_nan_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from circuits.circuit import Circuit, CircuitFormatError
    from circuits.toy.tiny import tiny_circuit

    path = tiny_circuit().save(tmp_path / "anger.json")
    tensors = load_file(str(tmp_path / "anger.safetensors"))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, str(tmp_path / "anger.safetensors"))
    with pytest.raises(CircuitFormatError, match=rf"delta_mu\['{key}'\]: 1 value\(s\) are NaN"):
        Circuit.load(path)


@pytest.fixture(scope="module")
def va_run(tmp_path_factory):
    """A finished small VA run folder (reruns into it must leave it byte-identical when refused)."""
    out = tmp_path_factory.mktemp("va") / "run"
    assert (
        cli.main(
            ["va", "--model", "toy", "--out", str(out), "--steer-limit", "1", "--alphas", "0", "2", "--limit", "8"]
        )
        == 0
    )
    return out


@pytest.mark.parametrize(
    "make_bad, flag, needles",
    [
        (
            lambda d: (d / "lex.tsv").write_text("calm\t0.8\t0.1\nodd\tx\t0.5\n") and d / "lex.tsv",
            "--lexicon",
            ["lex.tsv:2", "numbers"],
        ),
        (
            lambda d: (d / "lex.tsv").write_text("calm\t0.8\t0.1\nodd\tnan\t0.5\n") and d / "lex.tsv",
            "--lexicon",
            ["lex.tsv:2", "finite"],
        ),
        (
            lambda d: (d / "r.csv").write_text("emotion,valence,arousal\nanger,nan,7\n") and d / "r.csv",
            "--ratings",
            ["r.csv:2", "finite"],
        ),
        (
            lambda d: (d / "r.csv").write_text("emotion,valence,arousal\nanger,2,7\nanger,3,7\n") and d / "r.csv",
            "--ratings",
            ["r.csv:3", "twice"],
        ),
        (
            lambda d: (
                (d / "r.csv").write_text("emotion,valence,arousal\nanger,5,5\njoy,5,5\nfear,5,5\n") and d / "r.csv"
            ),
            "--ratings",
            ["r.csv", "the same"],
        ),
        (
            lambda d: (d / "p.csv").write_text("text,type\nhello,benign\n") and d / "p.csv",
            "--refusal",
            ["p.csv:1", "'prompt'"],
        ),
        (lambda d: (d / "p.csv").write_text("prompt,type\n") and d / "p.csv", "--refusal", ["p.csv", "no prompts"]),
        (
            lambda d: (
                (d / "s.jsonl").write_text('{"question": "q", "answer_matching_behavior": " (A)"}\n') and d / "s.jsonl"
            ),
            "--sycophancy",
            ["s.jsonl:1", "answer_not_matching_behavior"],
        ),
        (
            lambda d: (
                (d / "s.jsonl").write_text(
                    '{"question": "q", "answer_matching_behavior": " (A)", "answer_not_matching_behavior": " (A)"}\n'
                )
                and d / "s.jsonl"
            ),
            "--sycophancy",
            ["s.jsonl:1", "the same"],
        ),
    ],
)
def test_va_rerun_with_a_bad_input_leaves_the_folder_byte_identical(capsys, va_run, tmp_path, make_bad, flag, needles):
    before = _snapshot(va_run)
    bad = make_bad(tmp_path)
    _fails(
        capsys,
        [
            "va",
            "--model",
            "toy",
            "--out",
            va_run,
            "--layer",
            "2",
            "--steer-limit",
            "1",
            "--alphas",
            "0",
            "2",
            "--limit",
            "8",
            flag,
            bad,
        ],
        *needles,
    )
    assert _snapshot(va_run) == before
    assert not [
        p for p in va_run.parent.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")
    ]  # no staged folder left behind


def test_va_rerun_replaces_the_folder_only_when_complete(capsys, va_run, monkeypatch):
    """A run that fails half-way (after the model work, while drawing figures) leaves the old folder."""
    from circuits.runs import valence_arousal as va_run_mod

    before = _snapshot(va_run)

    def broken(out, summary):
        (out / "figures").mkdir(exist_ok=True)
        (out / "figures" / "half.html").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(va_run_mod, "va_figures", broken)
    assert (
        cli.main(
            [
                "va",
                "--model",
                "toy",
                "--out",
                str(va_run),
                "--layer",
                "1",
                "--steer-limit",
                "1",
                "--alphas",
                "0",
                "--limit",
                "8",
            ]
        )
        == 130
    )
    assert _snapshot(va_run) == before
    assert not [p for p in va_run.parent.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


def test_model_path_messages_point_the_right_way(capsys, tmp_path):
    err = _fails(
        capsys,
        ["discover", "--model", str(tmp_path / "no" / "such" / "model"), "--out", tmp_path / "o", "--limit", "2"],
        "does not exist",
    )
    assert "huggingface-cli" not in err
    empty = tmp_path / "empty_model"
    empty.mkdir()
    err = _fails(capsys, ["discover", "--model", empty, "--out", tmp_path / "o", "--limit", "2"], "no config.json")
    assert "sentencepiece" not in err.lower()
    assert not (tmp_path / "o").exists()


def test_themes_are_case_and_space_insensitive(tmp_path):
    from circuits.core.sev import load_sev

    rows = []
    for i, theme in enumerate(["Work/Job", "work/job ", "school/academia"]):
        rows.append(
            json.dumps(
                {
                    "theme": theme,
                    "scenario": f"I sat down {i}.",
                    "skeleton_id": f"s{i}",
                    "event": {"positive": "a", "neutral": "b", "negative": "c"},
                }
            )
        )
    p = tmp_path / "sev.jsonl"
    p.write_text("\n".join(rows))
    assert load_sev(p).themes == ["school/academia", "work/job"]


def test_written_files_honour_the_umask(tmp_path):
    import os

    from circuits.core.artifacts import write_text_atomic

    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_circuit_with_another_emotions_sidecar_is_refused(tmp_path):
    import shutil

    from circuits.circuit import Circuit, CircuitFormatError
    from circuits.toy.tiny import tiny_circuit

    anger = tiny_circuit("anger").save(tmp_path / "anger.json")
    tiny_circuit("fear").save(tmp_path / "fear.json")  # same seed: same units, so the shapes match
    shutil.copy(tmp_path / "fear.safetensors", tmp_path / "anger.safetensors")
    with pytest.raises(CircuitFormatError, match="anger.json: .*holds the Delta-mu of emotion 'fear', not 'anger'"):
        Circuit.load(anger)


def test_va_misspelt_emotion_is_an_error_not_a_smaller_analysis(capsys, tmp_path):
    _fails(
        capsys,
        ["va", "--model", "toy", "--out", tmp_path / "va", "--emotions", "faer", "joy", "anger"],
        "--emotions",
        "faer",
    )
    assert not (tmp_path / "va").exists()


def test_truncated_model_weights_and_an_empty_judge_folder(capsys, tmp_path, tiny_dirs):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(tiny_dirs["qwen2"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _fails(capsys, ["discover", "--model", broken, "--out", tmp_path / "o", "--limit", "2"], "model", "safetensors")
    empty = tmp_path / "judge"
    empty.mkdir()
    _fails(
        capsys,
        ["discover", "--model", "toy", "--out", tmp_path / "o", "--limit", "2", "--judge", f"classifier:{empty}"],
        "classifier judge",
        "config.json",
    )
    assert not (tmp_path / "o").exists()


def test_sev_validate_reports_every_file_even_after_a_non_utf8_one(capsys, tmp_path):
    from circuits.core.sev import DEFAULT_TEST

    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"theme": "caf\xe9"}\n'.encode("latin-1"))
    assert cli.main(["sev", "validate", str(bad), str(DEFAULT_TEST)]) == 2
    out = capsys.readouterr()
    assert "latin1.jsonl:1: not UTF-8 text" in out.err and "Traceback" not in out.err
    assert f"OK {DEFAULT_TEST}" in out.out


def test_single_theme_file_and_out_of_scale_ratings(capsys, tmp_path):
    rows = [
        json.dumps(
            {
                "theme": "work/job",
                "scenario": f"I sat down {i}.",
                "skeleton_id": f"s{i}",
                "event": {"positive": "a", "neutral": "b", "negative": "c"},
            }
        )
        for i in range(3)
    ]
    (tmp_path / "one.jsonl").write_text("\n".join(rows))
    err = _fails(
        capsys, ["discover", "--model", "toy", "--out", tmp_path / "o", "--sev", tmp_path / "one.jsonl"], "single theme"
    )
    assert "--limit 2" not in err
    (tmp_path / "r.csv").write_text("emotion,valence,arousal\nanger,-500,7\njoy,8,6\nfear,2,8\n")
    _fails(
        capsys,
        ["va", "--model", "toy", "--out", tmp_path / "va", "--ratings", tmp_path / "r.csv"],
        "r.csv:2",
        "small scale",
    )


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["dose-response", "--null-seeds", "1", "1"], ["DoseConfig.null_seeds", "--null-seeds", "distinct"]),
        (["dose-response", "--null-seeds", "-1"], ["--null-seeds", ">= 0"]),
        (["nulls", "--seeds", "0"], ["NullsConfig.seeds", "--seeds", ">= 1"]),
        (["concepts", "--variance-share", "1"], ["ConceptConfig.variance_share", "--variance-share", "below 1"]),
        (["concepts", "--start-offset", "-2"], ["--start-offset", ">= 0"]),
        (
            ["trace", "--prompt", "hi", "--max-new-tokens", "0", "--out", "t.html"],
            ["TraceConfig.max_new_tokens", ">= 1"],
        ),
        (["trace", "--prompt", "hi", "--strength", "nan", "--out", "t.html"], ["--strength", "finite"]),
        (
            ["export-gguf", "--source", "direction", "--emotion", "anger", "--strength", "inf", "--out", "x.gguf"],
            ["ControlVectorConfig.strength", "finite"],
        ),
        (["export-gguf", "--source", "va", "--strength", "1", "--check", "-1", "--out", "x.gguf"], ["--check", ">= 0"]),
        (
            ["export-gguf", "--source", "circuit", "--strength", "1", "--out", "x.gguf"],
            ["ControlVectorConfig.emotion", "--emotion", "'circuit' needs an emotion"],
        ),
        (
            ["trace", "--prompt", "hi", "--method", "direction", "--out", "t.html"],
            ["TraceConfig.emotion", "--emotion", "--method direction needs an emotion"],
        ),
    ],
)
def test_config_flags_of_run_commands_are_checked_before_the_model_loads(capsys, fake_run, monkeypatch, argv, needles):
    from circuits.core import model as model_mod

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the flags were checked")

    monkeypatch.setattr(model_mod, "load_model", no_load)
    before = _snapshot(fake_run)
    _fails(capsys, [argv[0], "--model", "toy", "--run", fake_run, *argv[1:]], *needles)
    assert _snapshot(fake_run) == before


def test_run_commands_take_their_options_from_config_fields():
    """The options of these commands are generated from their config dataclasses: same help, same default."""
    import dataclasses

    from circuits.discovery.concept_vectors import ConceptConfig
    from circuits.runs.dose_response import DoseConfig
    from circuits.runs.export import ControlVectorConfig
    from circuits.runs.nulls import NullsConfig
    from circuits.runs.trace import TraceConfig

    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)).choices
    for command, cls in [
        ("dose-response", DoseConfig),
        ("nulls", NullsConfig),
        ("concepts", ConceptConfig),
        ("trace", TraceConfig),
        ("export-gguf", ControlVectorConfig),
    ]:
        by_dest = {a.dest: a for a in subs[command]._actions}
        for f in dataclasses.fields(cls):
            action = by_dest[f.name]
            assert action.option_strings == ["--" + f.name.replace("_", "-")]
            assert action.help.startswith(f.metadata["help"].replace("%", "%%"))
            want = list(f.default) if isinstance(f.default, tuple) else f.default
            assert action.default == want, (command, f.name)


@pytest.mark.parametrize("command", ["evaluate", "nulls", "faithfulness", "dose-response", "concepts", "atlas"])
def test_run_commands_load_the_runs_own_model_unless_told(capsys, fake_run, monkeypatch, command):
    """Without --model a run command loads the model the run's summary.json names; a summary naming none is
    refused with the file's path, before anything loads or is written."""
    from circuits.core import model as model_mod

    loaded = []

    def record(name, **kwargs):
        loaded.append(name)
        raise model_mod.InputError("stop here")

    monkeypatch.setattr(model_mod, "load_model", record)
    before = _snapshot(fake_run)
    _fails(capsys, [command, "--run", fake_run], "summary.json", "no model.name", "--model")
    assert loaded == [] and _snapshot(fake_run) == before

    (fake_run / "summary.json").write_text(json.dumps({"model": {"name": "some/model"}, "config": {}}))
    _fails(capsys, [command, "--run", fake_run], "stop here")
    _fails(capsys, [command, "--model", "other/model", "--run", fake_run], "stop here")
    assert loaded == ["some/model", "other/model"]
