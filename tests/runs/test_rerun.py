"""Whole-run writes: a discover rerun refuses to delete what other commands wrote (unless --replace);
evaluate, trace, figures and va write their outputs as one swap, into places that cannot hit files they
did not write; and every check runs before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_kill import FAST, digests, discover_copy  # a sibling test module: pytest puts tests/runs on sys.path

from circuits import cli
from circuits.core.artifacts import InputError
from circuits.core.provenance import set_command
from circuits.runs import layout
from circuits.runs.layout import EVALUATION_DIR, EVALUATION_FILES, HOUSEKEEPING


def staging_left(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.rglob("*") if p.name.endswith((".partial", ".old")))


@pytest.fixture(autouse=True)
def _forget_the_command():
    yield
    set_command(None)


@pytest.fixture
def run(toy_run, tmp_path) -> Path:
    """A private copy of the session's toy run (what discover wrote there)."""
    return discover_copy(toy_run[0], tmp_path / "run")


def _no_model(monkeypatch):
    """Loading a model fails the test: what is checked must be checked before."""
    from circuits.cli import common

    def boom(args):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(common, "load_model_from_args", boom)


# --- discover -----------------------------------------------------------------------------------------


def test_foreign_outputs_are_what_discover_did_not_write(tmp_path):
    from circuits.runs.discover import DISCOVER_OUTPUTS, check_rerun, foreign_outputs

    out = tmp_path / "run"
    assert foreign_outputs(out) == []  # no folder yet
    out.mkdir()
    for name in DISCOVER_OUTPUTS:
        (out / name).mkdir() if "." not in name else (out / name).write_text("x")
    for hidden in (
        ".figures.lock",
        ".evaluation.lock.json",
        ".summary.json.ab12cd34.tmp",
        ".evaluation.abcd1234.partial",
    ):
        (out / hidden).write_text("")
    check_rerun(out, replace=False)  # discover's own files only: a rerun remakes them all
    (out / EVALUATION_DIR).mkdir()
    (out / "concept_directions.json").write_text("{}")
    (out / ".notes").write_text("mine")  # a hidden file of the user's is listed too
    assert foreign_outputs(out) == [".notes", "concept_directions.json", "evaluation/"]
    with pytest.raises(InputError) as err:
        check_rerun(out, replace=False)
    msg = str(err.value)
    assert msg.startswith(f"--out {out}: holds outputs that discover did not write")
    assert "(.notes, concept_directions.json, evaluation/)" in msg and "--replace" in msg
    assert "\n" not in msg
    check_rerun(out, replace=True)


def test_a_rerun_that_would_delete_other_outputs_is_refused_before_the_model_loads(run, capsys, monkeypatch):
    (run / EVALUATION_DIR).mkdir()
    (run / EVALUATION_DIR / layout.EVALUATION_JSON).write_text('{"methods": {}}\n')
    (run / "concept_directions.json").write_text("{}\n")
    (run / layout.EMOTION_VECTORS).write_bytes(b"cached")  # a cache of the store: not worth a refusal
    before = digests(run)
    _no_model(monkeypatch)
    assert cli.main(["discover", "--model", "toy", "--out", str(run), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emocircuits: error: --out ") and len(err.splitlines()) == 1
    assert "(concept_directions.json, evaluation/)" in err and "give --replace" in err
    assert digests(run) == before and staging_left(run.parent) == []


def test_replace_lets_the_rerun_delete_them(run, capsys):
    (run / EVALUATION_DIR).mkdir()
    (run / EVALUATION_DIR / layout.EVALUATION_JSON).write_text('{"methods": {}}\n')
    (run / layout.EMOTION_VECTORS).write_bytes(b"cached")
    old_summary = (run / layout.SUMMARY_JSON).read_text()
    store = digests(run / layout.STORE_DIR)
    assert cli.main(["discover", "--model", "toy", "--out", str(run), *FAST, "--replace"]) == 0
    capsys.readouterr()
    names = {p.name for p in run.iterdir() if not HOUSEKEEPING.fullmatch(p.name)}
    assert EVALUATION_DIR not in names and layout.EMOTION_VECTORS not in names
    assert (run / layout.SUMMARY_JSON).read_text() != old_summary  # a new run
    assert digests(run / layout.STORE_DIR) == store  # its store reused as it was
    assert staging_left(run.parent) == []


def test_the_demo_replaces_the_whole_run(monkeypatch, tmp_path):
    """``run_demo`` remakes the run: it asks discover to replace what other commands wrote."""
    from circuits.runs import demo, discover, evaluate

    class Stop(Exception):
        pass

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(discover, "discover", fake)
    with pytest.raises(Stop):
        demo.run_demo(None, tmp_path, None, None, None, progress=False)
    assert seen["replace"] is True
    assert evaluate.EVALUATION_DIR == EVALUATION_DIR


# --- evaluate -----------------------------------------------------------------------------------------


def _eval_cfg(**kw):
    from circuits.steer.metrics import EvalConfig

    return EvalConfig(**{"methods": ("prompting", "neutral"), "emotions": ("anger", "fear"), "limit": 1, **kw})


def test_evaluate_writes_one_folder_as_one_swap(toy, run, monkeypatch):
    from circuits.runs import evaluate
    from circuits.runs.report import gather_report

    evaluate.run_evaluation(toy, run, _eval_cfg(), progress=False)
    folder = run / EVALUATION_DIR
    assert {p.name for p in folder.iterdir() if not HOUSEKEEPING.fullmatch(p.name)} == set(EVALUATION_FILES)
    assert not any((run / name).exists() for name in EVALUATION_FILES)  # nothing at the run's top level
    data = gather_report(run)
    assert data["evaluation"]["replies_source"] == f"{EVALUATION_DIR}/{layout.REPLIES_JSONL}"
    assert set(data["evaluation"]["methods"]) == {"prompting", "neutral"}
    before = digests(folder)

    def killed(path, rows):  # the last file of the new set: the others are written by then
        assert (Path(path).parent / layout.EVALUATION_JSON).is_file()
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate.layout, "write_jsonl", killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate.run_evaluation(toy, run, _eval_cfg(methods=("neutral",)), progress=False)
    assert digests(folder) == before and staging_left(run) == []  # the old set, whole


def test_a_run_of_0_2_with_top_level_files_still_reads(run):
    from circuits.runs.report import gather_report
    from circuits.runs.rundir import evaluation_folder

    (run / layout.EVALUATION_JSON).write_text(json.dumps({"methods": {"neutral": {"accuracy": 0.5}}}))
    assert evaluation_folder(run) == run
    assert set(gather_report(run)["evaluation"]["methods"]) == {"neutral"}
    (run / EVALUATION_DIR).mkdir()
    (run / EVALUATION_DIR / layout.EVALUATION_JSON).write_text(json.dumps({"methods": {"circuit": {}}}))
    assert evaluation_folder(run) == run / EVALUATION_DIR  # the new place wins
    assert set(gather_report(run)["evaluation"]["methods"]) == {"circuit"}


def test_evaluate_out_an_existing_file_writes_nothing(run, tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("keep")
    before = digests(run)
    argv = ["evaluate", "--model", "toy", "--run", str(run), "--methods", "emotion_vector", "--limit", "1"]
    assert cli.main([*argv, "--out", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"emocircuits: error: --out {f}: exists and is not a folder; give a folder to write"
    assert f.read_text() == "keep" and digests(run) == before  # no emotion_vectors.safetensors either
    assert not (run / layout.EMOTION_VECTORS).exists()


def test_evaluate_refuses_a_folder_of_other_files(toy, run, tmp_path):
    from circuits.runs.evaluate import run_evaluation

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    with pytest.raises(InputError, match=r"--out .*mine: holds files that are not an evaluation's \(thesis.tex\)"):
        run_evaluation(toy, run, _eval_cfg(), out=mine, progress=False)
    assert (mine / "thesis.tex").read_text() == "keep" and [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_a_bad_sev_file_is_refused_before_the_emotion_vectors_are_cached(toy, run, tmp_path):
    from circuits.runs.evaluate import run_evaluation

    before = digests(run)
    with pytest.raises((InputError, FileNotFoundError)):
        run_evaluation(toy, run, _eval_cfg(methods=("emotion_vector",)), sev=tmp_path / "missing.jsonl", progress=False)
    assert digests(run) == before and not (run / layout.EMOTION_VECTORS).exists()


# --- trace --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traced(toy, toy_run):
    from circuits.runs.trace import run_trace

    return run_trace(toy, toy_run[0], text="I am furious.")


def test_trace_never_overwrites_files_it_did_not_write(run, traced, tmp_path):
    from circuits.runs.trace import write_trace

    before = digests(run)
    with pytest.raises(InputError, match=r"summary.json, which exists and is not a trace's scores"):
        write_trace(traced, run / "summary.html", run, from_text=True)
    with pytest.raises(InputError, match=r"report.html: exists and is not a trace view"):
        write_trace(traced, run / layout.REPORT_HTML, run, from_text=True)
    with pytest.raises(InputError, match=r"holds files that are not a trace's \(.*circuits/, .*dla.csv"):
        write_trace(traced, run, run, from_text=True)  # a folder: the run itself
    with pytest.raises(InputError, match="exists and is not a folder"):
        write_trace(traced, run / layout.DLA_CSV, run, from_text=True)
    assert digests(run) == before
    html, scores = write_trace(traced, run / "t.html", run, from_text=True)
    assert (html, scores) == (run / "t.html", run / "t.json")
    write_trace(traced, run / "t.html", run, from_text=True)  # its own pair: replaced
    assert json.loads(scores.read_text())["reply"] == "I am furious."


def test_trace_into_a_folder_is_one_swap(traced, tmp_path, monkeypatch):
    from circuits.runs import trace
    from circuits.steer import token_trace

    out = tmp_path / "tr"
    html, scores = trace.write_trace(traced, out, tmp_path / "run", from_text=True)
    assert (html, scores) == (out / trace.TRACE_HTML, out / trace.TRACE_JSON)
    before = digests(out)

    def killed(*a, **k):
        raise KeyboardInterrupt  # after the new scores were written in the staged folder

    monkeypatch.setattr(token_trace, "trace_html", killed)
    with pytest.raises(KeyboardInterrupt):
        trace.write_trace({**traced, "reply": "new"}, out, tmp_path / "run", from_text=True)
    assert digests(out) == before and staging_left(tmp_path) == []


# --- figures ------------------------------------------------------------------------------------------


def test_figures_check_every_input_before_drawing(run, tmp_path, capsys, monkeypatch):
    from circuits.figures import discovery

    monkeypatch.setattr(discovery, "discovery_figures", lambda *a, **k: pytest.fail("drew before the checks"))
    before = digests(run)
    f = tmp_path / "file.png"
    f.write_text("keep")
    for extra, needle in (
        (["--va", str(tmp_path / "TYPO")], f"--va {tmp_path / 'TYPO'}: no such VA run directory"),
        (["--va", str(run)], f"--va {run}: not a VA run"),
        (["--png-dir", str(f)], f"--png-dir {f}: exists and is not a folder"),
    ):
        assert cli.main(["figures", "--run", str(run), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"emocircuits: error: {needle}") and len(err.splitlines()) == 1, err
    assert digests(run) == before and f.read_text() == "keep"


def test_figures_are_redrawn_as_one_swap(run, monkeypatch):
    from circuits.figures import evaluation
    from circuits.runs.redraw import make_figures

    (run / EVALUATION_DIR).mkdir()
    methods = {"neutral": {"accuracy": 0.1, "per_emotion": {"anger": 0.1}}}
    (run / EVALUATION_DIR / layout.EVALUATION_JSON).write_text(json.dumps({"methods": methods}))
    figures = run / layout.FIGURES_DIR
    before = digests(figures)
    assert before  # discover drew them

    def killed(result, figdir):  # drawn after every discovery figure
        assert len(list(Path(figdir).glob("*.html"))) >= 5
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "accuracy_bars", killed)
    with pytest.raises(KeyboardInterrupt):
        make_figures(run)
    assert digests(figures) == before and staging_left(run) == []


# --- va -----------------------------------------------------------------------------------------------


def test_va_into_a_discovery_run_is_refused_before_anything_is_computed(toy, run, monkeypatch):
    from circuits.runs import valence_arousal as va

    monkeypatch.setattr(va, "_read_inputs", lambda *a: pytest.fail("computed before the check"))
    before = digests(run)
    with pytest.raises(InputError, match=r"--out .*run: holds files that are not a VA run's \(.*circuits/, .*dla.csv"):
        va.run_va(toy, run, va.VAConfig(limit=2), progress=False)
    assert digests(run) == before
